"""Segment history: hysteresis on hand-made snapshots, migration and stability counts, rerun and
backfill order, and the monthly as-of partitions."""

from __future__ import annotations

import datetime as dt

import duckdb
import pandas as pd
import pytest
import yaml

from dagster_project.segmentation.history import (
    HELD,
    HISTORY_TABLE,
    KEPT,
    MIGRATION_TABLE,
    NEW,
    STABILITY_TABLE,
    SWITCHED_EVIDENCE,
    SWITCHED_FROM_PROVISIONAL,
    SWITCHED_IMMEDIATE,
    SWITCHED_PERSISTED,
    record_snapshot,
    write_migration_and_stability,
)
from dagster_project.segmentation.settings import (
    SEGMENTATION_FILE,
    HistorySettings,
    load_segmentation_settings,
)

# The shipped rules' history section (the thresholds a deployment uses).
SETTINGS = HistorySettings.model_validate(yaml.safe_load(SEGMENTATION_FILE.read_text())["history"])
INDUSTRY = SETTINGS.dimensions["industry"]
PERSIST = INDUSTRY.persist_snapshots
LOW = INDUSTRY.min_confidence / 2  # below every switch threshold
HIGH = 1.0
MONTHS = [dt.date(2025, m, 1) for m in range(1, 13)]


def _month_end(month: dt.date) -> dt.date:
    return (pd.Timestamp(month) + pd.offsets.MonthEnd(0)).date()


def _segments(month: dt.date, rows: dict[str, dict]) -> pd.DataFrame:
    """customer_segments rows of one as-of: customer -> overrides of a stable default row."""
    default = {
        "segment": "Industry",
        "sub_segment": "Mining & Metals",
        "segment_source": "legacy_mapping",
        "segment_confidence": LOW,
        "value_profile": "Lifecycle Partner",
        "value_profile_confidence": LOW,
        "service_tier": "Medium-touch",
        "service_tier_confidence": LOW,
        "is_provisional": False,
    }
    records = [
        {"customer_id": c, "as_of": _month_end(month), "scheme_version": "v1", **default, **r}
        for c, r in rows.items()
    ]
    return pd.DataFrame(records)


def _held(con, customer: str, column: str = "segment") -> list[tuple]:
    return con.execute(
        f"select {column}, industry_decision from {HISTORY_TABLE} where customer_id = ? "
        "order by snapshot_month",
        [customer],
    ).fetchall()


@pytest.fixture()
def con():
    connection = duckdb.connect()
    yield connection
    connection.close()


def _record(con, month, rows):
    return record_snapshot(con, _segments(month, rows), month, SETTINGS)


def test_one_off_change_is_held_and_persistent_change_applied(con):
    data_centres = {"segment": "Industry", "sub_segment": "Data Centres"}
    utilities = {"segment": "Power Generation", "sub_segment": "Utilities"}
    _record(con, MONTHS[0], {"a": {}, "b": {}})
    # a: one month assigned Data Centres with weak evidence, then back: never flips
    _record(con, MONTHS[1], {"a": data_centres, "b": utilities})
    _record(con, MONTHS[2], {"a": {}, "b": utilities})
    for month in MONTHS[3:PERSIST + 1]:
        _record(con, month, {"a": {}, "b": utilities})

    a = _held(con, "a", "sub_segment")
    assert [s for s, _ in a] == ["Mining & Metals"] * len(a)
    assert [d for _, d in a][:3] == [NEW, HELD, KEPT]
    reasons = con.execute(
        f"select hysteresis_reasons, assigned_sub_segment from {HISTORY_TABLE} "
        "where customer_id = 'a' and snapshot_month = ?", [MONTHS[1]]).fetchall()[0]
    assert "Data Centres" in reasons[0] and reasons[1] == "Data Centres"

    # b: assigned Utilities from month 2 on; held until assigned PERSIST times in a row
    b = _held(con, "b")
    assert [d for _, d in b[1:PERSIST + 1]] == [HELD] * (PERSIST - 1) + [SWITCHED_PERSISTED]
    assert [s for s, _ in b] == ["Industry"] * PERSIST + ["Power Generation"]
    # segment and sub-segment move together: the held pair is always a valid hierarchy
    pairs = con.execute(f"select distinct segment, sub_segment from {HISTORY_TABLE}").fetchall()
    assert set(pairs) == {("Industry", "Mining & Metals"), ("Power Generation", "Utilities")}


def test_strong_evidence_override_and_provisional_switch_at_once(con):
    _record(con, MONTHS[0], {"strong": {}, "override": {}, "prospect": {"is_provisional": True}})
    _record(con, MONTHS[1], {
        "strong": {"service_tier": "High-touch", "service_tier_confidence": HIGH},
        "override": {"sub_segment": "Oil & Gas", "segment_source": "override"},
        "prospect": {"value_profile": "Volume Reseller"},
    })
    got = dict(con.execute(
        f"select customer_id, service_tier || '|' || service_tier_decision || '|' || sub_segment "
        f"|| '|' || industry_decision || '|' || value_profile || '|' || value_profile_decision "
        f"from {HISTORY_TABLE} where snapshot_month = ?", [MONTHS[1]]).fetchall())
    assert got["strong"].split("|")[:2] == ["High-touch", SWITCHED_EVIDENCE]
    assert got["override"].split("|")[2:4] == ["Oil & Gas", SWITCHED_IMMEDIATE]
    assert got["prospect"].split("|")[4:] == ["Volume Reseller", SWITCHED_FROM_PROVISIONAL]


def test_migration_matrix_and_stability_count_held_values(con):
    utilities = {"segment": "Power Generation", "sub_segment": "Utilities",
                 "segment_confidence": HIGH}
    _record(con, MONTHS[0], {"a": {}, "b": {}, "c": {}, "gone": {}})
    # a moves (strong evidence), b has a one-off change (held), c stays, d is new, gone leaves
    _record(con, MONTHS[1], {"a": utilities, "b": {**utilities, "segment_confidence": LOW},
                             "c": {}, "d": utilities})
    counts = write_migration_and_stability(con, SETTINGS)
    assert counts == {MIGRATION_TABLE: 14, STABILITY_TABLE: 4}  # cells: 4+4+3+3
    moves = {
        (f, t): n
        for f, t, n in con.execute(
            f"select from_value, to_value, customers from {MIGRATION_TABLE} "
            "where dimension = 'segment'").fetchall()
    }
    labels = SETTINGS.migration_labels
    assert moves == {
        ("Industry", "Industry"): 2,  # b (held) and c
        ("Industry", "Power Generation"): 1,  # a
        ("Industry", labels.gone): 1,
        (labels.new, "Power Generation"): 1,  # d
    }
    stability = con.execute(
        f"select value, customers, customers_kept, customers_moved, customers_gone, stability "
        f"from {STABILITY_TABLE} where dimension = 'segment'").fetchall()
    assert stability == [("Industry", 3, 2, 1, 1, pytest.approx(0.6667))]


def test_rerun_is_identical_and_backfill_order_does_not_matter(con):
    months = MONTHS[:4]
    assignments = {
        months[0]: {"a": {}, "b": {}},
        months[1]: {"a": {"service_tier": "Low-touch"}, "b": {}},
        months[2]: {"a": {"service_tier": "Low-touch"}, "b": {"value_profile": None}},
        months[3]: {"a": {"service_tier": "Low-touch"}, "b": {"value_profile": None}},
    }
    table = f"select * from {HISTORY_TABLE} order by snapshot_month, customer_id"
    for month in months:
        _record(con, month, assignments[month])
    in_order = con.execute(table).df()
    _record(con, months[2], assignments[months[2]])  # rerun of one as-of: replaces it
    assert con.execute(table).df().equals(in_order)

    other = duckdb.connect()
    for month in [months[3], months[1], months[0], months[2]]:  # a backfill out of order
        record_snapshot(other, _segments(month, assignments[month]), month, SETTINGS)
    pd.testing.assert_frame_equal(other.execute(table).df(), in_order)
    other.close()
    assert [t for t, _ in _held(con, "a", "service_tier")] == (
        ["Medium-touch"] * PERSIST + ["Low-touch"])[:4]


def test_unknown_history_key_fails_at_load(tmp_path):
    raw = yaml.safe_load(SEGMENTATION_FILE.read_text())
    raw["history"]["dimensions"]["industry"]["persist_snapshot"] = 2  # typo
    path = tmp_path / "segmentation.yml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ValueError, match="persist_snapshot"):
        load_segmentation_settings(path)



def test_replay_rebuilds_the_as_of_models_between_the_data_and_the_assignment():
    """A backfill rebuilds only the models whose SQL reads the as-of (however indirectly) and
    lie upstream of what the assignment reads."""
    from dagster_project.transform.as_of_replay import models_to_replay

    def model(name, schema, macros):
        return {"resource_type": "model", "name": name, "alias": name, "schema": schema,
                "depends_on": {"macros": macros}}

    edges = {"stg_orders": ["int_lines", "dim"], "int_lines": ["fct_lines"],
             "fct_lines": ["features", "kpi"], "stg_cases": ["cases"]}
    uid = "model.segments.{}".format
    manifest = {
        "macros": {
            "macro.segments.as_of_date": {"depends_on": {"macros": []}},
            "macro.segments.is_within_as_of": {
                "depends_on": {"macros": ["macro.segments.as_of_date"]}},
            "macro.segments.last_year": {
                "depends_on": {"macros": ["macro.segments.is_within_as_of"]}},
        },
        "nodes": {uid(n): model(n, s, m) for n, s, m in [
            ("stg_orders", "staging", []), ("stg_cases", "staging", []),
            ("int_lines", "intermediate", ["macro.segments.is_within_as_of"]),
            ("fct_lines", "marts", []), ("features", "marts", []), ("kpi", "marts", []),
            ("dim", "marts", []), ("cases", "marts", ["macro.segments.last_year"]),
        ]},
        "child_map": {uid(a): [uid(b) for b in bs] for a, bs in edges.items()},
        "parent_map": {uid(b): [uid(a)] for a, bs in edges.items() for b in bs},
    }
    needed = [("marts", "features"), ("marts", "dim"), ("marts", "cases")]
    assert models_to_replay(manifest, needed) == ["cases", "fct_lines", "features", "int_lines"]

# --- after a pipeline run (the session fixture of tests/conftest.py) ---------------------------

PUBLISHED_HISTORY_TABLES = {
    "customer_segment_history", "segment_migration", "segment_stability", "crm_writeback",
    "segment_cluster_crosstab",
}


@pytest.mark.e2e
def test_run_publishes_history_migration_writeback_and_clusters(published_home):
    con = duckdb.connect(str(published_home / "published" / "analytics.duckdb"), read_only=True)
    tables = {r[0] for r in con.execute("select table_name from information_schema.tables")
              .fetchall()}
    assert not PUBLISHED_HISTORY_TABLES - tables
    # one snapshot: the run's as-of, every customer of customer_segments, all new
    snapshot = con.execute(
        "select as_of, count(*), count(distinct customer_id), min(industry_decision), "
        "max(industry_decision) from customer_segment_history group by as_of").fetchall()
    segments = con.execute("select max(as_of), count(*) from customer_segments").fetchall()[0]
    assert snapshot == [(segments[0], segments[1], segments[1], NEW, NEW)]
    # the write-back holds CRM ids and picklist values only: all changed on a first
    # publication, none on a rerun with the same data (tests/test_end_to_end.py reruns)
    columns = [r[0] for r in con.execute("describe crm_writeback").fetchall()]
    assert columns[:5] == ["account_id", "segment", "sub_segment", "value_profile",
                           "changed_since_last_publication"]
    assert not {"first_name", "last_name", "email", "phone", "rated_by"} & set(columns)
    accounts, changed = con.execute(
        "select count(*), count(*) filter (where changed_since_last_publication) "
        "from crm_writeback").fetchall()[0]
    publications = con.execute("select count(distinct run_id) from publish_log").fetchall()[0][0]
    assert accounts > 0 and changed == (accounts if publications == 1 else 0)
    clustered = con.execute("select sum(customers) from segment_cluster_crosstab").fetchall()[0][0]
    assert clustered > 0
    con.close()
    files = published_home / "published" / "crm_writeback"
    with open(files / "crm_account_segments.csv", encoding="utf-8") as f:
        assert sum(1 for _ in f) == accounts + 1


@pytest.mark.e2e
def test_backfilled_month_is_assigned_as_of_that_month(published_home, tmp_path):
    """A backfill of an older month re-runs the rules on the data as of its month end (here:
    customers whose first order came later are prospects then) and re-threads later snapshots."""
    import os
    import shutil
    import subprocess
    import sys

    from tests.conftest import PROJECT_ROOT

    home = tmp_path / "home"
    shutil.copytree(published_home, home, ignore=shutil.ignore_patterns("landing", "truth"))
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    current = con.execute(f"select max(as_of) from {HISTORY_TABLE}").fetchall()[0][0]
    month = dt.date(current.year - 1, 6, 1)
    later_buyers = {r[0] for r in con.execute(
        "select customer_id from marts.customer_features where first_order_date > ?",
        [_month_end(month)]).fetchall()}
    con.close()
    assert later_buyers
    env = {**os.environ, "SEGMENTS_HOME": str(home), "DAGSTER_HOME": str(home / "dagster"),
           "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    done = subprocess.run(
        [sys.executable, "-m", "dagster", "asset", "materialize", "-m",
         "dagster_project.definitions", "--select", "segments/customer_segment_history",
         "--partition", month.isoformat()],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]

    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    snapshots = con.execute(
        f"select snapshot_month, as_of from {HISTORY_TABLE} group by all order by 1").fetchall()
    assert snapshots == [(month, _month_end(month)), (current.replace(day=1), current)]
    then = dict(con.execute(
        f"select customer_id, is_provisional from {HISTORY_TABLE} where snapshot_month = ?",
        [month]).fetchall())
    assert all(then[c] for c in later_buyers if c in then)
    # the current snapshot now has a predecessor: its decisions are no longer all NEW
    decisions = {r[0] for r in con.execute(
        f"select industry_decision from {HISTORY_TABLE} where as_of = ?", [current]).fetchall()}
    assert decisions - {NEW}
    con.close()
