"""The CRM side's activity: opportunities and their value-driver ratings, service agreements,
service cases and satisfaction surveys.

Each follows the company's hidden truth: projects carry a true value profile (the company's,
or another one for some projects), high-touch customers open more cases and hold more
long-term agreements, satisfaction depends on the tier. Records change over time (stages
move, cases close, agreements expire), so incremental extracts carry newer versions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from dagster_project.generate.companies import Companies, categorical
from dagster_project.generate.crm import Accounts, Batch, office_seconds
from dagster_project.generate.difficulty import Difficulty
from dagster_project.generate.erp import FxRates
from dagster_project.generate.ids import increasing_counters, salesforce_ids
from dagster_project.generate.ratings import rank_drivers, rater_names
from dagster_project.generate.streams import Streams
from dagster_project.generate.timeline import DAY, Timeline
from dagster_project.generate.transactions import Orders
from dagster_project.generate.versions import NEVER, version_rows
from dagster_project.generate.world import World
from dagster_project.generate.writer import NULL

ROLE_OPPORTUNITY_RATE = {"customer": 1.0, "distributor": 1.5, "epc": 2.0, "end_user": 0.5,
                         "partner": 0.4, "competitor": 0.0, "prospect": 0.8}


def _currency(companies: Companies, fx: FxRates, rng: np.random.Generator,
              company: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Deal currency (name, fx index or -1 for EUR): mostly the customer's own, else EUR."""
    own = companies.frame["currency"].to_numpy()[company]
    index = {c: i for i, c in enumerate(fx.currencies)}
    use_own = rng.random(len(company)) < 0.7
    name = np.where(use_own, own, "EUR").astype(object)
    return name, np.array([index.get(c, -1) for c in name])


@dataclass
class Opportunities:
    frame: pd.DataFrame  # opportunity_id, company, account, true value profile, close, outcome
    batches: list[Batch]


def build_opportunities(companies: Companies, accounts: Accounts, fx: FxRates, world: World,
                        diff: Difficulty, timeline: Timeline, streams: Streams) -> Opportunities:
    rng = streams.rng("crm.opportunities")
    vocab = world.vocab
    f = companies.frame
    primary = np.flatnonzero(accounts.primary >= 0)
    size = f["size_tier"].to_numpy()[primary]
    role = f["role"].to_numpy()[primary]
    rate = np.array([vocab["size_factors"][s]["opportunities"] for s in size]) * np.array(
        [ROLE_OPPORTUNITY_RATE[r] for r in role])
    years = timeline.years + 1
    count = rng.poisson(rate * years * 0.6)
    company = np.repeat(primary, count)
    account = accounts.primary[company]
    n = len(company)
    acc_day = accounts.frame["created_sec"].to_numpy()[account] // DAY
    lo = np.maximum(acc_day, timeline.start_day - 365)
    created_day = lo + (rng.random(n) * np.maximum(timeline.end_day - 5 - lo, 1)).astype(np.int64)
    created = office_seconds(created_day, rng)
    duration = np.maximum(14, rng.lognormal(np.log(120), 0.5, n)).astype(np.int64)
    close_day = created_day + duration
    close = office_seconds(close_day, rng)
    p_won = np.where(f["role"].to_numpy()[company] == "prospect", 0.15, 0.45) + np.where(
        f["tier_idx"].to_numpy()[company] == 0, 0.1, 0.0)
    won = rng.random(n) < p_won
    steps = [created + (duration * frac * DAY).astype(np.int64) for frac in (0.25, 0.5, 0.75)]

    lines = companies.product_lines
    opp_weight = np.array([vocab["opportunity_products"][p]["weight"] for p in lines])
    product = categorical(rng, companies.product_mix[company] * opp_weight)
    product_name = np.array(lines, dtype=object)[product]
    deal = np.array([vocab["opportunity_products"][p]["deal"] for p in lines])[product]
    size_amount = np.array([vocab["size_factors"][s]["quantity"] for s in f["size_tier"].to_numpy()[
        company]])
    currency, currency_idx = _currency(companies, fx, rng, company)
    amount = np.round(deal * size_amount * rng.lognormal(0, 0.5, n) / fx.eur_per_unit(
        currency_idx, np.maximum(created_day, timeline.start_day)), -3)
    amount[rng.random(n) < 0.05] = np.nan
    tier = f["tier_idx"].to_numpy()[company]
    service = rng.random(n) < np.array(diff.service_attach_rate)[tier]
    short = np.array([" ".join(b.split()[:2]) for b in f["name_base"].to_numpy()[company]],
                     dtype=object)
    year = (created_day.astype("datetime64[D]").astype("datetime64[Y]").astype(np.int64) + 1970)
    name = np.array([f"{s} - {p} {y}" for s, p, y in zip(short, product_name, year, strict=True)],
                    dtype=object)

    # The project's true value profile: the company's at the time, or another for some projects.
    migrated = f["migrated_day"].to_numpy()[company]
    profile = np.where((migrated >= 0) & (created_day < migrated),
                       f["previous_profile_idx"].to_numpy()[company],
                       f["profile_idx"].to_numpy()[company])
    deviates = rng.random(n) < diff.project_profile_deviation_rate
    profile = np.where(deviates, (profile + rng.integers(1, len(world.value_profiles), n)) % len(
        world.value_profiles), profile)

    order = np.lexsort((np.arange(n), created))
    counters = np.empty(n, dtype=np.int64)
    counters[order] = increasing_counters(rng, n, 40_000_000, 25)
    opp_id = salesforce_ids("006", counters)

    secs = timeline.extract_seconds
    rec, extract, last = version_rows(created, [*steps, close], secs)
    bound = secs[extract]
    passed = sum((s[rec] <= bound).astype(int) for s in steps)
    closed = close[rec] <= bound
    open_stages = np.array(vocab["opportunity_stages"]["open"], dtype=object)
    stage = np.where(closed, np.where(won[rec], "Closed Won", "Closed Lost"),
                     open_stages[np.minimum(passed, len(open_stages) - 1)])
    stage_prob = vocab["opportunity_stages"]["probability"]
    probability = np.array([stage_prob[s] for s in stage], dtype=float)
    probability = np.where(closed, probability, np.clip(
        probability + rng.integers(-5, 6, len(rec)), 0, 100))
    tz = f["tz"].to_numpy()[company]
    account_ids = accounts.frame["account_id"].to_numpy()[account]
    batches = [Batch(k, {
        "opportunity_id": opp_id[rec[extract == k]],
        "account_id": account_ids[rec[extract == k]], "name": name[rec[extract == k]],
        "stage": stage[extract == k], "amount": amount[rec[extract == k]],
        "currency": currency[rec[extract == k]], "probability": probability[extract == k],
        "close_date": close_day[rec[extract == k]], "product_type": product_name[rec[extract == k]],
        "includes_service_agreement": service[rec[extract == k]],
        "created_at": created[rec[extract == k]], "last_modified": last[extract == k],
    }, tz[rec[extract == k]]) for k in range(len(secs))]

    frame = pd.DataFrame({
        "opportunity_id": opp_id, "company": company, "account": account,
        "value_profile_idx": profile, "close_sec": close, "won": won,
        "region": f["region"].to_numpy()[company], "tz": tz,
    })
    return Opportunities(frame=frame, batches=batches)


def rating_batches(opps: Opportunities, world: World, diff: Difficulty, timeline: Timeline,
                   streams: Streams) -> list[Batch]:
    """crm/value_driver_ratings: closed projects ranked by one or two people who knew them."""
    rng = streams.rng("crm.ratings")
    o = opps.frame
    secs = timeline.extract_seconds
    closed = o["close_sec"].to_numpy() < secs[-1] - 2 * DAY
    share = np.where(o["won"].to_numpy(), diff.rated_share_won, diff.rated_share_lost)
    rated = np.flatnonzero(closed & (rng.random(len(o)) < share))
    raters = np.where(rng.random(len(rated)) < diff.second_rater_share, 2, 1)
    opp = np.repeat(rated, raters)
    second = np.arange(len(opp)) - np.repeat(np.cumsum(raters) - raters, raters)
    rated_sec = o["close_sec"].to_numpy()[opp] + rng.integers(1, 30 * DAY, len(opp))
    keep = rated_sec <= secs[-1]
    opp, second, rated_sec = opp[keep], second[keep], rated_sec[keep]

    pools = rater_names(world, streams.rng("crm.raters"))
    region = o["region"].to_numpy()[opp]
    pick = rng.integers(0, 1000, len(opp))
    rated_by = np.empty(len(opp), dtype=object)
    for name, pool in pools.items():
        sel = np.flatnonzero(region == name)
        # A second rater is always another person than the first.
        first_pick = pick[sel] - second[sel]
        rated_by[sel] = pool[(first_pick + second[sel]) % len(pool)]
    ranks = rank_drivers(world, diff, timeline, rng, o["value_profile_idx"].to_numpy()[opp],
                         rated_sec)
    extract = timeline.extract_of_second(rated_sec)
    tz = o["tz"].to_numpy()[opp]
    batches = []
    for k in range(len(secs)):
        sel = np.flatnonzero(extract == k)
        data = {"opportunity_id": o["opportunity_id"].to_numpy()[opp[sel]],
                "rated_by": rated_by[sel], "rated_at": rated_sec[sel]}
        for j, driver in enumerate(world.drivers):
            data[driver] = ranks[sel, j]
        batches.append(Batch(k, data, tz[sel]))
    return batches


def agreement_batches(companies: Companies, accounts: Accounts, fx: FxRates, world: World,
                      diff: Difficulty, timeline: Timeline, streams: Streams) -> list[Batch]:
    """crm/service_agreements: long-term agreements mostly for high-touch customers."""
    rng = streams.rng("crm.agreements")
    vocab = world.vocab
    f = companies.frame
    holders = np.flatnonzero((accounts.primary >= 0) & f["buys"].to_numpy())
    tier = f["tier_idx"].to_numpy()[holders]
    size_factor = np.array([vocab["size_factors"][s]["agreements"] for s in f["size_tier"].to_numpy()[
        holders]])
    count = rng.poisson(np.array(diff.agreements_mean)[tier] * size_factor)
    company = np.repeat(holders, count)
    n = len(company)
    t = f["tier_idx"].to_numpy()[company]
    types = list(vocab["agreement_types"])
    long_term = rng.random(n) < np.array(diff.long_term_agreement_share)[t]
    kind = np.where(long_term, np.where(rng.random(n) < 0.6, types[1], types[2]), types[0])
    lo = f["active_from_day"].to_numpy()[company] - 730
    hi = np.minimum(f["active_to_day"].to_numpy()[company], timeline.end_day - 30)
    start = lo + (rng.random(n) * np.maximum(hi - lo, 1)).astype(np.int64)
    spec = [vocab["agreement_types"][k] for k in kind]
    years = np.array([rng.integers(s["years"][0], s["years"][1] + 1) for s in spec])
    end = start + (years * 365.25).astype(np.int64)
    size_amount = np.array([vocab["size_factors"][s]["agreements"] for s in f["size_tier"].to_numpy()[
        company]])
    currency, currency_idx = _currency(companies, fx, rng, company)
    value = np.round(np.array([s["annual_value"] for s in spec]) * size_amount * rng.lognormal(
        0, 0.4, n) / fx.eur_per_unit(currency_idx, np.maximum(start, timeline.start_day)), -2)
    cancelled = rng.random(n) < 0.05
    cancel_day = start + (rng.random(n) * (end - start)).astype(np.int64)
    cancel_sec = np.where(cancelled, office_seconds(cancel_day, rng), NEVER)
    created = office_seconds(start - rng.integers(0, 30, n), rng)
    expiry_sec = (end + 1) * DAY
    order = np.lexsort((np.arange(n), created))
    counters = np.empty(n, dtype=np.int64)
    counters[order] = increasing_counters(rng, n, 70_000_000, 25)
    agreement_id = salesforce_ids("a0B", counters)
    end_shown = np.where(rng.random(n) < 0.05, NULL, end)

    secs = timeline.extract_seconds
    rec, extract, last = version_rows(created, [cancel_sec, expiry_sec], secs)
    bound = secs[extract]
    status = np.where(cancel_sec[rec] <= bound, "Cancelled",
                      np.where(expiry_sec[rec] <= bound, "Expired", "Active")).astype(object)
    account_ids = accounts.frame["account_id"].to_numpy()[accounts.primary[company]]
    tz = f["tz"].to_numpy()[company]
    return [Batch(k, {
        "agreement_id": agreement_id[rec[extract == k]],
        "account_id": account_ids[rec[extract == k]],
        "agreement_type": kind[rec[extract == k]], "start_date": start[rec[extract == k]],
        "end_date": end_shown[rec[extract == k]], "annual_value": value[rec[extract == k]],
        "currency": currency[rec[extract == k]], "status": status[extract == k],
        "last_modified": last[extract == k],
    }, tz[rec[extract == k]]) for k in range(len(secs))]


def case_batches(companies: Companies, accounts: Accounts, orders: Orders,
                 world: World, diff: Difficulty, timeline: Timeline, streams: Streams) -> list[Batch]:
    """crm/cases: service cases, more for high-touch and service-draining customers."""
    rng = streams.rng("crm.cases")
    vocab = world.vocab
    f = companies.frame
    holders = np.flatnonzero((accounts.primary >= 0) & f["buys"].to_numpy())
    tier = f["tier_idx"].to_numpy()[holders]
    size_factor = np.array([vocab["size_factors"][s]["cases"] for s in f["size_tier"].to_numpy()[
        holders]])
    start = f["active_from_day"].to_numpy()[holders]
    stop = np.minimum(f["active_to_day"].to_numpy()[holders] + 60, timeline.end_day)
    years = np.maximum(stop - start, 0) / 365.25
    draining = np.where(f["service_draining"].to_numpy()[holders], diff.draining_case_multiplier, 1)
    count = rng.poisson(np.array(diff.cases_per_year)[tier] * size_factor * years * draining)
    company = np.repeat(holders, count)
    n = len(company)
    day = np.repeat(start, count) + (rng.random(n) * np.repeat(np.maximum(stop - start, 1), count)
                                     ).astype(np.int64)
    created = np.minimum(office_seconds(day, rng), timeline.extract_seconds[-1] - 3600)
    case_types = list(vocab["case_types"])
    case_type = np.array(case_types, dtype=object)[categorical(
        rng, np.tile([vocab["case_types"][c] for c in case_types], (n, 1)))]
    severities = list(vocab["case_severities"])
    severity_idx = categorical(rng, np.tile([vocab["case_severities"][s] for s in severities], (n, 1)))
    severity = np.array(severities, dtype=object)[severity_idx]
    severity[rng.random(n) < 0.05] = None
    hours = rng.lognormal(np.log(96), 1.0, n) * (1 + severity_idx)
    closed = created + (hours * 3600).astype(np.int64)

    # The ERP order the case is about: the company's latest order before the case, if any.
    span = 1 << 20  # day numbers stay far below this
    order_key = orders.company.astype(np.int64) * span + orders.day
    by_company = np.argsort(order_key, kind="stable")
    latest = np.searchsorted(order_key[by_company], company.astype(np.int64) * span + day,
                             side="right") - 1
    found = latest >= 0
    found[found] = orders.company[by_company[latest[found]]] == company[found]
    has_order = found & (rng.random(n) < 0.65)
    reference = np.full(n, None, dtype=object)
    if has_order.any():
        numbers = orders.number[by_company[latest[has_order]]]
        reference[has_order] = np.char.zfill(numbers.astype(str), 10).astype(object)

    order = np.lexsort((np.arange(n), created))
    counters = np.empty(n, dtype=np.int64)
    counters[order] = increasing_counters(rng, n, 50_000_000, 25)
    case_id = salesforce_ids("500", counters)
    secs = timeline.extract_seconds
    rec, extract, last = version_rows(created, [closed], secs)
    bound = secs[extract]
    is_closed = closed[rec] <= bound
    status = np.where(is_closed, "Closed", np.where(bound - created[rec] > 2 * DAY, "In Progress",
                                                    "New")).astype(object)
    account_ids = accounts.frame["account_id"].to_numpy()[accounts.primary[company]]
    tz = f["tz"].to_numpy()[company]
    return [Batch(k, {
        "case_id": case_id[rec[extract == k]], "account_id": account_ids[rec[extract == k]],
        "case_type": case_type[rec[extract == k]], "severity": severity[rec[extract == k]],
        "order_reference": reference[rec[extract == k]],
        "created_at": created[rec[extract == k]],
        "closed_at": np.where(is_closed[extract == k], closed[rec[extract == k]], NULL),
        "status": status[extract == k], "last_modified": last[extract == k],
    }, tz[rec[extract == k]]) for k in range(len(secs))]


def survey_batches(companies: Companies, accounts: Accounts, world: World, diff: Difficulty,
                   timeline: Timeline, streams: Streams, extracts: tuple[int, ...]) -> list[Batch]:
    """crm/surveys: CSAT and NPS answers, with free-text comments (personal data)."""
    rng = streams.rng("crm.surveys")
    vocab = world.vocab
    f = companies.frame
    holders = np.flatnonzero((accounts.primary >= 0) & f["buys"].to_numpy())
    size_factor = np.array([vocab["size_factors"][s]["surveys"] for s in f["size_tier"].to_numpy()[
        holders]])
    count = rng.poisson(0.5 * timeline.years * size_factor)
    company = np.repeat(holders, count)
    n = len(company)
    start = f["active_from_day"].to_numpy()[company]
    stop = f["active_to_day"].to_numpy()[company]
    day = start + (rng.random(n) * np.maximum(stop - start, 1)).astype(np.int64)
    responded = np.minimum(office_seconds(day, rng), timeline.extract_seconds[-1] - 3600)
    tier = f["tier_idx"].to_numpy()[company]
    draining = f["service_draining"].to_numpy()[company]
    csat = np.clip(np.round(rng.normal(np.array(diff.csat_mean)[tier] - 0.6 * draining, 0.8)), 1, 5)
    nps = np.clip(np.round(2.2 * csat - 1.5 + rng.normal(0, 1.5, n)), 0, 10)
    band = np.where(csat <= 2, "low", np.where(csat == 3, "mid", "high"))
    comment = np.empty(n, dtype=object)
    pick = rng.random(n)
    for name in ("low", "mid", "high"):
        sel = np.flatnonzero(band == name)
        texts = np.array(vocab["survey_comments"][name], dtype=object)
        comment[sel] = texts[(pick[sel] * len(texts)).astype(int)]
    comment[rng.random(n) < diff.comment_missing_rate] = None
    # A few comments were typed over two lines: quoted fields spanning physical lines.
    broken = (comment != None) & (rng.random(n) < diff.comment_newline_rate)  # noqa: E711
    for i in np.flatnonzero(broken):
        text = comment[i]
        comment[i] = text.replace(", ", ",\n", 1) if ", " in text else text.replace(" ", "\n", 1)
    order = np.lexsort((np.arange(n), responded))
    counters = np.empty(n, dtype=np.int64)
    counters[order] = increasing_counters(rng, n, 60_000_000, 25)
    survey_id = salesforce_ids("a1S", counters)
    bounds = timeline.extract_seconds[list(extracts)]
    rec, position, _ = version_rows(responded, [], bounds)
    account_ids = accounts.frame["account_id"].to_numpy()[accounts.primary[company]]
    tz = f["tz"].to_numpy()[company]
    return [Batch(k, {
        "survey_id": survey_id[rec[position == p]],
        "account_id": account_ids[rec[position == p]],
        "responded_at": responded[rec[position == p]], "csat": csat[rec[position == p]],
        "nps": nps[rec[position == p]], "comment": comment[rec[position == p]],
    }, tz[rec[position == p]]) for p, k in enumerate(extracts)]
