"""The ERP side: customer master records (with re-created, export and merged duplicates),
the material master and monthly fx rates.

Customer records are the ERP's view of the companies: upper-case, abbreviated and
transliterated names, legacy customer groups of the era they were created in, payment terms,
deletion and order blocks. `CustomerRecords.route` tells the transactions which customer
number an order of a company lands on at a given day.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

from dagster_project.generate.companies import Companies, categorical, weights_matrix
from dagster_project.generate.difficulty import Difficulty
from dagster_project.generate.ids import erp_numbers, increasing_counters
from dagster_project.generate.labels import draw_legacy_labels, year_of
from dagster_project.generate.streams import Streams
from dagster_project.generate.text import Transliterator, apply, split_name
from dagster_project.generate.timeline import Timeline, day_number
from dagster_project.generate.versions import NEVER, version_rows
from dagster_project.generate.world import World

KIND_PRIMARY, KIND_RECREATED_OLD, KIND_EXPORT, KIND_ABSORBED = (
    "primary", "recreated_old", "export_sales_org", "absorbed_predecessor")


@dataclass
class CustomerRecords:
    """ERP customer records and how a company's orders are routed to them."""

    frame: pd.DataFrame  # one row per customer number
    primary: np.ndarray  # company -> record index (-1 when not in ERP)
    alt: np.ndarray  # company -> second record index (-1 when none)
    alt_from: np.ndarray  # day range in which orders may go to the second record
    alt_to: np.ndarray
    alt_share: np.ndarray  # share of the orders in that range that go there
    order_until: np.ndarray  # company -> last day orders are placed (deletions, blocks)

    def numbers(self) -> np.ndarray:
        return self.frame["customer_number"].to_numpy()

    def route(self, company: np.ndarray, day: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Record index of each order."""
        alt = self.alt[company]
        use_alt = (alt >= 0) & (day >= self.alt_from[company]) & (day < self.alt_to[company]) & (
            u < self.alt_share[company])
        return np.where(use_alt, alt, self.primary[company])


def build_customers(companies: Companies, world: World, diff: Difficulty, timeline: Timeline,
                    streams: Streams) -> CustomerRecords:
    rng = streams.rng("erp.customers")
    f = companies.frame
    n = len(f)
    erp_since = day_number(date(world.vocab["history"]["erp_since_year"], 1, 1))
    in_erp = f["in_erp"].to_numpy()
    idx = np.flatnonzero(in_erp)
    created = np.clip(f["known_since_day"].to_numpy() + rng.integers(0, 60, n), erp_since,
                      timeline.end_day - 1)

    alt = np.full(n, -1)
    alt_from = np.full(n, np.iinfo(np.int64).min)
    alt_to = np.full(n, NEVER)
    alt_share = np.zeros(n)
    deletion = np.full(n, NEVER)
    block = np.full(n, NEVER)
    order_until = f["active_to_day"].to_numpy().copy()

    rows: list[dict] = []

    def add(company: int, kind: str, created_day: int, **extra) -> int:
        rows.append({"company": company, "kind": kind, "created_day": created_day,
                     "deletion_day": NEVER, "block_day": NEVER, **extra})
        return len(rows) - 1

    primary = np.full(n, -1)
    for c in idx:
        primary[c] = add(int(c), KIND_PRIMARY, int(created[c]))

    absorbed = companies.absorbed
    for row in absorbed.itertuples(index=False):
        c = int(row.company)
        born = max(erp_since, int(created[c]) - int(rng.integers(365, 6 * 365)))
        r = add(c, KIND_ABSORBED, born, legal_name=row.legal_name, name_base=row.name_base,
                legal_form=row.legal_form, vat=row.vat)
        alt[c], alt_to[c], alt_share[c] = r, int(row.merger_day), 0.4
        if rng.random() < 0.6:
            rows[r]["deletion_day"] = int(row.merger_day) + int(rng.integers(30, 400))

    buys = f["buys"].to_numpy()
    u = rng.random((n, 4))
    late_enough = created < timeline.end_day - 500
    recreated = in_erp & (alt < 0) & late_enough & (u[:, 0] < diff.erp_duplicate_rate)
    for c in np.flatnonzero(recreated):
        lo = max(int(created[c]) + 365, timeline.start_day - 730)
        day = lo + int(u[c, 1] * max(timeline.end_day - 90 - lo, 1))
        old = primary[c]
        rows[old]["kind"] = KIND_RECREATED_OLD
        rows[old]["deletion_day"] = day + int(rng.integers(0, 200))
        new = add(int(c), KIND_PRIMARY, day)
        primary[c] = new
        alt[c], alt_to[c], alt_share[c] = old, day, 1.0
    export = in_erp & buys & (alt < 0) & (u[:, 2] < diff.erp_sales_org_duplicate_rate)
    for c in np.flatnonzero(export):
        lo = max(int(created[c]) + 30, timeline.start_day)
        day = lo + int(u[c, 3] * max(timeline.end_day - 120 - lo, 1))
        alt[c] = add(int(c), KIND_EXPORT, day)
        alt_from[c], alt_share[c] = day, 0.25

    # Churned customers are often deletion-flagged later; some are blocked for credit reasons.
    # A share of deleted or blocked customers still gets orders afterwards.
    churned = f["churned"].to_numpy()
    deleted = churned & (rng.random(n) < 0.5)
    deletion[deleted] = f["active_to_day"].to_numpy()[deleted] + rng.integers(60, 500, n)[deleted]
    blocked = in_erp & ~deleted & (rng.random(n) < diff.order_block_rate)
    block[blocked] = rng.integers(timeline.start_day, timeline.end_day, n)[blocked]
    flagged = deleted | blocked
    late_orders = flagged & (rng.random(n) < 0.25)
    stop_day = np.minimum(deletion, block)
    order_until = np.where(flagged & ~late_orders, np.minimum(order_until, stop_day - 1),
                           order_until)
    order_until = np.where(late_orders, np.maximum(order_until, np.minimum(
        stop_day + rng.integers(5, 120, n), timeline.end_day)), order_until)
    for c in np.flatnonzero(in_erp & flagged):
        rows[primary[c]]["deletion_day"] = int(deletion[c])
        rows[primary[c]]["block_day"] = int(block[c])

    frame = pd.DataFrame(rows)
    frame = _number_records(frame, rng)
    return CustomerRecords(frame=frame, primary=primary, alt=alt, alt_from=alt_from, alt_to=alt_to,
                           alt_share=alt_share, order_until=order_until)


def _number_records(frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Customer numbers increase with creation date, as the ERP's number range hands them out."""
    order = np.lexsort((np.arange(len(frame)), frame["created_day"].to_numpy()))
    numbers = np.empty(len(frame), dtype=np.int64)
    numbers[order] = increasing_counters(rng, len(frame), 100_000, 9)
    frame["customer_number"] = erp_numbers(numbers)
    return frame


def customer_versions(records: CustomerRecords, companies: Companies, world: World,
                      diff: Difficulty, timeline: Timeline, streams: Streams) -> list[dict]:
    """The erp/customers rows of each extract (full, then incrementals), as column arrays."""
    rng = streams.rng("erp.customer_rows")
    vocab = world.vocab
    translit = Transliterator(vocab["transliteration"])
    rec = records.frame
    f = companies.frame
    m = len(rec)
    company = rec["company"].to_numpy()
    c = f.iloc[company]
    absorbed = (rec["kind"] == KIND_ABSORBED).to_numpy()

    # Names: the legal name with the ERP's legal-form abbreviation, upper case, transliterated.
    base = np.where(absorbed, rec.get("name_base", pd.Series([None] * m)).to_numpy(),
                    c["name_base"].to_numpy())
    form = np.where(absorbed, rec.get("legal_form", pd.Series([None] * m)).to_numpy(),
                    c["legal_form"].to_numpy())
    full = np.array([b if fm is None else f"{b} {vocab['legal_forms'][fm]['erp']}"
                     for b, fm in zip(base, form, strict=True)], dtype=object)
    upper = rng.random(m) < diff.erp_upper_case_rate
    translit_mask = rng.random(m) < diff.erp_transliterate_rate
    full = apply(full, upper, str.upper)
    full = apply(full, translit_mask & upper, translit.upper)
    full = apply(full, translit_mask & ~upper, translit.mixed)
    split = [split_name(x, diff.erp_name_length) for x in full]
    name1 = np.array([s[0] for s in split], dtype=object)
    name2 = np.array([s[1] for s in split], dtype=object)
    export = (rec["kind"] == KIND_EXPORT).to_numpy()
    name2 = np.where(export & (name2 == None), "EXPORT", name2)  # noqa: E711

    street = apply(c["street"].to_numpy(), upper, str.upper)
    street = apply(street, translit_mask & upper, translit.upper)
    abbreviate = upper & (rng.random(m) < diff.erp_street_abbreviation_rate)
    for long, short in vocab["erp_street_abbreviations"].items():
        street = apply(street, abbreviate, lambda s, a=long, b=short: s.replace(a, b))
    city = apply(c["city"].to_numpy(), upper, str.upper)
    city = apply(city, translit_mask & upper, translit.upper)

    vat = np.where(absorbed, rec.get("vat", pd.Series([None] * m)).to_numpy(), c["vat"].to_numpy())
    vat_u = rng.random(m)
    vat = np.where(vat_u < diff.erp_vat_missing_rate, None, vat)
    no_prefix = (vat_u >= diff.erp_vat_missing_rate) & (
        vat_u < diff.erp_vat_missing_rate + diff.erp_vat_no_prefix_rate)
    vat = apply(vat, no_prefix, lambda s: s[2:])

    created = rec["created_day"].to_numpy()
    group = draw_legacy_labels(
        vocab["legacy_labels"]["erp_customer_group"], world, rng,
        sub_idx=c["sub_idx"].to_numpy(), size=c["size_tier"].to_numpy(), role=c["role"].to_numpy(),
        year=year_of(created), noise_rate=diff.legacy_label_noise_rate,
        missing_rate=diff.erp_customer_group_missing_rate)
    terms_vocab = vocab["payment_terms_by_size"]
    term_names = list(vocab["payment_terms"])
    terms = np.array(term_names, dtype=object)[categorical(
        rng, weights_matrix([terms_vocab[s] for s in c["size_tier"]], term_names))]
    limit_base = np.array([vocab["size_tiers"][s]["credit_limit"] for s in c["size_tier"]], float)
    credit = np.round(limit_base * rng.lognormal(0, 0.4, m), -3)
    credit[rng.random(m) < 0.1] = np.nan
    sales_org = np.where(export, vocab["export_sales_org"], c["sales_org"].to_numpy())

    # Versions: new records, deletions, blocks and random master-data updates.
    bounds = np.array(timeline.extract_days)
    updates = [np.where(rng.random(m) < diff.incremental_update_rate,
                        rng.integers(bounds[k - 1] + 1, bounds[k] + 1, m), NEVER)
               for k in range(1, len(bounds))]
    deletion = rec["deletion_day"].to_numpy()
    block = rec["block_day"].to_numpy()
    rec_idx, extract, _ = version_rows(created, [deletion, block, *updates], bounds)
    bound = bounds[extract]
    changed_terms = np.zeros(len(rec_idx), dtype=bool)
    for k, upd in enumerate(updates, start=1):
        changed_terms |= (extract >= k) & (upd[rec_idx] <= bound) & (rng.random(len(rec_idx)) < 0.3)
    row_terms = np.where(changed_terms, np.array(term_names, dtype=object)[
        rng.integers(0, len(term_names), len(rec_idx))], terms[rec_idx])
    out = []
    for k in range(len(bounds)):
        sel = extract == k
        r = rec_idx[sel]
        out.append({
            "customer_number": rec["customer_number"].to_numpy()[r],
            "name1": name1[r], "name2": name2[r], "street": street[r],
            "postal_code": c["postal_code"].to_numpy()[r], "city": city[r],
            "country": c["country"].to_numpy()[r], "vat_number": vat[r],
            "customer_group": group[r], "payment_terms": row_terms[sel],
            "credit_limit": credit[r], "sales_org": sales_org[r], "created_on": created[r],
            "deletion_flag": deletion[r] <= bound[sel], "order_block": block[r] <= bound[sel],
        })
    return out


def payment_terms_days(records: CustomerRecords, versions: list[dict], world: World) -> np.ndarray:
    """Payment term days per customer record, as of its newest extract."""
    days = np.zeros(len(records.frame), dtype=np.int64)
    index = {num: i for i, num in enumerate(records.numbers())}
    for rows in versions:
        for num, term in zip(rows["customer_number"], rows["payment_terms"], strict=True):
            days[index[num]] = world.vocab["payment_terms"][term]
    return days


@dataclass
class Materials:
    frame: pd.DataFrame  # material_number, description, product_line, category, unit, cost, line_idx, specialty, intro_day


def build_materials(world: World, timeline: Timeline, streams: Streams) -> Materials:
    rng = streams.rng("erp.materials")
    lines = world.vocab["product_lines"]
    rows = []
    for line_idx, (line, spec) in enumerate(lines.items()):
        count = int(spec["materials"])
        lo, hi = spec["cost"]
        cost = np.exp(rng.uniform(np.log(lo), np.log(hi), count))
        specialty = rng.random(count) < spec["specialty"]
        # Most of the catalogue predates the history; some products are launched during it.
        launched = rng.random(count) < 0.08
        intro = np.where(launched, rng.integers(timeline.start_day, timeline.end_day - 20, count),
                         timeline.start_day - 3650)
        for j in range(count):
            template = spec["descriptions"][j % len(spec["descriptions"])]
            size = int(rng.integers(1, 60)) * (10 if "MW" not in template else 1)
            rows.append({
                "material_number": f"{(line_idx + 1) * 10}{j + 1:06d}",
                "description": template.format(n=size),
                "product_line": line, "line_idx": line_idx,
                "category": "Specialty" if specialty[j] else "Commodity",
                "specialty": bool(specialty[j]), "unit": spec["unit"],
                "standard_cost": round(float(cost[j]), 2), "intro_day": int(intro[j]),
            })
    frame = pd.DataFrame(rows)
    # A product launched after the full extract arrives in the incremental material file.
    late = timeline.extract_days[0] + 1
    if not (frame["intro_day"] >= late).any():
        frame.loc[frame.index[-2:], "intro_day"] = late + 1
    return Materials(frame=frame)


def material_versions(materials: Materials, timeline: Timeline,
                      extracts: tuple[int, ...]) -> list[tuple[int, dict]]:
    """(extract index, columns) of the erp/materials Parquet files: full, then new products."""
    f = materials.frame
    bounds = np.array([timeline.extract_days[k] for k in extracts])
    rec_idx, extract, _ = version_rows(f["intro_day"].to_numpy(), [], bounds)
    out = []
    for pos, k in enumerate(extracts):
        r = rec_idx[extract == pos]
        out.append((k, {c: f[c].to_numpy()[r] for c in (
            "material_number", "description", "product_line", "category", "unit",
            "standard_cost")}))
    return out


@dataclass
class FxRates:
    currencies: tuple[str, ...]
    first_month: int  # month number (months since 1970-01)
    rates: np.ndarray  # (currencies, months): EUR per unit
    missing: tuple[tuple[int, int], ...]  # (currency index, month index) left out of the files

    def eur_per_unit(self, currency_idx: np.ndarray, day: np.ndarray) -> np.ndarray:
        """Rate of each row's currency in the month of its day; index -1 is EUR (1.0)."""
        month = day.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64) - self.first_month
        month = np.clip(month, 0, self.rates.shape[1] - 1)
        eur = currency_idx < 0
        return np.where(eur, 1.0, self.rates[np.maximum(currency_idx, 0), month])


def build_fx(world: World, diff: Difficulty, timeline: Timeline, streams: Streams) -> FxRates:
    rng = streams.rng("erp.fx")
    spec = world.vocab["currencies"]
    names = tuple(spec)
    first = int(np.datetime64(timeline.start_day, "D").astype("datetime64[M]").astype(np.int64)) - 1
    last = int(np.datetime64(timeline.end_day, "D").astype("datetime64[M]").astype(np.int64))
    months = last - first + 1
    vol = np.array([spec[c]["volatility"] for c in names])
    base = np.array([spec[c]["eur_per_unit"] for c in names])
    walk = np.cumsum(rng.normal(0, 1, (len(names), months)) * vol[:, None], axis=1)
    rates = np.round(base[:, None] * np.exp(walk - walk[:, :1]), 6)
    missing = []
    full_month = int(np.datetime64(timeline.extract_days[0], "D").astype("datetime64[M]").astype(
        np.int64)) - first
    for _ in range(diff.missing_fx_months):
        if full_month > 3:
            missing.append((int(rng.integers(0, len(names))), int(rng.integers(2, full_month - 1))))
    return FxRates(currencies=names, first_month=first, rates=rates, missing=tuple(missing))


def fx_versions(fx: FxRates, timeline: Timeline) -> list[tuple[int, dict]]:
    """(extract index, columns) of the erp/fx_rates Parquet files: one row per currency and month."""
    n_cur, n_months = fx.rates.shape
    cur, month = np.meshgrid(np.arange(n_cur), np.arange(n_months), indexing="ij")
    cur, month = cur.ravel(), month.ravel()
    keep = np.ones(len(cur), dtype=bool)
    for c, m in fx.missing:
        keep &= ~((cur == c) & (month == m))
    cur, month = cur[keep], month[keep]
    rate_day = (month + fx.first_month).astype("datetime64[M]").astype("datetime64[D]").astype(
        np.int64)
    extract = timeline.extract_of_day(rate_day)
    out = []
    for k in range(len(timeline.extract_days)):
        sel = extract == k
        out.append((k, {"currency": np.array(fx.currencies, dtype=object)[cur[sel]],
                        "rate_date": rate_day[sel], "eur_per_unit": fx.rates[cur[sel], month[sel]]}))
    return out

