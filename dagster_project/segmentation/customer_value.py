"""Customer value (DESIGN.md "Segments", 4): buy-till-you-die features as of the as-of date,
RFM scores and named groups (seeds/rfm_groups.csv), expected purchases and CLV (clv_model.py),
and a firmographic size tier (seeds/size_tiers.csv).

Definitions (DESIGN.md metric dictionary): an order's net value is the sum of its lines' EUR
revenue (credit lines negative); a purchase day is a day with at least one order of positive net
value, worth the sum of those orders; frequency = purchase days after the first; recency_days =
first to last purchase day; t_days = first purchase day to the as-of; monetary_value = mean value
of the repeat purchase days (null without any); days_since_last_purchase = last purchase day to
the as-of (RFM recency). Orders after the as-of are ignored.
"""

from __future__ import annotations

import datetime as dt

import duckdb
import numpy as np
import pandas as pd

from dagster_project.segmentation.clv_model import ClvFit, predict_clv
from dagster_project.segmentation.explain import inputs_json_rows, stamp
from dagster_project.segmentation.settings import CustomerValueSettings

BTYD_SQL = """
with lines as (
    select customer_id, order_id, cast(order_date as date) as order_date, net_value_eur
    from ({transactions})
    where customer_id is not null and cast(order_date as date) <= $as_of
),
orders as (
    select customer_id, order_id, order_date, sum(net_value_eur) as order_value
    from lines
    group by customer_id, order_id, order_date
),
purchase_days as (
    select customer_id, order_date as purchase_day, sum(order_value) as day_value
    from orders
    where order_value > 0
    group by customer_id, order_date
),
first_days as (
    select customer_id, min(purchase_day) as first_purchase_day
    from purchase_days
    group by customer_id
)
-- repeat days: after the customer's first (a join on the first day costs less than numbering
-- the days in a window; day values are exact decimals, so the averages do not change)
select
    customer_id,
    count(*) - 1 as frequency,
    date_diff('day', min(purchase_day), max(purchase_day)) as recency_days,
    date_diff('day', min(purchase_day), $as_of) as t_days,
    avg(case when purchase_day > first_purchase_day then day_value end) as monetary_value,
    date_diff('day', max(purchase_day), $as_of) as days_since_last_purchase,
    avg(day_value) as mean_purchase_day_value,
    min(purchase_day) as first_purchase_day,
    max(purchase_day) as last_purchase_day
from purchase_days
inner join first_days using (customer_id)
group by customer_id
order by customer_id
"""


def btyd_features(
    con: duckdb.DuckDBPyConnection, transactions_sql: str, as_of: dt.date
) -> pd.DataFrame:
    """Buy-till-you-die features per customer with at least one purchase day up to `as_of`.

    `transactions_sql` selects order lines: customer_id, order_id, order_date, net_value_eur.
    """
    return con.execute(BTYD_SQL.format(transactions=transactions_sql), {"as_of": as_of}).df()


def quantile_scores(values: pd.Series, bins: int, higher_is_better: bool = True) -> pd.Series:
    """1..bins by cumulative share (ties share a score, so equal inputs never score apart)."""
    ranked = values if higher_is_better else -values
    share = ranked.rank(method="max", pct=True)
    return np.ceil(share * bins).clip(1, bins).astype("Int64")


def rfm_group(scores: pd.DataFrame, groups: pd.DataFrame, fallback: str) -> pd.Series:
    """The first group (by priority) whose R/F/M score ranges contain the customer's scores."""
    result = pd.Series(fallback, index=scores.index, dtype=object)
    assigned = pd.Series(False, index=scores.index)
    for group in groups.sort_values("priority").itertuples():
        hit = ~assigned
        for letter in ("r", "f", "m"):
            score = scores[f"rfm_{letter}"]
            hit &= score.between(getattr(group, f"{letter}_min"), getattr(group, f"{letter}_max"))
        hit = hit.fillna(False).astype(bool)
        result[hit] = group.rfm_group
        assigned |= hit
    return result


def size_tier(
    employees: pd.Series, revenue_365d: pd.Series, tiers: pd.DataFrame
) -> tuple[pd.Series, pd.Series]:
    """Firmographic tier from head count; revenue of the last 365 days where it is unknown.
    Returns (tier, basis)."""
    ordered = tiers.sort_values("rank")
    employees = employees.astype(float)
    revenue = revenue_365d.astype(float).fillna(0).to_numpy()
    by_employees = np.select(
        [employees.fillna(-1).to_numpy() >= t.min_employees for t in ordered.itertuples()],
        ordered["size_tier"].tolist(),
        default=ordered["size_tier"].iloc[-1],
    )
    by_revenue = np.select(
        [revenue >= t.min_revenue_eur_365d for t in ordered.itertuples()],
        ordered["size_tier"].tolist(),
        default=ordered["size_tier"].iloc[-1],
    )
    known = employees.notna()
    tier = pd.Series(np.where(known, by_employees, by_revenue), index=employees.index)
    basis = pd.Series(np.where(known, "employees", "revenue_eur_365d"), index=employees.index)
    return tier, basis


def assign_customer_value(
    btyd: pd.DataFrame,
    features: pd.DataFrame,
    as_of: dt.date,
    rules: CustomerValueSettings,
    rfm_groups: pd.DataFrame,
    size_tiers: pd.DataFrame,
    scheme_version: str,
) -> tuple[pd.DataFrame, ClvFit]:
    """The `customer_value` table: one row per customer of `features` (customer_features);
    `btyd` is btyd_features() of the same as-of."""
    customers = features[["customer_id", "employees", "revenue_eur_365d"]].copy()
    customers["revenue_eur_365d"] = customers["revenue_eur_365d"].astype(float)
    frame = customers.merge(btyd, on="customer_id", how="left").sort_values("customer_id")
    frame = frame.reset_index(drop=True)

    buyers = frame["frequency"].notna()
    bins = rules.rfm_bins
    for letter, column, higher in (
        ("r", "days_since_last_purchase", False),
        ("f", "frequency", True),
        ("m", "mean_purchase_day_value", True),
    ):
        frame[f"rfm_{letter}"] = pd.Series(pd.NA, index=frame.index, dtype="Int64")
        frame.loc[buyers, f"rfm_{letter}"] = quantile_scores(
            frame.loc[buyers, column].astype(float), bins, higher
        )
    frame["rfm_group"] = rfm_group(frame, rfm_groups, rules.no_purchase_group)

    clv, fit = predict_clv(
        frame.loc[buyers, ["customer_id", "frequency", "recency_days", "t_days", "monetary_value"]],
        rules.horizon_days,
        rules.annual_discount_rate,
        rules.bgnbd_penalizer,
        rules.gamma_gamma_penalizer,
        rules.min_repeat_customers_to_fit,
    )
    frame = frame.merge(clv, on="customer_id", how="left")
    frame["size_tier"], frame["size_tier_basis"] = size_tier(
        frame["employees"], frame["revenue_eur_365d"], size_tiers
    )

    has_purchases = frame["frequency"].notna().to_numpy()
    frequency = frame["frequency"].to_numpy(dtype=float, na_value=np.nan)
    rfm = (
        "CV.RFM_"
        + frame["rfm_r"].astype(str)
        + frame["rfm_f"].astype(str)
        + frame["rfm_m"].astype(str)
    ).to_numpy(dtype=object)
    size_code = ("CV.SIZE_BY_" + frame["size_tier_basis"].str.upper()).to_numpy(dtype=object)
    extra = np.select(
        [has_purchases & (not fit.fitted), has_purchases & (frequency == 0)],
        ["CV.CLV_MODEL_NOT_FITTED", "CV.SINGLE_PURCHASE_DAY"],
        "",
    )
    # RFM code (or CV.NO_PURCHASE_DAYS);size code[;extra code], ';'-joined whole columns at once
    extra = extra.astype(object)
    reasons = (
        np.where(has_purchases, rfm, "CV.NO_PURCHASE_DAYS").astype(object)
        + ";"
        + size_code
        + np.where(extra != "", ";" + extra, "").astype(object)
    ).tolist()
    inputs = inputs_json_rows(
        {
            "first_purchase_day": frame["first_purchase_day"],
            "frequency": frame["frequency"],
            "employees": frame["employees"],
            "revenue_eur_365d": frame["revenue_eur_365d"],
        }
    )
    # RFM and CLV are only as good as the history behind them: repeat days build confidence.
    confidence = np.where(has_purchases, np.round(np.minimum(1.0, (frequency + 1) / 5), 4), 0.0)

    out = pd.DataFrame(
        {
            "customer_id": frame["customer_id"],
            "frequency": frame["frequency"].astype("Int64"),
            "recency_days": frame["recency_days"].astype("Int64"),
            "t_days": frame["t_days"].astype("Int64"),
            "monetary_value": frame["monetary_value"].astype(float).round(4),
            "days_since_last_purchase": frame["days_since_last_purchase"].astype("Int64"),
            "first_purchase_day": frame["first_purchase_day"],
            "last_purchase_day": frame["last_purchase_day"],
            "rfm_r": frame["rfm_r"],
            "rfm_f": frame["rfm_f"],
            "rfm_m": frame["rfm_m"],
            "rfm_group": frame["rfm_group"],
            "expected_purchases_365d": frame["expected_purchases"],
            "expected_purchase_value_eur": frame["expected_purchase_value"],
            "clv_365d_eur": frame["clv_eur"],
            "size_tier": frame["size_tier"],
            "size_tier_basis": frame["size_tier_basis"],
            "confidence": confidence,
            "reason_codes": reasons,
            "inputs": inputs,
        }
    )
    return stamp(out, scheme_version, as_of), fit
