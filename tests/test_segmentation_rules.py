"""Service tier and value profile: the rules are data (config/seeds), every row explains itself,
and the same inputs give the same output."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
import yaml
from pydantic import ValidationError

from dagster_project.segmentation.assign import read_seed
from dagster_project.segmentation.service_tier import assign_service_tier
from dagster_project.segmentation.settings import (
    SEGMENTATION_FILE,
    SegmentationSettings,
    load_segmentation_settings,
)
from dagster_project.segmentation.value_profile import (
    assign_project_profiles,
    profile_coverage,
    roll_up_to_customers,
)

AS_OF = dt.date(2025, 12, 31)


def _features(**overrides) -> pd.DataFrame:
    base = {
        "customer_id": ["HIGH", "LOW", "NEW", "DRAIN"],
        "order_count": [40, 12, 0, 20],
        "rush_or_expedited_order_share": [0.3, 0.0, None, 0.1],
        "change_orders_per_order": [1.5, 0.1, None, 0.7],
        "median_requested_lead_days": [15, 60, None, 30],
        "order_gap_cv": [0.3, 0.95, None, 0.7],
        "cases_per_order": [0.8, 0.0, None, 1.2],
        "active_long_term_agreement_count": [2, 0, 0, 0],
        "specialty_line_share": [0.7, 0.2, None, 0.4],
        "margin_pct": [0.3, 0.28, None, 0.18],
        "mean_days_paid_late": [5, 35, None, 3],
        "cleared_invoice_count": [30, 10, 0, 15],
    }
    base.update(overrides)
    return pd.DataFrame(base)


def _settings_with(path, mutate) -> SegmentationSettings:
    raw = yaml.safe_load(SEGMENTATION_FILE.read_text())
    mutate(raw)
    path.write_text(yaml.safe_dump(raw))
    return load_segmentation_settings(path)


def test_service_tiers_flags_and_reasons_from_the_configured_rules():
    settings = load_segmentation_settings()
    out = assign_service_tier(_features(), settings.service_tier, "v1", AS_OF).set_index(
        "customer_id")
    assert out.loc["HIGH", "service_tier"] == "High-touch"
    assert out.loc["LOW", "service_tier"] == "Low-touch"
    assert out.loc["NEW", "service_tier"] == settings.service_tier.tier_without_orders
    assert out.loc["NEW", "is_provisional"] and out.loc["NEW", "confidence"] == 0
    assert out.loc["DRAIN", "is_service_draining"] and not out.loc["HIGH", "is_service_draining"]
    assert out.loc["LOW", "ignores_agreed_terms"] and not out.loc["HIGH", "ignores_agreed_terms"]
    assert "ST.RUSH_ORDERS" in out.loc["HIGH", "reason_codes"].split(";")
    assert "ST.FLAG_IGNORES_AGREED_TERMS" in out.loc["LOW", "reason_codes"]
    assert '"rush_or_expedited_order_share": 0.3' in out.loc["HIGH", "inputs"]
    assert (out["scheme_version"] == "v1").all() and (out["as_of"] == AS_OF).all()


def test_changing_a_threshold_in_the_config_changes_assignments_without_code(tmp_path):
    def lower_high_touch_bar(raw):
        for tier in raw["service_tier"]["tiers"]:
            if tier["tier"] == "High-touch":
                tier["min_points"] = 4

    def stricter_terms(raw):
        raw["service_tier"]["flags"]["ignores_agreed_terms"][0]["at_least"] = 40

    before = assign_service_tier(_features(), load_segmentation_settings().service_tier, "v", AS_OF)
    lowered = _settings_with(tmp_path / "a.yml", lower_high_touch_bar).service_tier
    after = assign_service_tier(_features(), lowered, "v", AS_OF)
    assert before.set_index("customer_id").loc["DRAIN", "service_tier"] == "Medium-touch"
    assert after.set_index("customer_id").loc["DRAIN", "service_tier"] == "High-touch"
    strict = _settings_with(tmp_path / "b.yml", stricter_terms).service_tier
    assert not assign_service_tier(_features(), strict, "v", AS_OF)["ignores_agreed_terms"].any()


def test_a_typo_in_the_rules_fails_at_load_time_with_the_key_named(tmp_path):
    def typo(raw):
        raw["service_tier"]["signals"][0]["at_lest"] = 0.1

    with pytest.raises(ValidationError, match="at_lest"):
        _settings_with(tmp_path / "c.yml", typo)


def test_service_tier_is_deterministic_whatever_the_input_order():
    rules = load_segmentation_settings().service_tier
    first = assign_service_tier(_features(), rules, "v", AS_OF)
    again = assign_service_tier(_features().iloc[::-1], rules, "v", AS_OF)
    pd.testing.assert_frame_equal(first, again)


def _ratings(rows: dict[str, dict[str, float | None]]) -> pd.DataFrame:
    drivers = read_seed("value_drivers")["driver"].tolist()
    return pd.DataFrame([{"opportunity_id": opp, **{f"{d}_rank": ranks.get(d) for d in drivers}}
                         for opp, ranks in rows.items()])


def _projects() -> pd.DataFrame:
    return pd.DataFrame({
        "opportunity_id": ["P1", "P2", "P3", "P4"],
        "customer_id": ["C1", "C1", "C2", "C3"],
        "stage": ["Closed Won", "Closed Lost", "Closed Lost", "Prospecting"],
        "close_date": pd.to_datetime(["2024-01-01", "2025-06-01", "2025-01-01", "2025-02-01"]),
        "business_model": [None, None, "Reseller", "Reseller"],
        "operating_environment": [None, None, "Competitive / Volatile", "Competitive / Volatile"],
    })


def test_projects_take_the_profile_whose_driver_priority_the_ranking_follows():
    settings = load_segmentation_settings().value_profile
    ratings = _ratings({
        # Lifecycle Partner: service availability, technical excellence, sustainability, price
        "P1": {"service_availability": 1, "technical_excellence": 2, "sustainability": 3,
               "price": 4},
        # Green Project Builder: sustainability first
        "P2": {"sustainability": 1, "technical_excellence": 2, "price": 3},
    })
    out = assign_project_profiles(ratings, _projects(), read_seed("value_profiles"),
                                  read_seed("value_drivers"), settings, "v", AS_OF)
    got = out.set_index("opportunity_id")
    assert got.loc["P1", "value_profile"] == "Lifecycle Partner"
    assert got.loc["P2", "value_profile"] == "Green Project Builder"
    # no rating: the account's business model x operating environment cell decides
    assert got.loc["P3", "value_profile"] == "Volume Reseller"
    assert got.loc["P3", "reason_codes"] == "VP.ACCOUNT_CELL"
    customers = roll_up_to_customers(out, settings, "v", AS_OF).set_index("customer_id")
    # the most recent won project wins over a later lost one
    assert customers.loc["C1", "value_profile"] == "Lifecycle Partner"
    assert customers.loc["C1", "reason_codes"] == "VP.MOST_RECENT_WON_PROJECT"
    assert customers.loc["C2", "reason_codes"] == "VP.MAJORITY_OF_PROJECTS"


def test_the_core_driver_seed_decides_which_ranks_count():
    settings = load_segmentation_settings().value_profile
    drivers = read_seed("value_drivers")
    # only delivery speed and predictability ranked: with the seed's core drivers nothing counts
    ratings = _ratings({"P1": {"delivery_speed": 1, "predictability": 2}})
    core_only = assign_project_profiles(ratings, _projects().iloc[:1], read_seed("value_profiles"),
                                        drivers, settings, "v", AS_OF)
    assert core_only["confidence"].iloc[0] == pytest.approx(1 / 8)
    everything = drivers.assign(is_core=True)
    all_count = assign_project_profiles(ratings, _projects().iloc[:1],
                                        read_seed("value_profiles"), everything, settings, "v",
                                        AS_OF)
    assert all_count["confidence"].iloc[0] > 1 / 8


def test_profile_coverage_flags_small_samples_and_counts_regions():
    settings = load_segmentation_settings().value_profile
    projects = pd.DataFrame({
        "opportunity_id": [f"P{i}" for i in range(12)],
        "customer_id": ["C1"] * 6 + ["C2"] * 6,
        "value_profile": ["Lifecycle Partner"] * 11 + ["Volume Reseller"],
        "is_rated": [True] * 12,
    })
    regions = pd.DataFrame({"customer_id": ["C1", "C2"], "region": ["Nordics", "APAC"]})
    out = profile_coverage(projects, regions, read_seed("value_profiles"), settings, "v", AS_OF)
    got = out.set_index("value_profile")
    assert not got.loc["Lifecycle Partner", "is_small_sample"]
    assert got.loc["Lifecycle Partner", "regions_covered"] == 2
    assert got.loc["Volume Reseller", "is_small_sample"]
    assert got.loc["Trusted Channel", "rated_projects"] == 0
