"""Customer value: the buy-till-you-die features are exact by their definitions on hand-made
transaction histories; RFM scores, groups and size tiers follow the seeds; CLV comes from a fit."""

from __future__ import annotations

import datetime as dt

import duckdb
import numpy as np
import pandas as pd
import pytest

from dagster_project.segmentation.assign import read_seed
from dagster_project.segmentation.clv_model import predict_clv
from dagster_project.segmentation.customer_value import (
    assign_customer_value,
    btyd_features,
    quantile_scores,
    rfm_group,
    size_tier,
)
from dagster_project.segmentation.settings import load_segmentation_settings

AS_OF = dt.date(2024, 12, 31)
LINES = "select * from lines"


def _btyd(rows: list[tuple]) -> pd.DataFrame:
    con = duckdb.connect()
    lines = pd.DataFrame(rows, columns=["customer_id", "order_id", "order_date", "net_value_eur"])
    lines["order_date"] = pd.to_datetime(lines["order_date"]).dt.date
    con.register("lines", lines)
    return btyd_features(con, LINES, AS_OF).set_index("customer_id")


def test_several_orders_on_one_day_make_one_purchase_day_worth_their_sum():
    got = _btyd([
        ("A", "O1", "2024-01-10", 100.0),
        ("A", "O2", "2024-03-01", 60.0),
        ("A", "O3", "2024-03-01", 40.0),   # same day as O2: one purchase day worth 100
        ("A", "O4", "2024-06-09", 300.0),
    ]).loc["A"]
    assert got["frequency"] == 2
    assert got["recency_days"] == (dt.date(2024, 6, 9) - dt.date(2024, 1, 10)).days
    assert got["t_days"] == (AS_OF - dt.date(2024, 1, 10)).days
    assert got["monetary_value"] == pytest.approx((100 + 300) / 2)
    assert got["days_since_last_purchase"] == (AS_OF - dt.date(2024, 6, 9)).days


def test_purchases_after_the_as_of_date_are_ignored():
    got = _btyd([
        ("A", "O1", "2024-11-01", 100.0),
        ("A", "O2", "2025-01-05", 900.0),
    ]).loc["A"]
    assert got["frequency"] == 0
    assert got["recency_days"] == 0
    assert got["t_days"] == 60
    assert got["days_since_last_purchase"] == 60


def test_a_single_purchase_customer_has_zero_frequency_and_no_monetary_value():
    got = _btyd([("A", "O1", "2024-12-01", 250.0)]).loc["A"]
    assert (got["frequency"], got["recency_days"], got["t_days"]) == (0, 0, 30)
    assert pd.isna(got["monetary_value"])
    assert got["mean_purchase_day_value"] == 250.0


def test_credit_lines_and_non_positive_orders_do_not_make_purchase_days():
    got = _btyd([
        ("A", "O1", "2024-02-01", 500.0),
        ("A", "O1", "2024-02-01", -100.0),   # credit line on the same order: order worth 400
        ("A", "O2", "2024-05-01", 200.0),
        ("A", "O2", "2024-05-01", -200.0),   # fully credited order: no purchase day
        ("A", "O3", "2024-07-01", -50.0),    # return order
        ("A", "O4", "2024-08-01", 0.0),
        ("B", "O5", "2024-03-01", -10.0),    # no purchase day at all: no row
    ])
    assert list(got.index) == ["A"]
    assert got.loc["A", "frequency"] == 0
    assert got.loc["A", "mean_purchase_day_value"] == 400.0
    assert got.loc["A", "days_since_last_purchase"] == (AS_OF - dt.date(2024, 2, 1)).days


def test_a_credit_order_on_a_purchase_day_does_not_reduce_that_days_value():
    got = _btyd([
        ("A", "O1", "2024-02-01", 100.0),
        ("A", "O2", "2024-04-01", 300.0),
        ("A", "O3", "2024-04-01", -120.0),
    ]).loc["A"]
    assert got["frequency"] == 1
    assert got["monetary_value"] == 300.0


def test_quantile_scores_give_ties_the_same_score_and_reward_recency():
    assert quantile_scores(pd.Series([1, 1, 2, 3, 4]), 5).tolist() == [2, 2, 3, 4, 5]
    # fewer days since the last purchase = better recency score
    assert quantile_scores(pd.Series([10, 400]), 5, higher_is_better=False).tolist() == [5, 3]


def test_rfm_groups_come_from_the_seed_by_priority():
    groups = read_seed("rfm_groups")
    scores = pd.DataFrame({"rfm_r": [5, 1, 5, pd.NA], "rfm_f": [5, 1, 1, pd.NA],
                           "rfm_m": [3, 1, 1, pd.NA]}, dtype="Int64")
    assert rfm_group(scores, groups, "No purchases").tolist() == [
        "Champions", "Lost", "New", "No purchases"]
    renamed = groups.assign(rfm_group=groups["rfm_group"].replace({"Champions": "Stars"}))
    assert rfm_group(scores, renamed, "No purchases").iloc[0] == "Stars"


def test_size_tier_by_head_count_else_by_recent_revenue_with_thresholds_from_the_seed():
    tiers = read_seed("size_tiers")
    tier, basis = size_tier(pd.Series([30000, 50, np.nan]), pd.Series([0, 9e9, 2e6]), tiers)
    assert tier.tolist() == ["strategic", "small", "medium"]
    assert basis.tolist() == ["employees", "employees", "revenue_eur_365d"]
    stricter = tiers.assign(min_employees=tiers["min_employees"].replace({12000: 40000}))
    assert size_tier(pd.Series([30000.0]), pd.Series([0.0]), stricter)[0].iloc[0] == "key"


def _synthetic_histories(customers: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for c in range(customers):
        start = dt.date(2022, 1, 1) + dt.timedelta(days=int(rng.integers(0, 700)))
        rate, size = rng.gamma(2, 0.02), rng.lognormal(7, 0.5)
        # half of the customers stop buying (churn) a few months after their first purchase
        end = AS_OF if rng.random() < 0.5 else start + dt.timedelta(days=int(rng.integers(1, 150)))
        day, n = start, 0
        while day <= min(end, AS_OF) and n < 60:
            rows.append((f"C{c:04d}", f"O{c}-{n}", day, float(rng.gamma(5, size / 5))))
            day += dt.timedelta(days=int(rng.exponential(1 / rate)) + 1)
            n += 1
    return pd.DataFrame(rows, columns=["customer_id", "order_id", "order_date", "net_value_eur"])


def test_clv_fit_predicts_more_for_frequent_recent_buyers_and_is_deterministic():
    con = duckdb.connect()
    con.register("lines", _synthetic_histories(150, 3))
    btyd = btyd_features(con, LINES, AS_OF)
    kwargs = dict(horizon_days=365, annual_discount_rate=0.0, bgnbd_penalizer=0.001,
                  gamma_gamma_penalizer=0.001, min_repeat_customers=20)
    first, fit = predict_clv(btyd, **kwargs)
    again, _ = predict_clv(btyd.sample(frac=1, random_state=1), **kwargs)
    assert fit.fitted, fit.reason
    pd.testing.assert_frame_equal(first, again)
    merged = btyd.merge(first, on="customer_id")
    active = merged[(merged["frequency"] >= 10) & (merged["days_since_last_purchase"] < 60)]
    lapsed = merged[(merged["frequency"] <= 2) & (merged["days_since_last_purchase"] > 300)]
    assert len(active) >= 5 and len(lapsed) >= 5
    assert active["expected_purchases"].mean() > 3 * lapsed["expected_purchases"].mean()
    assert (merged["clv_eur"] >= 0).all()


def test_too_few_repeat_customers_leave_clv_empty_with_a_reason():
    con = duckdb.connect()
    con.register("lines", _synthetic_histories(5, 4))
    btyd = btyd_features(con, LINES, AS_OF)
    out, fit = predict_clv(btyd, 365, 0.0, 0.001, 0.001, min_repeat_customers=20)
    assert not fit.fitted and "repeat customers" in fit.reason
    assert out["clv_eur"].isna().all()


def test_customer_value_rows_carry_reasons_inputs_version_and_as_of_and_rerun_identically():
    con = duckdb.connect()
    con.register("lines", _synthetic_histories(80, 5))
    features = pd.DataFrame({"customer_id": [f"C{c:04d}" for c in range(82)],
                             "employees": [100.0] * 82, "revenue_eur_365d": [0.0] * 82})
    settings = load_segmentation_settings()
    run = [assign_customer_value(btyd_features(con, LINES, AS_OF), features, AS_OF,
                                 settings.customer_value,
                                 read_seed("rfm_groups"), read_seed("size_tiers"), "v-test")[0]
           for _ in range(2)]
    pd.testing.assert_frame_equal(run[0], run[1])
    out = run[0]
    assert len(out) == 82 and (out["scheme_version"] == "v-test").all()
    assert (out["as_of"] == AS_OF).all()
    no_history = out.set_index("customer_id").loc["C0081"]
    assert no_history["rfm_group"] == "No purchases"
    assert no_history["reason_codes"].startswith("CV.NO_PURCHASE_DAYS")
    assert out["inputs"].str.startswith("{").all()
    assert out["clv_365d_eur"].notna().sum() == out["frequency"].notna().sum()
    # every buyer's reasons name its RFM cell; a single purchase day says so
    buyers = out[out["frequency"].notna()]
    cells = "CV.RFM_" + buyers["rfm_r"].astype(str) + buyers["rfm_f"].astype(str) + buyers[
        "rfm_m"].astype(str)
    assert [r.split(";")[0] for r in buyers["reason_codes"]] == cells.tolist()
    single = buyers[buyers["frequency"] == 0]
    assert len(single) and single["reason_codes"].str.endswith("CV.SINGLE_PURCHASE_DAY").all()
    assert (single["confidence"] == 0.2).all()
