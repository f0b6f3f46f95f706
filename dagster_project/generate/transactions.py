"""ERP transactions: sales orders, order lines, deliveries and invoices, fully vectorised.

Orders are drawn for all companies at once (how many depends on size, role and active period;
when, on how regularly the service tier orders), sorted by date and numbered. Lines,
deliveries and invoices are then generated chunk by chunk of orders and streamed to the
landing files, so memory stays flat at 100,000 companies. Behaviour carries the hidden truth:
the service tier drives rush and expedited orders, change orders, lead times, regularity and
payment delays; the product mix follows the sub-segment; service-draining customers get
bigger discounts (lower margins).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dagster_project.generate.companies import Companies
from dagster_project.generate.difficulty import Difficulty
from dagster_project.generate.erp import CustomerRecords, FxRates, Materials
from dagster_project.generate.ids import padded_numbers
from dagster_project.generate.landing import Landing
from dagster_project.generate.streams import Streams
from dagster_project.generate.timeline import Timeline
from dagster_project.generate.versions import NEVER, version_rows
from dagster_project.generate.world import World
from dagster_project.generate.writer import NULL

ORDER_TYPES = np.array(["Standard", "Rush", "Expedited", "Consignment"], dtype=object)
CHUNK_ORDERS = 200_000
FIRST_ORDER, FIRST_DELIVERY, FIRST_INVOICE = 10_000_000, 80_000_000, 90_000_000
EQUIPMENT = ("Engines", "Turbines", "Storage")


@dataclass
class Orders:
    """Every sales order, sorted by order number (= by order date)."""

    company: np.ndarray
    record: np.ndarray  # ERP customer record index (the buyer's customer number)
    day: np.ndarray
    requested_day: np.ndarray  # NULL when not given
    order_type: np.ndarray  # index into ORDER_TYPES
    change_count: np.ndarray
    currency: np.ndarray  # index into fx currencies, -1 = EUR
    end_user_record: np.ndarray  # -1 when none
    created_day: np.ndarray
    number: np.ndarray  # numeric order id

    def __len__(self) -> int:
        return len(self.day)


def _company_currency(companies: Companies, fx: FxRates, diff: Difficulty,
                      rng: np.random.Generator) -> np.ndarray:
    own = companies.frame["currency"].to_numpy()
    index = {c: i for i, c in enumerate(fx.currencies)}
    u = rng.random((len(own), 2))
    local = np.array([index.get(c, -1) for c in own])
    usd = index["USD"]
    foreign_choice = np.where(u[:, 1] < diff.usd_share_of_foreign, usd, -1)
    return np.where((local < 0) | (local == usd) | (u[:, 0] < diff.local_currency_share), local,
                    foreign_choice)


def build_orders(companies: Companies, erp: CustomerRecords, fx: FxRates, world: World,
                 diff: Difficulty, timeline: Timeline, streams: Streams) -> Orders:
    rng = streams.rng("erp.orders")
    f = companies.frame
    vocab = world.vocab
    tier = f["tier_idx"].to_numpy()
    size = f["size_tier"].to_numpy()
    role = f["role"].to_numpy()
    start = f["active_from_day"].to_numpy()
    until = np.minimum(erp.order_until, timeline.end_day)
    span = np.maximum(until - start + 1, 0)
    lines_per_order = np.array([vocab["size_tiers"][s]["lines_per_order"] for s in size]) * np.where(
        role == "distributor", 1.5, 1.0)
    weight = f["volume"].to_numpy() * span / 365.25
    target = len(f) * diff.order_lines_per_company_year * timeline.years
    scale = target / max(float((weight * lines_per_order).sum()), 1e-9)
    counts = rng.poisson(weight * scale)
    counts[span <= 0] = 0

    company = np.repeat(np.arange(len(f)), counts)
    first = np.repeat(np.cumsum(counts) - counts, counts)
    rank = np.arange(len(company)) - first
    n_of = counts[company]
    # Regular buyers order on a grid over their active period (random phase, a little jitter);
    # irregular ones at random times. Both keep orders spread evenly over the period.
    irregular = np.array(diff.order_irregularity)[tier[company]]
    phase = rng.random(len(f))[company]
    grid = np.mod((rank + phase + 0.2 * rng.normal(size=len(company))) / n_of, 1.0)
    u = np.where(rng.random(len(company)) < irregular, rng.random(len(company)), grid)
    day = start[company] + (u * span[company]).astype(np.int64)

    order = np.lexsort((rank, company, day))
    company, day = company[order], day[order]
    n = len(company)
    t = tier[company]

    record = erp.route(company, day, rng.random(n))
    u_type = rng.random(n)
    rush = np.array(diff.rush_share)[t]
    expedited = np.array(diff.expedited_share)[t]
    consign = np.where(role[company] == "distributor", diff.consignment_share_distributor, 0.0)
    order_type = np.select(
        [u_type < rush, u_type < rush + expedited, u_type < rush + expedited + consign],
        [1, 2, 3], 0)
    change_count = np.minimum(rng.poisson(np.array(diff.change_orders_mean)[t]), 9)
    median_lead = np.array(diff.requested_lead_days)[t]
    lead = np.select(
        [order_type == 1, order_type == 2, order_type == 3],
        [rng.integers(2, 7, n), rng.integers(5, 13, n), rng.integers(20, 46, n)],
        np.round(median_lead * rng.lognormal(0, 0.35, n)).astype(np.int64))
    requested = np.where(rng.random(n) < 0.02, NULL, day + lead)

    currency = _company_currency(companies, fx, diff, streams.rng("erp.currency"))[company]

    # Distributors and EPCs name the end user they buy for (when it has an ERP record).
    end_user_record = np.full(n, -1)
    served_by = f["served_by"].to_numpy()
    users = np.flatnonzero((served_by >= 0) & (erp.primary >= 0))
    if len(users):
        by_channel = users[np.argsort(served_by[users], kind="stable")]
        channel_sorted = served_by[by_channel]
        lo = np.searchsorted(channel_sorted, company, side="left")
        hi = np.searchsorted(channel_sorted, company, side="right")
        has = (hi > lo) & np.isin(role[company], ["distributor", "epc"]) & (
            rng.random(n) < diff.end_user_on_distributor_order_rate)
        pick = lo + (rng.random(n) * (hi - lo)).astype(np.int64)
        end_user_record[has] = erp.primary[by_channel[np.minimum(pick[has], len(by_channel) - 1)]]

    created = np.minimum(day + (rng.random(n) < 0.1), timeline.end_day)
    return Orders(company=company, record=record, day=day, requested_day=requested,
                  order_type=order_type, change_count=change_count, currency=currency,
                  end_user_record=end_user_record, created_day=created,
                  number=FIRST_ORDER + 1 + np.arange(n))


@dataclass
class TransactionCounts:
    orders: int = 0
    order_lines: int = 0
    deliveries: int = 0
    invoices: int = 0


class TransactionWriter:
    """Generates lines, deliveries and invoices per chunk of orders and streams them out."""

    def __init__(self, companies: Companies, erp: CustomerRecords, materials: Materials,
                 fx: FxRates, terms_days: np.ndarray, world: World, diff: Difficulty,
                 timeline: Timeline, streams: Streams, landing: Landing) -> None:
        self.c = companies
        self.erp = erp
        self.fx = fx
        self.terms_days = terms_days
        self.world = world
        self.diff = diff
        self.timeline = timeline
        self.streams = streams
        self.landing = landing
        self.counts = TransactionCounts()
        self._next_delivery = FIRST_DELIVERY + 1
        self._next_invoice = FIRST_INVOICE + 1
        vocab = world.vocab
        f = companies.frame
        sizes = f["size_tier"].to_numpy()
        factors = vocab["size_factors"]
        self.quantity_factor = np.array([factors[s]["quantity"] for s in sizes])
        self.discount_base = np.array([factors[s]["discount_pct"] for s in sizes])
        lines = companies.product_lines
        equipment = np.array([line in EQUIPMENT for line in lines])
        mix = companies.product_mix * np.where(
            equipment[None, :], np.array([factors[s]["equipment"] for s in sizes])[:, None], 1.0)
        self.mix_cum = np.cumsum(mix / mix.sum(axis=1, keepdims=True), axis=1)
        self.line_quantity = np.array([vocab["product_lines"][p]["quantity"] for p in lines])
        self.line_is_hours = np.array([vocab["product_lines"][p]["unit"] == "H" for p in lines])
        m = materials.frame
        self.material_numbers = pa.array(m["material_number"].to_numpy(dtype=object))
        self.std_cost = m["standard_cost"].to_numpy()
        self.specialty = m["specialty"].to_numpy()
        groups = m["line_idx"].to_numpy() * 2 + self.specialty
        self.groups = []
        for g in range(len(lines) * 2):
            members = np.flatnonzero(groups == g)
            members = members[np.argsort(m["intro_day"].to_numpy()[members], kind="stable")]
            self.groups.append((members, m["intro_day"].to_numpy()[members]))
        self.customer_numbers = pa.array(erp.numbers())
        self.currency_names = pa.array(["EUR", *fx.currencies])
        self.sales_org = pa.array(_sales_orgs(erp, companies, world))
        self.single_units = np.array([p in ("Engines", "Turbines") for p in lines])

    def write(self, orders: Orders, progress: Callable[[str], None]) -> TransactionCounts:
        total = len(orders)
        for chunk, lo in enumerate(range(0, total, CHUNK_ORDERS)):
            hi = min(total, lo + CHUNK_ORDERS)
            self._chunk(orders, np.arange(lo, hi), self.streams.rng("erp.lines", chunk))
            progress(f"orders {hi:,}/{total:,}, order lines {self.counts.order_lines:,}")
        return self.counts

    # --- one chunk -------------------------------------------------------------------------
    def _chunk(self, orders: Orders, idx: np.ndarray, rng: np.random.Generator) -> None:
        diff, timeline = self.diff, self.timeline
        f = self.c.frame
        company = orders.company[idx]
        tier = f["tier_idx"].to_numpy()[company]
        day = orders.day[idx]
        extract = timeline.extract_of_day(orders.created_day[idx])
        n = len(idx)

        # Lines: how many, which product line and material, how much, at what price.
        size = f["size_tier"].to_numpy()[company]
        role = f["role"].to_numpy()[company]
        lpo = np.array([self.world.vocab["size_tiers"][s]["lines_per_order"] for s in size])
        lpo = lpo * np.where(role == "distributor", 1.5, 1.0)
        n_lines = 1 + rng.poisson(np.maximum(lpo - 1, 0))
        line_order = np.repeat(np.arange(n), n_lines)
        line_rank = np.arange(len(line_order)) - np.repeat(np.cumsum(n_lines) - n_lines, n_lines)
        lc = company[line_order]
        ld = day[line_order]
        product = (rng.random(len(lc))[:, None] > self.mix_cum[lc]).sum(axis=1)
        product = np.minimum(product, self.mix_cum.shape[1] - 1)
        specialty = rng.random(len(lc)) < np.array(diff.specialty_share)[tier[line_order]]
        material = self._pick_materials(product, specialty, ld, rng)

        quantity = self.line_quantity[product] * self.quantity_factor[lc] * rng.lognormal(
            0, 0.5, len(lc))
        quantity = np.where(self.line_is_hours[product], np.maximum(0.5, np.round(quantity * 2) / 2),
                            np.maximum(1, np.round(quantity)))
        quantity = np.where(self.single_units[product], np.minimum(quantity, 4), quantity)
        currency = orders.currency[idx][line_order]
        years_in = (ld - timeline.start_day) / 365.25
        list_eur = self.std_cost[material] * np.where(self.specialty[material], 1.55, 1.22) * (
            1 + 0.03 * years_in)
        unit_price = np.round(list_eur / self.fx.eur_per_unit(currency, ld), 2)
        draining = f["service_draining"].to_numpy()[lc]
        discount = np.round(np.clip(self.discount_base[lc] + rng.normal(0, 2, len(lc)) + np.where(
            draining, diff.draining_extra_discount_pct, 0), 0, 45), 1)
        discount = np.where(discount < 0.5, np.nan, discount)
        net = np.round(quantity * unit_price * (1 - np.nan_to_num(discount) / 100), 2)
        cost = np.round(quantity * self.std_cost[material] * rng.lognormal(0, 0.05, len(lc)), 2)
        cost[rng.random(len(lc)) < diff.line_cost_missing_rate] = np.nan
        line_no = (line_rank + 1) * 10

        # Returns: a negative line re-using one of the order's lines, plus a credit note later.
        returns = np.flatnonzero((rng.random(n) < diff.return_order_rate) & (
            day < timeline.end_day - 30))
        source = (np.cumsum(n_lines) - n_lines)[returns] + (rng.random(len(returns)) * n_lines[
            returns]).astype(np.int64)
        back = -np.maximum(np.where(self.line_is_hours[product[source]], 0.5, 1), np.floor(
            quantity[source] * rng.uniform(0.1, 1.0, len(returns))))
        r_net = np.round(back * unit_price[source] * (1 - np.nan_to_num(discount[source]) / 100), 2)
        r_cost = np.round(back * self.std_cost[material[source]], 2)

        all_order = np.concatenate([line_order, returns])
        all_line_no = np.concatenate([line_no, (n_lines[returns] + 1) * 10])
        sort = np.lexsort((all_line_no, all_order))
        columns = {
            "order": all_order[sort], "line_no": all_line_no[sort],
            "material": np.concatenate([material, material[source]])[sort],
            "quantity": np.concatenate([quantity, back])[sort],
            "unit_price": np.concatenate([unit_price, unit_price[source]])[sort],
            "discount_pct": np.concatenate([discount, discount[source]])[sort],
            "net_value": np.concatenate([net, r_net])[sort],
            "cost": np.concatenate([cost, r_cost])[sort],
        }
        order_ids = padded_numbers(orders.number[idx])
        self._write_orders(orders, idx, extract, order_ids)
        self._write_lines(columns, extract, order_ids)
        first_ship = self._write_deliveries(
            orders, idx, day, line_order, line_no, quantity, product, rng, order_ids)
        positive_total = np.bincount(line_order, weights=net, minlength=n)
        return_total = np.bincount(returns, weights=r_net, minlength=n)
        self._write_invoices(orders, idx, tier, day, first_ship, positive_total, return_total,
                             rng, order_ids)

    def _pick_materials(self, product: np.ndarray, specialty: np.ndarray, day: np.ndarray,
                        rng: np.random.Generator) -> np.ndarray:
        """A material of the line's product line and category that exists on the order day."""
        material = np.full(len(product), -1)
        u = rng.random(len(product))
        for attempt in range(2):
            wanted = product * 2 + (specialty if attempt == 0 else ~specialty)
            for g, (members, intro) in enumerate(self.groups):
                sel = np.flatnonzero((wanted == g) & (material < 0))
                if len(sel) == 0 or len(members) == 0:
                    continue
                available = np.searchsorted(intro, day[sel], side="right")
                ok = available > 0
                material[sel[ok]] = members[(u[sel[ok]] * available[ok]).astype(np.int64)]
        if (material < 0).any():
            raise ValueError("no material available for some order lines")
        return material

    def _write_orders(self, orders: Orders, idx: np.ndarray, extract: np.ndarray,
                      order_ids: pa.Array) -> None:
        end_user = orders.end_user_record[idx]
        end_user_numbers = self.customer_numbers.take(pa.array(np.maximum(end_user, 0)))
        data = {
            "order_id": order_ids,
            "customer_number": self.customer_numbers.take(pa.array(orders.record[idx])),
            "order_date": orders.day[idx], "requested_delivery_date": orders.requested_day[idx],
            "order_type": ORDER_TYPES[orders.order_type[idx]],
            "sales_org": self.sales_org.take(pa.array(orders.record[idx])),
            "currency": self.currency_names.take(pa.array(orders.currency[idx] + 1)),
            "change_count": orders.change_count[idx],
            "end_user_customer_number": _null_where(end_user < 0, end_user_numbers),
            "created_on": orders.created_day[idx],
        }
        self._append("erp/sales_orders", extract, data)
        self.counts.orders += len(idx)

    def _write_lines(self, columns: dict, extract: np.ndarray, order_ids: pa.Array) -> None:
        pos = columns["order"]
        data = {
            "order_id": order_ids.take(pa.array(pos)), "line_no": columns["line_no"],
            "material_number": self.material_numbers.take(pa.array(columns["material"])),
            "quantity": columns["quantity"], "unit_price": columns["unit_price"],
            "discount_pct": columns["discount_pct"], "net_value": columns["net_value"],
            "cost": columns["cost"],
        }
        self._append("erp/order_lines", extract[pos], data)
        self.counts.order_lines += len(pos)

    def _write_deliveries(self, orders: Orders, idx: np.ndarray, day: np.ndarray,
                          line_order: np.ndarray, line_no: np.ndarray, quantity: np.ndarray,
                          product: np.ndarray, rng: np.random.Generator,
                          order_ids: pa.Array) -> np.ndarray:
        """Deliveries of the positive lines; returns each order's first actual ship day."""
        diff, timeline = self.diff, self.timeline
        n_lines = len(line_order)
        requested = orders.requested_day[idx]
        transit = rng.integers(2, 10, len(idx))
        planned = np.where(requested == NULL, day + 21, requested - transit)
        planned = np.maximum(planned, day + 1)[line_order]
        late = rng.random(n_lines) < diff.late_delivery_rate
        delay = np.where(late, np.ceil(rng.lognormal(np.log(6), 0.7, n_lines)),
                         -rng.integers(0, 3, n_lines)).astype(np.int64)
        actual = np.maximum(planned + delay, day[line_order] + 1)
        lt = transit[line_order]
        missing = rng.random(n_lines) < diff.missing_delivery_rate
        partial = (rng.random(n_lines) < diff.partial_delivery_rate) & (quantity >= 2) & ~missing
        first_qty = np.where(partial, np.maximum(1, np.floor(quantity * rng.uniform(
            0.3, 0.8, n_lines))), quantity)
        second = partial & (rng.random(n_lines) >= diff.open_remainder_rate)
        second_actual = actual + rng.integers(5, 41, n_lines)

        line_of = np.concatenate([np.flatnonzero(~missing), np.flatnonzero(second)])
        part = np.concatenate([np.zeros(int((~missing).sum()), dtype=np.int64),
                               np.ones(int(second.sum()), dtype=np.int64)])
        ship = np.where(part == 0, actual[line_of], second_actual[line_of])
        plan = np.where(part == 0, planned[line_of], second_actual[line_of])
        qty = np.where(part == 0, first_qty[line_of], (quantity - first_qty)[line_of])
        delivered = ship + lt[line_of]
        created = plan - 3
        keep = created <= timeline.end_day
        order_key = np.lexsort((part[keep], line_of[keep]))
        line_of, ship, plan, qty, delivered, created = (
            x[keep][order_key] for x in (line_of, ship, plan, qty, delivered, created))
        ids = self._next_delivery + np.arange(len(line_of))
        self._next_delivery += len(line_of)

        bounds = np.array(timeline.extract_days)
        rec, extract, _ = version_rows(created, [ship, delivered], bounds)
        bound = bounds[extract]
        shipped = ship[rec] <= bound
        data = {
            "delivery_id": padded_numbers(ids[rec]),
            "order_id": order_ids.take(pa.array(line_order[line_of[rec]])),
            "line_no": line_no[line_of[rec]],
            "planned_ship_date": plan[rec],
            "actual_ship_date": np.where(shipped, ship[rec], NULL),
            "delivered_date": np.where(delivered[rec] <= bound, delivered[rec], NULL),
            "delivered_quantity": np.where(shipped, qty[rec], np.nan),
        }
        self._append("erp/deliveries", extract, data)
        self.counts.deliveries += len(line_of)
        first_ship = np.full(len(idx), NEVER)
        np.minimum.at(first_ship, line_order[line_of], ship)
        return first_ship

    def _write_invoices(self, orders: Orders, idx: np.ndarray, tier: np.ndarray, day: np.ndarray,
                        first_ship: np.ndarray, amount: np.ndarray, returned: np.ndarray,
                        rng: np.random.Generator, order_ids: pa.Array) -> None:
        diff, timeline = self.diff, self.timeline
        n = len(idx)
        f = self.c.frame
        record = orders.record[idx]
        terms = self.terms_days[record]
        prepay = terms == 0
        invoice_day = np.where(prepay, day, first_ship)
        due = invoice_day + terms
        company = orders.company[idx]
        delay_mean = np.array(diff.payment_delay_days)[tier] + np.where(
            f["ignores_terms"].to_numpy()[company], diff.ignores_terms_extra_days, 0)
        cleared = np.where(prepay, invoice_day + rng.integers(0, 3, n),
                           np.maximum(due + np.round(rng.normal(delay_mean, 5)).astype(np.int64),
                                      invoice_day + 1))
        cleared = np.where(rng.random(n) < 0.01, NEVER, cleared)
        has_invoice = (invoice_day <= timeline.end_day) & (amount > 0)

        has_return = returned < 0
        credit_day = np.where(first_ship < NEVER, first_ship, day) + rng.integers(20, 61, n)
        credit_cleared = credit_day + rng.integers(3, 31, n)
        correction = has_invoice & (rng.random(n) < diff.standalone_credit_note_rate)
        corr_day = invoice_day + rng.integers(10, 91, n)
        corr_amount = -np.round(amount * rng.uniform(0.02, 0.1, n), 2)
        corr_no_order = rng.random(n) < 1 / 3

        kinds = [
            (has_invoice, invoice_day, due, cleared, amount, False, np.zeros(n, dtype=bool)),
            (has_return & (credit_day <= timeline.end_day), credit_day, credit_day,
             credit_cleared, returned, True, np.zeros(n, dtype=bool)),
            (correction & (corr_day <= timeline.end_day), corr_day, corr_day,
             corr_day + rng.integers(3, 31, n), corr_amount, True, corr_no_order),
        ]
        pos_parts, day_parts, due_parts, clr_parts, amt_parts, credit_parts, no_order_parts = (
            [], [], [], [], [], [], [])
        for mask, i_day, i_due, i_clr, i_amt, is_credit, no_order in kinds:
            sel = np.flatnonzero(mask)
            pos_parts.append(sel)
            day_parts.append(i_day[sel])
            due_parts.append(i_due[sel])
            clr_parts.append(i_clr[sel])
            amt_parts.append(i_amt[sel])
            credit_parts.append(np.full(len(sel), is_credit))
            no_order_parts.append(no_order[sel])
        # Invoices of one order are numbered in date order, orders in order-number order.
        order_key = np.lexsort((np.concatenate(day_parts), np.concatenate(pos_parts)))
        pos, inv_day, inv_due, inv_clr, inv_amt, credit, no_order = (
            np.concatenate(parts)[order_key]
            for parts in (pos_parts, day_parts, due_parts, clr_parts, amt_parts, credit_parts,
                          no_order_parts))
        ids = self._next_invoice + np.arange(len(pos))
        self._next_invoice += len(pos)

        bounds = np.array(timeline.extract_days)
        rec, extract, _ = version_rows(inv_day, [inv_clr], bounds)
        bound = bounds[extract]
        order_col = order_ids.take(pa.array(pos[rec]))
        data = {
            "invoice_id": padded_numbers(ids[rec]),
            "order_id": _null_where(no_order[rec], order_col),
            "customer_number": self.customer_numbers.take(pa.array(record[pos[rec]])),
            "invoice_date": inv_day[rec], "due_date": inv_due[rec],
            "amount": inv_amt[rec],
            "currency": self.currency_names.take(pa.array(orders.currency[idx][pos[rec]] + 1)),
            "cleared_on": np.where(inv_clr[rec] <= bound, inv_clr[rec], NULL),
            "is_credit_note": credit[rec],
        }
        self._append("erp/invoices", extract, data)
        self.counts.invoices += len(pos)

    def _append(self, entity: str, extract: np.ndarray, data: dict) -> None:
        for k in np.unique(extract):
            sel = np.flatnonzero(extract == k)
            part = {}
            for name, values in data.items():
                if isinstance(values, pa.Array):
                    part[name] = values.take(pa.array(sel))
                else:
                    part[name] = np.asarray(values)[sel]
            self.landing.append(entity, int(k), part)


def _null_where(mask: np.ndarray, values: pa.Array) -> pa.Array:
    return pc.if_else(pa.array(mask), pa.scalar(None, pa.string()), values)


def _sales_orgs(erp: CustomerRecords, companies: Companies, world: World) -> list[str]:
    export = world.vocab["export_sales_org"]
    own = companies.frame["sales_org"].to_numpy()[erp.frame["company"].to_numpy()]
    return [export if k == "export_sales_org" else s
            for k, s in zip(erp.frame["kind"], own, strict=True)]
