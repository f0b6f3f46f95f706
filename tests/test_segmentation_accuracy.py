"""Segment assignment on a small generated dataset, end to end: the published tables exist,
and the service tier, its flags and the value profiles agree with the generator's truth above
floors set below what was measured (see the note of issue 4 for the measured figures)."""

from __future__ import annotations

import duckdb
import pandas as pd
import pytest

from dagster_project.segmentation.assign import run_segmentation
from dagster_project.segmentation.evaluation import (
    customer_companies,
    score,
    truth_companies,
    truth_opportunities,
)
from dagster_project.segmentation.settings import segmentation_settings
from dagster_project.warehouse import connect as connect_warehouse

pytestmark = pytest.mark.e2e

# Floors sit below what the e2e data (150 companies x 2 years, seed 7) gives; the note of issue 4
# has the figures on 2,000 and 10,000 companies (seeds 42 and 7).
SERVICE_TIER_FLOOR = 0.85  # buyers with enough orders
ALL_CUSTOMERS_TIER_FLOOR = 0.70  # every customer, prospects (provisional tier) included
IGNORES_TERMS_FLOOR = 0.90
VALUE_PROFILE_FLOOR = 0.60  # every project
CONFIDENT_VALUE_PROFILE_FLOOR = 0.75  # projects whose profile is not provisional

REQUIRED_VALUE_COLUMNS = {
    "customer_id", "as_of", "frequency", "recency_days", "t_days", "monetary_value",
    "days_since_last_purchase", "rfm_r", "rfm_f", "rfm_m", "rfm_group",
    "expected_purchases_365d", "clv_365d_eur",
}


@pytest.fixture(scope="module")
def warehouse(published_home):
    # the product's way in: marts.fct_order_lines reads the fact store it attaches
    con = connect_warehouse(published_home / "warehouse.duckdb", read_only=True)
    yield con
    con.close()


def test_segment_tables_are_published_with_the_agreed_columns(published_home):
    con = duckdb.connect(str(published_home / "published" / "analytics.duckdb"), read_only=True)
    try:
        columns = {r[0] for r in con.execute("describe customer_value").fetchall()}
        assert columns >= REQUIRED_VALUE_COLUMNS
        for table in ("customer_service_tier", "project_value_profiles",
                      "customer_value_profiles", "value_profile_coverage"):
            assert con.execute(f"select count(*) from {table}").fetchall()[0][0] > 0
        assert con.execute(
            "select count(*) from customer_value where as_of is null or scheme_version is null"
        ).fetchall() == [(0,)]
    finally:
        con.close()


def _scored_tiers(warehouse, published_home) -> pd.DataFrame:
    truth = published_home / "truth"
    tiers = warehouse.execute("select * from segments.customer_service_tier").df()
    return tiers.merge(customer_companies(warehouse, truth), on="customer_id").merge(
        truth_companies(truth), on="company_id", suffixes=("", "_truth"))


def test_service_tier_and_flags_agree_with_the_truth(warehouse, published_home):
    scored = _scored_tiers(warehouse, published_home)
    scored = scored[scored["buys"] & ~scored["is_provisional"]]
    tier = score(scored["service_tier_truth"], scored["service_tier"])
    print(tier.as_text())
    assert tier.scored >= 50
    assert tier.accuracy >= SERVICE_TIER_FLOOR
    terms = score(scored["ignores_payment_terms"], scored["ignores_agreed_terms"])
    assert terms.accuracy >= IGNORES_TERMS_FLOOR


def test_customers_without_orders_get_a_provisional_tier_from_what_shows_before_ordering(
        warehouse, published_home):
    scored = _scored_tiers(warehouse, published_home)
    overall = score(scored["service_tier_truth"], scored["service_tier"])
    print(overall.as_text())
    assert overall.accuracy >= ALL_CUSTOMERS_TIER_FLOOR
    without_orders = scored[scored["reason_codes"].str.startswith("ST.NO_ORDERS")]
    assert len(without_orders) and without_orders["is_provisional"].all()
    # not one default tier for all of them: projects sold with service and size speak
    assert without_orders["service_tier"].nunique() > 1


def test_value_profiles_agree_with_the_truth_per_project(warehouse, published_home):
    projects = warehouse.execute("select * from segments.project_value_profiles").df()
    truth = truth_opportunities(published_home / "truth")
    scored = projects.merge(truth, on="opportunity_id", suffixes=("", "_truth"))
    # every project gets a profile (unrated ones through their customer), not only rated ones
    assert len(scored) >= 0.9 * len(truth)
    result = score(scored["value_profile_truth"], scored["value_profile"])
    print(result.as_text())
    assert result.accuracy >= VALUE_PROFILE_FLOOR
    confident = scored[~scored["is_provisional"]]
    confident_result = score(confident["value_profile_truth"], confident["value_profile"])
    print(confident_result.as_text())
    assert confident_result.scored >= 0.5 * len(scored)
    assert confident_result.accuracy >= CONFIDENT_VALUE_PROFILE_FLOOR
    assert confident_result.accuracy > result.accuracy  # confidence means something


def test_a_rerun_with_the_same_inputs_and_as_of_gives_identical_tables(warehouse):
    as_of = warehouse.execute("select max(as_of) from segments.customer_value").fetchall()[0][0]
    first = run_segmentation(warehouse, as_of, segmentation_settings())
    again = run_segmentation(warehouse, as_of, segmentation_settings())
    for name, frame in first.tables.items():
        pd.testing.assert_frame_equal(frame, again.tables[name], obj=name)
        stored = warehouse.execute(f"select * from segments.{name}").df()
        assert len(stored) == len(frame)
