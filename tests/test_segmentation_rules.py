"""Service tier and value profile: the rules are data (config/seeds), every row explains itself,
and the same inputs give the same output."""

from __future__ import annotations

import datetime as dt
import time

import numpy as np
import pandas as pd
import pytest
import yaml
from pydantic import ValidationError

from dagster_project.segmentation.assign import read_seed
from dagster_project.segmentation.explain import inputs_json, inputs_json_rows
from dagster_project.segmentation.service_tier import assign_service_tier
from dagster_project.segmentation.settings import (
    SEGMENTATION_FILE,
    SegmentationSettings,
    load_segmentation_settings,
)
from dagster_project.segmentation.value_profile import (
    ValueProfileInputs,
    assign_value_profiles,
    peer_groups,
    profile_coverage,
)

AS_OF = dt.date(2025, 12, 31)


def _features(**overrides) -> pd.DataFrame:
    base = {
        "customer_id": ["HIGH", "LOW", "NEW", "DRAIN"],
        "order_count": [40, 12, 0, 30],
        "rush_or_expedited_order_share": [0.3, 0.0, None, 0.1],
        "rush_or_expedited_order_count": [12, 0, 0, 3],
        "change_orders_per_order": [1.5, 0.1, None, 0.7],
        "median_requested_lead_days": [15, 60, None, 30],
        "order_gap_cv": [0.3, 0.95, None, 0.7],
        "cases_per_order": [0.8, 0.0, None, 1.2],
        "active_long_term_agreement_count": [2, 0, 0, 0],
        "specialty_line_share": [0.7, 0.2, None, 0.4],
        "margin_pct": [0.3, 0.28, None, 0.18],
        "mean_days_paid_late": [5, 35, None, 3],
        "cleared_invoice_count": [30, 10, 0, 15],
        "service_attach_share": [0.7, 0.0, None, 0.2],
        "employees": [900, 40, None, 300],
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
    assert out.loc["NEW", "service_tier"] == "Low-touch"
    assert out.loc["NEW", "reason_codes"] == "ST.NO_ORDERS"
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


def test_a_rush_share_counts_only_with_enough_rush_orders_behind_it():
    rules = load_segmentation_settings().service_tier
    # 2 rush orders of 10 (20%) can be chance; 6 of 30 (20%) is a habit
    features = _features(order_count=[10, 30, 0, 20],
                         rush_or_expedited_order_share=[0.2, 0.2, None, 0.0],
                         rush_or_expedited_order_count=[2, 6, 0, 0])
    out = assign_service_tier(features, rules, "v", AS_OF).set_index("customer_id")
    assert "ST.RUSH_ORDERS" not in out.loc["HIGH", "reason_codes"].split(";")
    assert "ST.RUSH_ORDERS" in out.loc["LOW", "reason_codes"].split(";")
    assert '"rush_or_expedited_order_count": 2' in out.loc["HIGH", "inputs"]


def test_customers_without_orders_get_a_provisional_tier_from_what_shows_before_ordering():
    rules = load_segmentation_settings().service_tier
    features = _features(customer_id=["PROSPECT_BIG", "PROSPECT_SMALL", "NEW", "BUYER"],
                         order_count=[0, 0, 0, 20], service_attach_share=[0.8, 0.0, None, 0.9],
                         employees=[5000, 30, None, 5000],
                         rush_or_expedited_order_share=[None, None, None, 0.0],
                         rush_or_expedited_order_count=[0, 0, 0, 0],
                         change_orders_per_order=[None, None, None, 0.0],
                         median_requested_lead_days=[None, None, None, 70],
                         order_gap_cv=[None, None, None, 1.0],
                         cases_per_order=[None, None, None, 0.0],
                         active_long_term_agreement_count=[0, 0, 0, 0],
                         specialty_line_share=[None, None, None, 0.1])
    out = assign_service_tier(features, rules, "v", AS_OF).set_index("customer_id")
    big = out.loc["PROSPECT_BIG"]
    assert big["service_tier"] == "High-touch" and big["is_provisional"]
    assert big["reason_codes"] == ("ST.NO_ORDERS;ST.SERVICE_ATTACHED_SOME;ST.SERVICE_ATTACHED;"
                                   "ST.LARGE_COMPANY;ST.KEY_ACCOUNT_SIZE")
    assert out.loc["PROSPECT_SMALL", "service_tier"] == "Low-touch"
    # once a customer orders, its behaviour decides, not its size or its projects
    assert out.loc["BUYER", "service_tier"] == "Low-touch"
    assert not out.loc["BUYER", "is_provisional"]


def _ratings(rows: dict[str, list[dict[str, float]]]) -> pd.DataFrame:
    """opportunity_id -> its ratings (driver -> rank)."""
    drivers = read_seed("value_drivers")["driver"].tolist()
    return pd.DataFrame([{"opportunity_id": opp, **{f"{d}_rank": ranks.get(d) for d in drivers}}
                         for opp, ratings in rows.items() for ranks in ratings],
                        columns=["opportunity_id", *[f"{d}_rank" for d in drivers]])


def _projects(customers: dict[str, list[str]]) -> pd.DataFrame:
    rows = [(opp, customer) for customer, opps in customers.items() for opp in opps]
    return pd.DataFrame({
        "opportunity_id": [r[0] for r in rows],
        "customer_id": [r[1] for r in rows],
        "stage": "Closed Won",
        "close_date": pd.Timestamp("2025-01-01"),
    })


def _accounts(rows: list[tuple]) -> pd.DataFrame:
    """(customer_id, value_profile, business_model, operating_environment) per CRM account."""
    return pd.DataFrame({
        "customer_id": [r[0] for r in rows],
        "account_id": [f"A{i}" for i in range(len(rows))],
        "value_profile": [r[1] for r in rows],
        "business_model": [r[2] for r in rows],
        "operating_environment": [r[3] for r in rows],
        "is_deleted": False,
    }, columns=["customer_id", "account_id", "value_profile", "business_model",
                "operating_environment", "is_deleted"])


def _profiles(ratings, projects, accounts, peers=None, rules=None, drivers=None):
    rules = rules or load_segmentation_settings().value_profile
    peers = peers if peers is not None else pd.DataFrame(columns=["customer_id", "peer_group"])
    inputs = ValueProfileInputs(ratings=ratings, projects=projects, accounts=accounts,
                                peer_groups=peers)
    out = assign_value_profiles(inputs, read_seed("value_profiles"),
                                drivers if drivers is not None else read_seed("value_drivers"),
                                rules, "v", AS_OF)
    return out.projects.set_index("opportunity_id"), out.customers.set_index("customer_id")


# Lifecycle Partner: service availability, technical excellence, sustainability, price
LIFECYCLE = {"service_availability": 1, "technical_excellence": 2, "sustainability": 3,
             "price": 4}
# Green Project Builder: sustainability, technical excellence, price, service availability
GREEN = {"sustainability": 1, "technical_excellence": 2, "price": 3}


def test_projects_take_the_profile_whose_driver_priority_the_ranking_follows():
    projects, customers = _profiles(
        _ratings({"P1": [LIFECYCLE], "P2": [GREEN]}), _projects({"C1": ["P1"], "C2": ["P2"]}),
        _accounts([]))
    assert projects.loc["P1", "value_profile"] == "Lifecycle Partner"
    assert projects.loc["P2", "value_profile"] == "Green Project Builder"
    assert projects.loc["P1", "reason_codes"].startswith("VP.RATINGS_1")
    assert "service_availability>technical_excellence" in projects.loc["P1", "inputs"]
    assert customers.loc["C1", "value_profile"] == "Lifecycle Partner"
    assert (projects["scheme_version"] == "v").all() and (customers["as_of"] == AS_OF).all()


def test_the_crm_account_decides_the_customer_and_unrated_projects_follow_it():
    accounts = _accounts([
        ("C1", "Volume Reseller", "Reseller", "Competitive / Volatile"),
        # a picklist alone, and a cell alone (business model x operating environment)
        ("C2", "Trusted Channel", None, None),
        ("C3", None, "Merchant / Trader", "Regulated / Contracted"),
    ])
    projects, customers = _profiles(_ratings({}), _projects({"C1": ["P1", "P2"], "C2": ["P3"],
                                                             "C3": ["P4"]}), accounts)
    assert customers.loc["C1", "value_profile"] == "Volume Reseller"
    assert customers.loc["C1", "reason_codes"].split(";")[:2] == ["VP.ACCOUNT_PICKLIST",
                                                                  "VP.ACCOUNT_CELL"]
    assert customers.loc["C2", "value_profile"] == "Trusted Channel"
    assert customers.loc["C3", "value_profile"] == "Contracted Yield Seeker"
    assert projects.loc["P1", "value_profile"] == "Volume Reseller"
    assert projects.loc["P1", "reason_codes"] == "VP.CUSTOMER_PROFILE"
    # picklist and cell agree: more confident than one source alone
    assert customers.loc["C1", "confidence"] > customers.loc["C2", "confidence"]


def test_a_customers_rated_projects_inform_its_unrated_ones_and_can_overrule_the_picklist():
    ratings = _ratings({f"P{i}": [LIFECYCLE] for i in range(1, 5)})
    accounts = _accounts([("C1", "Volume Reseller", None, None)])
    projects, customers = _profiles(ratings, _projects({"C1": ["P1", "P2", "P3", "P4", "P5"]}),
                                    accounts)
    # four projects ranked like a Lifecycle Partner outweigh one (often wrong) picklist value
    assert customers.loc["C1", "value_profile"] == "Lifecycle Partner"
    assert "VP.ACCOUNT_PICKLIST_OVERRULED" in customers.loc["C1", "reason_codes"]
    assert customers.loc["C1", "rated_projects"] == 4 and customers.loc["C1", "projects"] == 5
    assert projects.loc["P5", "value_profile"] == "Lifecycle Partner"
    assert not projects.loc["P5", "is_rated"]


def test_customers_without_evidence_take_their_peer_groups_usual_profile_provisionally():
    members = [f"C{i}" for i in range(12)]
    accounts = _accounts([(c, "Volume Reseller", "Reseller", "Competitive / Volatile")
                          for c in members[:-1]] + [(members[-1], None, None, None)])
    peers = pd.DataFrame({"customer_id": members, "peer_group": "is_distributor"})
    projects, customers = _profiles(_ratings({}), _projects({members[-1]: ["P1"]}), accounts,
                                    peers)
    newcomer = customers.loc[members[-1]]
    assert newcomer["value_profile"] == "Volume Reseller"
    assert newcomer["reason_codes"].split(";")[0] == "VP.PEER_GROUP_ONLY"
    assert newcomer["is_provisional"] and newcomer["peer_group"] == "is_distributor"
    assert not customers.loc[members[0], "is_provisional"]


def test_peer_groups_by_role_flag_first_then_industry_sub_segment():
    customers = pd.DataFrame({"customer_id": ["D", "E", "U", "X"],
                              "is_distributor": [True, False, False, False],
                              "is_epc": [True, True, False, False],
                              "is_partner": [False, False, False, False]})
    industry = pd.DataFrame({"customer_id": ["D", "E", "U"],
                             "sub_segment": ["Utilities", "Utilities", "Utilities"]})
    groups = peer_groups(customers, industry, load_segmentation_settings().value_profile)
    assert groups.set_index("customer_id")["peer_group"].to_dict() == {
        "D": "is_distributor", "E": "is_epc", "U": "Utilities", "X": "(none)"}


def test_trusting_the_picklist_more_in_the_config_changes_the_assignment(tmp_path):
    ratings = _ratings({"P1": [LIFECYCLE, LIFECYCLE]})
    accounts = _accounts([("C1", "Volume Reseller", None, None)])
    _, before = _profiles(ratings, _projects({"C1": ["P1"]}), accounts)

    def trust_picklist(raw):
        raw["value_profile"]["picklist_trust"] = 0.99

    rules = _settings_with(tmp_path / "vp.yml", trust_picklist).value_profile
    _, after = _profiles(ratings, _projects({"C1": ["P1"]}), accounts, rules=rules)
    assert before.loc["C1", "value_profile"] == "Lifecycle Partner"
    assert after.loc["C1", "value_profile"] == "Volume Reseller"


def test_the_core_driver_seed_decides_which_ranks_count():
    drivers = read_seed("value_drivers")
    # only delivery speed and predictability ranked: with the seed's core drivers nothing counts
    ratings = _ratings({"P1": [{"delivery_speed": 1, "predictability": 2}]})
    core_only, _ = _profiles(ratings, _projects({"C1": ["P1"]}), _accounts([]))
    assert core_only.loc["P1", "confidence"] == pytest.approx(1 / 8)
    everything, _ = _profiles(ratings, _projects({"C1": ["P1"]}), _accounts([]),
                              drivers=drivers.assign(is_core=True))
    assert everything.loc["P1", "confidence"] > 1 / 8


def test_value_profiles_are_deterministic_whatever_the_input_order():
    ratings = _ratings({"P1": [LIFECYCLE], "P2": [GREEN], "P3": [GREEN, LIFECYCLE]})
    projects = _projects({"C1": ["P1", "P2"], "C2": ["P3"]})
    accounts = _accounts([("C2", "Trusted Channel", "Reseller", None)])
    first = _profiles(ratings, projects, accounts)
    again = _profiles(ratings.iloc[::-1], projects.iloc[::-1], accounts.iloc[::-1])
    for a, b in zip(first, again, strict=True):
        pd.testing.assert_frame_equal(a, b)


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


def test_value_profiles_of_tens_of_thousands_of_projects_take_seconds_not_minutes():
    rng = np.random.default_rng(0)
    n_projects, n_customers = 40_000, 10_000
    drivers = read_seed("value_drivers")["driver"].tolist()
    projects = pd.DataFrame({
        "opportunity_id": [f"P{i:06d}" for i in range(n_projects)],
        "customer_id": [f"C{i:05d}" for i in rng.integers(0, n_customers, n_projects)],
        "stage": "Closed Won", "close_date": pd.Timestamp("2025-01-01")})
    rated = projects["opportunity_id"].sample(frac=0.4, random_state=0).to_numpy()
    ranks = np.argsort(rng.random((len(rated), len(drivers))), axis=1) + 1.0
    ranks[ranks > 3] = np.nan
    ratings = pd.DataFrame(ranks, columns=[f"{d}_rank" for d in drivers]).assign(
        opportunity_id=rated)
    accounts = _accounts([(f"C{i:05d}", "Volume Reseller", "Reseller", None)
                          for i in range(0, n_customers, 3)])
    started = time.perf_counter()
    projects_out, customers_out = _profiles(ratings, projects, accounts)
    elapsed = time.perf_counter() - started
    customers = set(projects["customer_id"]) | set(accounts["customer_id"])
    assert len(projects_out) == n_projects and len(customers_out) == len(customers)
    # one pass of array arithmetic: about a second here (a loop per project took minutes)
    assert elapsed < 15


def test_inputs_written_in_bulk_read_as_written_one_row_at_a_time():
    columns = {
        "share": pd.Series([0.1234567891, np.nan, 3.0]),
        "count": pd.Series([1, None, 3], dtype="Int64"),
        "flag": np.array([True, False, True]),
        "day": pd.to_datetime(pd.Series(["2024-01-01", None, "2024-02-03"])),
        "label": pd.Series(["x", None, 'q"ü'], dtype=object),
        "accounts": [["A1: x", "A2: y"], None, []],
    }
    rows = inputs_json_rows(columns)
    for i, row in enumerate(rows):
        one = {k: (v.iloc[i] if isinstance(v, pd.Series) else v[i]) for k, v in columns.items()}
        assert row == inputs_json(one)
