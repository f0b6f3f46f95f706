"""Industry segment and sub-segment (issue 4): the precedence of DESIGN.md on hand-made frames
(steward override > consistent CRM picklist > legacy labels > inference from purchases >
Unassigned, which reaches the steward queue), rules and decisions as data, reruns, and accuracy
against the generator's truth end to end."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import duckdb
import pandas as pd
import pytest
import yaml

from dagster_project.paths import SEEDS_DIR
from dagster_project.segmentation.assign import read_seed, run_segmentation
from dagster_project.segmentation.customer_segments import COLUMNS as CUSTOMER_SEGMENT_COLUMNS
from dagster_project.segmentation.customer_segments import consolidate
from dagster_project.segmentation.evaluation import industry_scores
from dagster_project.segmentation.industry import (
    IndustryInputs,
    assign_industry_segments,
    name_words,
)
from dagster_project.segmentation.settings import (
    SEGMENTATION_FILE,
    load_segmentation_settings,
    segmentation_settings,
)
from dagster_project.warehouse import connect as connect_warehouse

AS_OF = dt.date(2025, 12, 31)
TAXONOMY = read_seed("segment_taxonomy")
# The columns other parts (history, write-back) read: /work/notes/customer_segments_schema.md.
AGREED_COLUMNS = [
    "customer_id", "as_of", "scheme_version", "segment", "sub_segment", "segment_source",
    "segment_confidence", "value_profile", "service_tier", "size_tier", "rfm_group",
    "clv_365d_eur", "is_provisional", "reasons",
]

# Purchase mixes (order lines per product line) of two kinds of known customers, for inference.
STORAGE_HEAVY = {"Storage": 30, "Controls": 25, "Spare Parts": 10, "Services": 5}
SPARES_HEAVY = {"Spare Parts": 60, "Engines": 8, "Services": 6, "Controls": 3}


def _label(customer_id: str, system: str, field: str, label: str, segment: str | None,
           sub_segment: str | None = None, status: str = "mapped") -> dict:
    return {"customer_id": customer_id, "source_system": system,
            "source_id": f"{system}-{customer_id}", "label_field": field, "label": label,
            "label_date": dt.date(2020, 1, 1), "is_deleted": False, "segment": segment,
            "sub_segment": sub_segment, "mapping_status": status}


def _picklist(customer_id: str, segment: str | None, sub_segment: str | None,
              modified: str = "2025-06-01") -> dict:
    return {"customer_id": customer_id, "account_id": f"ACC-{customer_id}", "segment": segment,
            "sub_segment": sub_segment, "last_modified_at": pd.Timestamp(modified),
            "is_deleted": False}


def _population() -> tuple[list[dict], list[dict]]:
    """40 customers whose legacy labels say what they are, with distinct purchase mixes: the
    known customers the inference learns from."""
    labels, purchases = [], []
    for i in range(20):
        labels.append(_label(f"REN{i:02d}", "crm", "industry", "Renewables", "Power Generation",
                             "Renewables & Storage Developers"))
        labels.append(_label(f"MIN{i:02d}", "erp", "customer_group", "Z04", "Industry",
                             "Mining & Metals"))
        purchases += [{"customer_id": f"REN{i:02d}", "product_line": k, "order_lines": v}
                      for k, v in STORAGE_HEAVY.items()]
        purchases += [{"customer_id": f"MIN{i:02d}", "product_line": k, "order_lines": v}
                      for k, v in SPARES_HEAVY.items()]
    return labels, purchases


def _inputs(customers: list[str], labels=(), picklists=(), purchases=(), words=(),
            overrides=None) -> IndustryInputs:
    base_labels, base_purchases = _population()
    all_labels = base_labels + list(labels)
    all_purchases = base_purchases + list(purchases)
    ids = sorted({r["customer_id"] for r in all_labels + all_purchases} | set(customers))
    return IndustryInputs(
        customers=pd.DataFrame({"customer_id": ids, "order_count": 10,
                                "revenue_eur": [1000.0 * (i + 1) for i in range(len(ids))],
                                "is_distributor": False, "is_partner": False}),
        picklists=pd.DataFrame(list(picklists), columns=list(_picklist("x", None, None))),
        legacy_labels=pd.DataFrame(all_labels),
        purchases=pd.DataFrame(all_purchases, columns=["customer_id", "product_line",
                                                       "order_lines"]),
        name_words=pd.DataFrame(list(words), columns=["customer_id", "word"]),
        overrides=overrides if overrides is not None else read_seed("segment_overrides"),
    )


def _assign(inputs: IndustryInputs, rules=None):
    rules = rules or load_segmentation_settings().industry
    result = assign_industry_segments(inputs, TAXONOMY, rules, "v-test", AS_OF)
    return result.table.set_index("customer_id"), result.findings


def _settings_with(tmp_path: Path, mutate):
    raw = yaml.safe_load(SEGMENTATION_FILE.read_text())
    mutate(raw["industry"])
    path = tmp_path / "segmentation.yml"
    path.write_text(yaml.safe_dump(raw))
    return load_segmentation_settings(path)


def test_a_steward_override_wins_over_picklist_and_labels():
    overrides = pd.DataFrame([{
        "customer_id": "ACME", "segment": "Industry", "sub_segment": "Oil & Gas",
        "value_profile": None, "service_tier": None, "reason": "Sold its utility business",
        "steward": "A. Steward", "decided_on": "2025-11-02"}])
    table, findings = _assign(_inputs(
        ["ACME"], labels=[_label("ACME", "erp", "customer_group", "Z01", "Power Generation",
                                 "Utilities")],
        picklists=[_picklist("ACME", "Power Generation", "Utilities")], overrides=overrides))
    row = table.loc["ACME"]
    assert (row.segment, row.sub_segment) == ("Industry", "Oil & Gas")
    assert row.segment_source == "override" and row.sub_segment_source == "override"
    assert row.segment_confidence == 1.0
    assert "IND.STEWARD_OVERRIDE" in row.reason_codes
    assert json.loads(row.inputs)["override"]["steward"] == "A. Steward"
    # the CRM still says Utilities: the steward sees that the picklist differs
    picklist = findings[findings["kind"] == "inconsistent_picklist"].set_index("record_key")
    assert picklist.loc["ACC-ACME", "rule"] == "differs_from_override"


def test_an_override_outside_the_taxonomy_is_not_applied_and_is_reported():
    overrides = pd.DataFrame([{
        "customer_id": "ACME", "segment": "Industry", "sub_segment": "Utilities",
        "value_profile": None, "service_tier": None, "reason": "typo", "steward": "B",
        "decided_on": "2025-11-02"}])
    table, findings = _assign(_inputs(
        ["ACME"], labels=[_label("ACME", "erp", "customer_group", "Z04", "Industry",
                                 "Mining & Metals")], overrides=overrides))
    assert table.loc["ACME", "segment_source"] == "legacy_mapping"
    invalid = findings[findings["kind"] == "invalid_override"]
    assert invalid["record_key"].tolist() == ["ACME"]
    assert invalid["rule"].tolist() == ["invalid_hierarchy"]


def test_a_consistent_picklist_decides_and_an_outweighed_one_is_queued():
    table, findings = _assign(_inputs(
        ["ONE_LABEL", "TWO_LABELS"],
        labels=[
            _label("ONE_LABEL", "crm", "industry", "Utilities", "Power Generation", "Utilities"),
            _label("TWO_LABELS", "crm", "industry", "Utilities", "Power Generation",
                   "Utilities"),
            _label("TWO_LABELS", "erp", "customer_group", "Z01", "Power Generation",
                   "Utilities"),
        ],
        picklists=[
            _picklist("ONE_LABEL", "Power Generation", "Independent Power Producers"),
            _picklist("TWO_LABELS", "Power Generation", "Independent Power Producers"),
        ]))
    # one disagreeing label does not outweigh the picklist ...
    assert table.loc["ONE_LABEL", "segment_source"] == "crm_picklist"
    assert table.loc["ONE_LABEL", "sub_segment"] == "Independent Power Producers"
    # ... two agreeing labels from two systems do: the picklist is not "consistent"
    assert table.loc["TWO_LABELS", "segment_source"] == "legacy_mapping"
    assert table.loc["TWO_LABELS", "sub_segment"] == "Utilities"
    assert "IND.PICKLIST_OUTWEIGHED" in table.loc["TWO_LABELS", "reason_codes"]
    queued = findings[findings["kind"] == "inconsistent_picklist"]
    assert queued["record_key"].tolist() == ["ACC-TWO_LABELS"]
    assert queued["rule"].tolist() == ["outweighed_by_other_evidence"]


def test_a_picklist_with_a_sub_segment_of_another_segment_is_rejected():
    table, findings = _assign(_inputs(
        ["MIXED"], labels=[_label("MIXED", "crm", "industry", "Mining", "Industry",
                                  "Mining & Metals")],
        picklists=[_picklist("MIXED", "Industry", "Utilities")]))
    row = table.loc["MIXED"]
    assert (row.segment, row.sub_segment, row.segment_source) == (
        "Industry", "Mining & Metals", "legacy_mapping")
    assert "IND.PICKLIST_INVALID" in row.reason_codes
    rejected = findings[findings["record_key"] == "ACC-MIXED"]
    assert rejected["rule"].tolist() == ["segment_hierarchy"]


def test_legacy_labels_combine_across_systems_and_segment_only_labels_count():
    table, _ = _assign(_inputs(
        ["BOTH", "SEGMENT_ONLY"],
        labels=[
            # CRM says only "power generation"; ERP's group names the sub-segment
            _label("BOTH", "crm", "industry", "Power Gen", "Power Generation"),
            _label("BOTH", "erp", "customer_group", "Z02", "Power Generation",
                   "Independent Power Producers"),
            _label("SEGMENT_ONLY", "crm", "legacy_segment", "KA - Power", "Power Generation"),
            _label("SEGMENT_ONLY", "crm", "legacy_segment", "SMB", None, status="no_segment"),
        ],
        purchases=[{"customer_id": "SEGMENT_ONLY", "product_line": k, "order_lines": v}
                   for k, v in STORAGE_HEAVY.items()]))
    both = table.loc["BOTH"]
    assert (both.segment, both.sub_segment) == ("Power Generation",
                                                 "Independent Power Producers")
    assert both.segment_source == "legacy_mapping" and both.sub_segment_source == "legacy_mapping"
    assert "crm.industry=Power Gen -> Power Generation" in json.loads(both.inputs)["legacy_labels"]
    # a segment-only label decides the segment; what the customer buys picks the sub-segment
    only = table.loc["SEGMENT_ONLY"]
    assert only.segment == "Power Generation" and only.segment_source == "legacy_mapping"
    assert only.sub_segment == "Renewables & Storage Developers"
    assert only.sub_segment_source == "purchase_inference"
    assert "IND.LEGACY_SEGMENT_ONLY" in only.reason_codes


def test_purchases_infer_the_segment_from_customers_whose_segment_is_known():
    buys = [("STORAGE_BUYER", STORAGE_HEAVY), ("SPARES_BUYER", SPARES_HEAVY)]
    table, _ = _assign(_inputs(
        [c for c, _ in buys],
        purchases=[{"customer_id": c, "product_line": k, "order_lines": v}
                   for c, mix in buys for k, v in mix.items()]))
    assert table.loc["STORAGE_BUYER", "sub_segment"] == "Renewables & Storage Developers"
    assert table.loc["SPARES_BUYER", "sub_segment"] == "Mining & Metals"
    assert set(table.loc[["STORAGE_BUYER", "SPARES_BUYER"], "segment_source"]) == {
        "purchase_inference"}
    inputs = json.loads(table.loc["STORAGE_BUYER", "inputs"])
    assert inputs["order_lines_by_product_line"]["Storage"] == 30


def test_a_customer_without_evidence_is_unassigned_and_goes_to_the_steward_queue():
    table, findings = _assign(_inputs(
        ["NOTHING"], labels=[_label("NOTHING", "crm", "industry", "Agri", None,
                                    status="unmapped")]))
    row = table.loc["NOTHING"]
    assert (row.segment, row.sub_segment, row.segment_source) == (
        "Unassigned", "Unassigned", "unassigned")
    assert row.segment_confidence == 0
    queued = findings[findings["kind"] == "unassigned_segment"].set_index("record_key")
    assert list(queued.index) == ["NOTHING"]
    assert queued.loc["NOTHING", "customers_affected"] == 1
    assert queued.loc["NOTHING", "revenue_eur_affected"] > 0


def test_names_are_evidence_once_the_model_learns_their_words():
    words = name_words(pd.DataFrame({
        "customer_id": ["A", "A", "B"],
        "record_name": ["Müller Energía GmbH", "MUELLER ENERGIA GMBH", "Ås 12"]}),
        min_length=3, stem_length=5)
    assert {"MULLER", "MUELLER", "ENERGIA", "ENERG~", "GMBH"} <= set(
        words.loc[words["customer_id"] == "A", "word"])
    assert words.loc[words["customer_id"] == "B", "word"].tolist() == []  # short, digits

    # Renewables customers are called "... Wind ...": an unlabelled "Wind" customer follows them
    learned = [(f"REN{i:02d}", "WINDPARK") for i in range(20)]
    table, _ = _assign(_inputs(["NEWWIND"], words=[*learned, ("NEWWIND", "WINDPARK")]))
    assert table.loc["NEWWIND", "sub_segment"] == "Renewables & Storage Developers"
    assert table.loc["NEWWIND", "segment_source"] == "name_inference"


def test_config_and_seed_changes_change_assignments_without_code(tmp_path):
    case = _inputs(
        ["ONE_LABEL", "OLD_PICKLIST"],
        labels=[_label("ONE_LABEL", "crm", "industry", "Utilities", "Power Generation",
                       "Utilities"),
                _label("OLD_PICKLIST", "erp", "customer_group", "Z05", "Industry",
                       "Data Centres")],
        picklists=[_picklist("ONE_LABEL", "Power Generation", "Independent Power Producers"),
                   # set before Data Centres went live: could not name it
                   _picklist("OLD_PICKLIST", "Industry", "Process Industry", "2024-06-01")])
    before, _ = _assign(case)
    assert before.loc["ONE_LABEL", "segment_source"] == "crm_picklist"
    assert before.loc["OLD_PICKLIST", "sub_segment"] == "Data Centres"
    assert "IND.PICKLIST_PREDATES_SUB_SEGMENT" in before.loc["OLD_PICKLIST", "reason_codes"]

    def trust_picklists_less(industry):
        industry["picklist"]["sub_segment_points"] = 2.0

    after, _ = _assign(case, _settings_with(tmp_path, trust_picklists_less).industry)
    assert after.loc["ONE_LABEL", "segment_source"] == "legacy_mapping"
    assert after.loc["ONE_LABEL", "sub_segment"] == "Utilities"

    def data_centres_went_live_earlier(industry):
        industry["taxonomy_versions_live_from"]["2"] = "2024-01-01"

    after, _ = _assign(case, _settings_with(tmp_path, data_centres_went_live_earlier).industry)
    assert after.loc["OLD_PICKLIST", "sub_segment"] == "Process Industry"
    assert after.loc["OLD_PICKLIST", "segment_source"] == "crm_picklist"

    # a steward decision in seeds/ (its own seeds folder here) wins on the next run
    seeds = tmp_path / "seeds"
    shutil.copytree(SEEDS_DIR, seeds)
    with (seeds / "segment_overrides.csv").open("a") as out:
        out.write("ONE_LABEL,Public & Infrastructure,Municipal & Public Sector,,,"
                  "Municipal company,C. Steward,2025-12-01\n")
    case = IndustryInputs(**{**case.__dict__,
                             "overrides": read_seed("segment_overrides", seeds)})
    decided, _ = _assign(case)
    assert decided.loc["ONE_LABEL", "segment"] == "Public & Infrastructure"
    assert decided.loc["ONE_LABEL", "segment_source"] == "override"


def test_unknown_keys_in_the_industry_config_fail_at_load_time(tmp_path):
    def typo(industry):
        industry["picklist"]["sub_segment_pionts"] = 4

    with pytest.raises(ValueError, match="sub_segment_pionts"):
        _settings_with(tmp_path, typo)


def test_the_same_inputs_in_any_row_order_give_identical_output():
    case = _inputs(["BUYER"], labels=[_label("BUYER", "crm", "industry", "Power Gen",
                                             "Power Generation")],
                   purchases=[{"customer_id": "BUYER", "product_line": k, "order_lines": v}
                              for k, v in STORAGE_HEAVY.items()])
    first, first_findings = _assign(case)
    shuffled = IndustryInputs(**{
        name: frame.sample(frac=1, random_state=3) if len(frame) else frame
        for name, frame in case.__dict__.items()})
    again, again_findings = _assign(shuffled)
    pd.testing.assert_frame_equal(first, again)
    pd.testing.assert_frame_equal(first_findings, again_findings)


# --- end to end on the session's generated data ---------------------------------------------

# Measured on the session fixture (150 companies, 2 years, seed 7): segment 0.934, sub-segment
# 0.836. The inference learns from the customers themselves, so small data scores lower; the
# issue's targets (0.95 / 0.90) are asserted on demo-size data by
# test_industry_accuracy_meets_the_targets_on_demo_data.
FIXTURE_SEGMENT_FLOOR = 0.90
FIXTURE_SUB_SEGMENT_FLOOR = 0.78
SEGMENT_TARGET = 0.95
SUB_SEGMENT_TARGET = 0.90


@pytest.fixture(scope="module")
def warehouse(published_home):
    # the product's way in: marts.fct_order_lines reads the fact store it attaches
    con = connect_warehouse(published_home / "warehouse.duckdb", read_only=True)
    yield con
    con.close()


@pytest.mark.e2e
def test_customer_segments_is_published_with_the_agreed_columns(published_home):
    con = duckdb.connect(str(published_home / "published" / "analytics.duckdb"), read_only=True)
    try:
        columns = [r[0] for r in con.execute("describe customer_segments").fetchall()]
        assert columns == CUSTOMER_SEGMENT_COLUMNS
        assert set(AGREED_COLUMNS) <= set(columns)
        customers = con.execute("select count(*) from dim_customer").fetchall()[0][0]
        assert con.execute(
            "select count(*), count(distinct customer_id) from customer_segments"
        ).fetchall() == [(customers, customers)]
        rows = con.execute("select * from customer_segments").df()
        assert rows["segment"].notna().all() and rows["sub_segment"].notna().all()
        assert set(rows["segment_source"]) <= {
            "override", "crm_picklist", "legacy_mapping", "purchase_inference",
            "name_inference", "unassigned"}
        reasons = rows["reasons"].map(json.loads)
        assert reasons.map(lambda r: {"segment", "service_tier", "value_profile"} <= set(r)).all()
        unassigned = set(rows.loc[rows["segment_source"] == "unassigned", "customer_id"])
        assert rows.loc[rows["customer_id"].isin(unassigned), "is_provisional"].all()
        queued = {r[0] for r in con.execute(
            "select record_key from steward_queue where kind = 'unassigned_segment'").fetchall()}
        assert queued == unassigned
    finally:
        con.close()


@pytest.mark.e2e
def test_industry_segments_agree_with_the_truth_on_the_session_data(warehouse, published_home):
    scores = industry_scores(warehouse, published_home / "truth")
    for column, result in scores.items():
        print(column, result.as_text())
    assert scores["segment"].scored >= 100
    assert scores["segment"].accuracy >= FIXTURE_SEGMENT_FLOOR
    assert scores["sub_segment"].accuracy >= FIXTURE_SUB_SEGMENT_FLOOR


@pytest.mark.e2e
def test_industry_accuracy_meets_the_targets_on_demo_data(demo_home):
    """The default demo (2,000 companies, seed 42): segment >= 95%, sub-segment >= 90%."""
    con = duckdb.connect(str(demo_home / "warehouse.duckdb"), read_only=True)
    try:
        scores = industry_scores(con, demo_home / "truth")  # what the demo run assigned
    finally:
        con.close()
    for column, result in scores.items():
        print(column, result.as_text())
    assert scores["segment"].accuracy >= SEGMENT_TARGET
    assert scores["sub_segment"].accuracy >= SUB_SEGMENT_TARGET


@pytest.mark.e2e
def test_a_rerun_gives_identical_segments_and_findings(warehouse):
    as_of = warehouse.execute("select max(as_of) from segments.customer_value").fetchall()[0][0]
    first = run_segmentation(warehouse, as_of, segmentation_settings())
    again = run_segmentation(warehouse, as_of, segmentation_settings())
    for name in ("customer_industry_segments", "customer_segments"):
        pd.testing.assert_frame_equal(first.tables[name], again.tables[name], obj=name)
        stored = warehouse.execute(f"select * from segments.{name} order by customer_id").df()
        assert stored["customer_id"].tolist() == first.tables[name]["customer_id"].tolist()
    pd.testing.assert_frame_equal(first.findings, again.findings)


def test_customer_segments_joins_every_dimension_and_applies_overrides():
    settings = load_segmentation_settings()
    ids = ["BUYER", "PROSPECT", "UNKNOWN"]
    features = pd.DataFrame({"customer_id": ids, "order_count": [12, 0, 5]})
    industry = pd.DataFrame({
        "customer_id": ids, "segment": ["Industry", "Industry", "Unassigned"],
        "sub_segment": ["Oil & Gas", "Process Industry", "Unassigned"],
        "segment_source": ["crm_picklist", "legacy_mapping", "unassigned"],
        "sub_segment_source": ["crm_picklist", "name_inference", "unassigned"],
        "segment_confidence": [0.99, 0.4, 0.0], "sub_segment_confidence": [0.97, 0.3, 0.0],
        "reason_codes": ["IND.PICKLIST_CONSISTENT", "IND.LEGACY_SEGMENT_ONLY", "IND.NO_EVIDENCE"],
        "inputs": ['{"picklists": []}'] * 3, "scheme_version": "v", "as_of": AS_OF})
    profiles = pd.DataFrame({
        "customer_id": ["BUYER"], "value_profile": ["Lifecycle Partner"], "confidence": [0.8],
        "reason_codes": ["VP.MOST_RECENT_WON_PROJECT"], "inputs": ['{"projects": ["O1"]}'],
        "scheme_version": "v", "as_of": AS_OF})
    tiers = pd.DataFrame({
        "customer_id": ids, "service_tier": ["High-touch", "Low-touch", "Medium-touch"],
        "confidence": [0.9, 0.0, 0.5], "is_provisional": [False, True, False],
        "reason_codes": ["ST.RUSH_ORDERS", "ST.NO_ORDERS", ""], "inputs": ["{}"] * 3,
        "scheme_version": "v", "as_of": AS_OF})
    value = pd.DataFrame({
        "customer_id": ids, "size_tier": ["key", "small", "medium"],
        "rfm_group": ["Champions", "No purchases", "At risk"],
        "clv_365d_eur": [12000.0, None, 800.0], "confidence": [1.0, 0.0, 0.6],
        "reason_codes": ["CV.RFM_555", "CV.NO_PURCHASE_DAYS", "CV.RFM_211"],
        "inputs": ["{}"] * 3, "scheme_version": "v", "as_of": AS_OF})
    overrides = pd.DataFrame([
        {"customer_id": "BUYER", "segment": None, "sub_segment": None,
         "value_profile": "Performance Maximiser", "service_tier": "Medium-touch",
         "reason": "Key account review", "steward": "D", "decided_on": "2025-12-01"},
        {"customer_id": "UNKNOWN", "segment": None, "sub_segment": None,
         "value_profile": None, "service_tier": "Platinum", "reason": "typo", "steward": "D",
         "decided_on": "2025-12-01"}])
    result = consolidate(features, industry, profiles, tiers, value, overrides,
                         read_seed("value_profiles"), settings, AS_OF)
    table = result.table.set_index("customer_id")
    assert list(result.table.columns) == CUSTOMER_SEGMENT_COLUMNS
    buyer = table.loc["BUYER"]
    assert (buyer.value_profile, buyer.value_profile_confidence) == ("Performance Maximiser", 1.0)
    assert buyer.service_tier == "Medium-touch" and not buyer.is_provisional
    assert json.loads(buyer.reasons)["value_profile"]["codes"] == ["VP.STEWARD_OVERRIDE"]
    assert (buyer.size_tier, buyer.rfm_group, buyer.clv_365d_eur) == ("key", "Champions", 12000.0)
    prospect = table.loc["PROSPECT"]
    assert prospect.is_provisional and pd.isna(prospect.value_profile)
    assert prospect.provisional_reason == "NO_ORDERS;LOW_SEGMENT_CONFIDENCE"
    assert table.loc["UNKNOWN", "provisional_reason"] == "UNASSIGNED"
    assert table.loc["UNKNOWN", "service_tier"] == "Medium-touch"  # the bad override is not used
    assert result.findings["rule"].tolist() == ["unknown_service_tier"]
