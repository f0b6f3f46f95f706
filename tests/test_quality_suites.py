"""The expectation suites on a real pipeline warehouse: a clean dataset passes every blocking
check, and each kind of planted defect fails the right expectation, with the offending keys in
the steward queue under the right kind and severity. Validation runs as SQL in DuckDB.

Defects are planted in a private copy of the session run's warehouse, directly in the layer the
suite checks (the layers below are already built), so that each test shows one gate at work.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass

import duckdb
import pytest

from dagster_project.fact_store import fact_store_path
from dagster_project.paths import EXPECTATIONS_DIR
from dagster_project.quality import ahead
from dagster_project.quality.data_docs import wait_for_data_docs
from dagster_project.quality.gate import run_quality_gate
from dagster_project.quality.suites import (
    SuiteError,
    load_suite,
    load_suites,
    project_suites,
    suite_parameters,
    suites_by_layer,
)
from dagster_project.quality.validate import validate_suite, validate_suites
from dagster_project.settings import load_settings, settings
from dagster_project.steward.queue import build_steward_queue
from dagster_project.warehouse import connect, duckdb_config

LAYERS = {"raw", "staging", "marts", "segments"}


@pytest.fixture()
def warehouse(published_home, tmp_path):
    """A private copy of the e2e run's warehouse, to plant defects in."""
    copy = tmp_path / "warehouse.duckdb"
    shutil.copyfile(published_home / "warehouse.duckdb", copy)
    # marts.fct_order_lines is a view over the warehouse's fact store
    shutil.copyfile(fact_store_path(published_home / "warehouse.duckdb"), fact_store_path(copy))
    return copy


def _suite(name):
    return next(s for s in project_suites() if s.name == name)


def _one(con, sql, params=()):
    return con.execute(sql, list(params)).fetchall()[0]


def test_suites_are_a_gx_file_project_covering_every_layer():
    import great_expectations as gx

    context = gx.get_context(mode="file", context_root_dir=str(EXPECTATIONS_DIR))
    names = {s.name for s in context.suites.all()}
    assert names == {s.name for s in project_suites()}
    assert {s.layer for s in project_suites()} == LAYERS
    assets = {s.asset for s in project_suites()}
    assert {
        "raw.erp__order_lines",
        "staging.stg_erp__sales_orders",
        "staging.stg_erp__order_lines",
        "staging.stg_crm__accounts",
        "staging.stg_crm__value_driver_ratings",
        "marts.dim_customer",
        "marts.customer_source_map",
        "marts.kpi_revenue_by_customer_year",
        "segments.customer_segments",
        "segments.customer_service_tier",
    } <= assets


def test_a_policy_without_severity_in_config_is_refused(tmp_path):
    folder = tmp_path / "expectations"
    folder.mkdir()
    source = _suite("marts.dim_customer").path
    text = source.read_text().replace('"key_integrity"', '"no_such_policy"')
    (folder / source.name).write_text(text)
    with pytest.raises(SuiteError, match="no_such_policy"):
        load_suites(folder, load_settings())


def test_config_values_reach_the_sql_and_unknown_parameters_are_refused(tmp_path):
    """Thresholds and vocabularies in config are pasted into the SQL, never copied into it."""
    kpi = _suite("marts.kpi_revenue_by_customer_year")
    reconcile = next(e for e in kpi.expectations if e.rule == "revenue_reconciles_facts_to_kpi")
    tolerance = settings().quality.reconciliation.tolerance
    assert f"> {tolerance!r}" in reconcile.kwargs["unexpected_rows_query"]
    tiers = next(
        e
        for e in _suite("segments.customer_service_tier").expectations
        if e.rule == "service_tier_known"
    )
    assert suite_parameters(settings())["service_tiers"] in tiers.kwargs["unexpected_rows_query"]
    assert "${" not in json.dumps([e.kwargs for s in project_suites() for e in s.expectations])

    raw = json.loads(kpi.path.read_text())
    raw["expectations"][0]["kwargs"]["unexpected_rows_query"] += " and ${no_such_value}"
    broken = tmp_path / kpi.path.name
    broken.write_text(json.dumps(raw))
    with pytest.raises(SuiteError, match="no_such_value"):
        load_suite(broken)


def test_every_raw_suite_starts_with_the_layer_rules_written_once(tmp_path):
    for suite in project_suites():
        rules = [e.rule for e in suite.expectations]
        shared = ["raw_lineage_not_null", "raw_file_line_unique"]
        assert (rules[:2] == shared) == (suite.layer == "raw"), suite.name

    source = _suite("raw.erp__materials").path
    raw = json.loads(source.read_text())
    copied = next(
        e for e in _suite("raw.erp__order_lines").expectations if e.rule == "raw_lineage_not_null"
    )
    raw["expectations"].append(copied.raw)
    (tmp_path / source.name).write_text(json.dumps(raw))
    with pytest.raises(SuiteError, match="raw_lineage_not_null is a rule of every raw suite"):
        load_suite(tmp_path / source.name)


# Key values around the 64-line blocks the uniqueness and orphan rules group by, nulls included.
_LINE_NUMBERS = [None, -130, -65, -64, -1, 0, 1, 5, 63, 64, 65, 127, 128, 200, 2**40, -(2**40)]


def _rows_of_rule(con, suite_name: str, rule: str, batch: str) -> list[tuple]:
    spec = next(e for e in _suite(suite_name).expectations if e.rule == rule)
    sql = spec.kwargs["unexpected_rows_query"].replace("{batch}", batch)
    return sorted(con.execute(sql).fetchall(), key=str)


def test_key_and_orphan_rules_report_exactly_what_a_plain_group_by_or_anti_join_reports():
    """The big-table rules prefilter cheaply (64-line blocks, sorted hashes) and then count
    exactly: on keys around the block edges, repeated or not, they return the same rows."""
    import random

    rng = random.Random(7)
    con = duckdb.connect()
    con.execute("create schema staging")
    for _ in range(60):
        keys = [
            (rng.choice(["A", "B", "A-1", None]), rng.choice(_LINE_NUMBERS))
            for _ in range(rng.randint(1, 40))
        ]
        con.execute("create or replace table keys (name varchar, n bigint)")
        con.executemany("insert into keys values (?, ?)", keys)

        con.execute(
            "create or replace table raw_batch as select name as _source_file, n as _line, "
            "name || ':' || cast(n as varchar) as record_key from keys"
        )
        plain = (
            "select distinct b.record_key, cast(r.copies as varchar) || ' rows' from "
            "(select {a}, {b}, count(*) as copies from {t} group by all having count(*) > 1) r "
            "join {t} as b on b.{a} = r.{a} and b.{b} = r.{b}"
        )
        assert _rows_of_rule(
            con, "raw.erp__order_lines", "raw_file_line_unique", "raw_batch"
        ) == sorted(
            con.execute(plain.format(a="_source_file", b="_line", t="raw_batch")).fetchall(),
            key=str,
        )

        con.execute(
            "create or replace table staging.stg_erp__order_lines as "
            "select name as order_id, n as line_no, "
            "name || '-' || cast(n as varchar) as record_key from keys"
        )
        assert _rows_of_rule(
            con,
            "staging.stg_erp__order_lines",
            "order_line_key_unique",
            "staging.stg_erp__order_lines",
        ) == sorted(
            con.execute(
                plain.format(a="order_id", b="line_no", t="staging.stg_erp__order_lines")
            ).fetchall(),
            key=str,
        )
        assert _rows_of_rule(
            con,
            "marts.fct_order_lines",
            "order_line_fact_key_unique",
            "staging.stg_erp__order_lines",
        ) == sorted(
            con.execute(
                "select record_key, cast(count(*) as varchar) || ' rows' "
                "from staging.stg_erp__order_lines where record_key is not null "
                "group by all having count(*) > 1"
            ).fetchall(),
            key=str,
        )

        deliveries = [
            (f"D{i}", rng.choice(["A", "B", "Z", None]), rng.choice(_LINE_NUMBERS))
            for i in range(rng.randint(1, 20))
        ]
        con.execute(
            "create or replace table deliveries "
            "(record_key varchar, order_id varchar, line_no bigint)"
        )
        con.executemany("insert into deliveries values (?, ?, ?)", deliveries)
        assert _rows_of_rule(
            con, "staging.stg_erp__deliveries", "delivery_order_line_known", "deliveries"
        ) == sorted(
            con.execute(
                "select record_key, order_id || '-' || cast(line_no as varchar) "
                "from deliveries as d where not exists (select 1 from "
                "staging.stg_erp__order_lines as l "
                "where l.order_id = d.order_id and l.line_no = d.line_no)"
            ).fetchall(),
            key=str,
        )


def test_clean_dataset_passes_every_blocking_check(warehouse):
    outcomes = [o for o, _ in run_quality_gate(warehouse, list(project_suites()))]
    assert len(outcomes) == len(project_suites())
    assert {o.queries_dialect for o in outcomes} == {"duckdb"}  # pushed down through SQLAlchemy
    errors = [e.summary() for o in outcomes for e in o.expectations if e.error]
    assert not errors
    blocking = [f"{o.suite.name}: {e.summary()}" for o in outcomes for e in o.blocking_failures]
    assert not blocking


@dataclass(frozen=True)
class Defect:
    """A defect planted by `plant` (which returns the offending keys) and the check that must
    find it."""

    suite: str
    rule: str
    severity: str
    kind: str
    plant: Callable[[duckdb.DuckDBPyConnection], list[str]]


def _duplicate_raw_line(con):
    source_file, line = _one(con, "select _source_file, _line from raw.erp__materials limit 1")
    con.execute(
        "insert into raw.erp__materials select * from raw.erp__materials "
        "where _source_file = ? and _line = ?",
        [source_file, line],
    )
    return [f"{source_file}:{line}"]


def _first_staged_order_line(con) -> tuple[str, int]:
    return _one(
        con, "select order_id, line_no from staging.stg_erp__order_lines order by all limit 1"
    )


def _update_first_staged_order_line(con, assignment: str) -> tuple[str, int]:
    """Plant a defect in one staged order line; returns its (order_id, line_no) before."""
    order_id, line_no = _first_staged_order_line(con)
    con.execute(
        f"update staging.stg_erp__order_lines set {assignment} where order_id = ? and line_no = ?",
        [order_id, line_no],
    )
    return order_id, line_no


def _duplicate_staged_order_line(con):
    order_id, line_no = _first_staged_order_line(con)
    con.execute(
        "insert into staging.stg_erp__order_lines select * from staging.stg_erp__order_lines "
        "where order_id = ? and line_no = ?",
        [order_id, line_no],
    )
    return [f"{order_id}-{line_no}"]


def _duplicate_fact(con):
    (order_line_id,) = _one(con, "select min(order_line_id) from marts.fct_order_lines")
    # marts.fct_order_lines is a view over the fact store (dagster_project/fact_store.py)
    con.execute(
        "insert into fact_store.main.fct_order_lines select * from marts.fct_order_lines "
        "where order_line_id = ?",
        [order_line_id],
    )
    return [order_line_id]


def _delivery_of_unknown_order_line(con):
    (delivery_id,) = _one(con, "select min(delivery_id) from staging.stg_erp__deliveries")
    con.execute(
        "update staging.stg_erp__deliveries set line_no = line_no + 1 where delivery_id = ?",
        [delivery_id],
    )
    return [delivery_id]


def _order_of_unknown_customer(con):
    (order_id,) = _one(con, "select min(order_id) from staging.stg_erp__sales_orders")
    con.execute(
        "update staging.stg_erp__sales_orders set customer_number = 'NO-SUCH-CUSTOMER' "
        "where order_id = ?",
        [order_id],
    )
    return [order_id]


def _line_of_unknown_order(con):
    _, line_no = _update_first_staged_order_line(con, "order_id = 'NO-SUCH-ORDER'")
    return [f"NO-SUCH-ORDER-{line_no}"]


def _line_of_unknown_material(con):
    order_id, line_no = _update_first_staged_order_line(con, "material_number = 'NO-SUCH-MATERIAL'")
    return [f"{order_id}-{line_no}"]


def _account_with(segment, sub_segment):
    def plant(con):
        (account_id,) = _one(
            con,
            "select min(account_id) from staging.stg_crm__accounts where segment is not null",
        )
        con.execute(
            "update staging.stg_crm__accounts set segment = ?, sub_segment = ? "
            "where account_id = ?",
            [segment, sub_segment, account_id],
        )
        return [account_id]

    return plant


def _customer_segment_under_wrong_segment(con):
    # A sub-segment of Power Generation assigned under Industry.
    (customer_id,) = _one(con, "select min(customer_id) from segments.customer_segments")
    con.execute(
        "update segments.customer_segments set segment = 'Industry', sub_segment = 'Utilities' "
        "where customer_id = ?",
        [customer_id],
    )
    return [customer_id]


def _customer_without_segment_row(con):
    (customer_id,) = _one(con, "select min(customer_id) from segments.customer_segments")
    con.execute("delete from segments.customer_segments where customer_id = ?", [customer_id])
    return [customer_id]


def _unknown_service_tier(con):
    (customer_id,) = _one(con, "select min(customer_id) from segments.customer_service_tier")
    con.execute(
        "update segments.customer_service_tier set service_tier = 'Platinum-touch' "
        "where customer_id = ?",
        [customer_id],
    )
    return [customer_id]


def _ranks_not_a_permutation(con):
    (key,) = _one(
        con,
        "select opportunity_id || '/' || coalesce(rater_key, '-') "
        "from staging.stg_crm__value_driver_ratings where price_rank is not null "
        "order by all limit 1",
    )
    con.execute(
        "update staging.stg_crm__value_driver_ratings set price_rank = 9 "
        "where opportunity_id || '/' || coalesce(rater_key, '-') = ?",
        [key],
    )
    return [key]


def _negative_quantity_on_a_sale(con):
    # A line with a positive net value (a sale, not a credit) and a negative quantity.
    (key,) = _one(
        con,
        "select order_id || '-' || line_no from staging.stg_erp__order_lines "
        "where quantity > 0 and net_value > 0 order by all limit 1",
    )
    con.execute(
        "update staging.stg_erp__order_lines set quantity = -quantity "
        "where order_id || '-' || line_no = ?",
        [key],
    )
    return [key]


def _unknown_currency(con):
    (order_id,) = _one(con, "select min(order_id) from staging.stg_erp__sales_orders")
    con.execute(
        "update staging.stg_erp__sales_orders set currency = 'XQZ' where order_id = ?",
        [order_id],
    )
    return [order_id]


def _kpi_off_by_250(con):
    customer_id, year = _one(
        con, "select customer_id, year from marts.kpi_revenue_by_customer_year order by all limit 1"
    )
    con.execute(
        "update marts.kpi_revenue_by_customer_year set revenue_eur = revenue_eur + 250 "
        "where customer_id = ? and year = ?",
        [customer_id, year],
    )
    return [f"{customer_id}/{year}"]


def _fact_lost_in_staging(con):
    # A fact whose staged line is gone: staging and facts no longer reconcile in its currency.
    order_line_id, currency = _one(
        con, "select order_line_id, currency from marts.fct_order_lines order by all limit 1"
    )
    order_id, line_no = _one(
        con,
        "select order_id, line_no from marts.fct_order_lines where order_line_id = ?",
        [order_line_id],
    )
    con.execute(
        "delete from staging.stg_erp__order_lines where order_id = ? and line_no = ?",
        [order_id, line_no],
    )
    return [currency]


DEFECTS = {
    "raw file line loaded twice": Defect(
        "raw.erp__materials",
        "raw_file_line_unique",
        "error",
        "failed_expectation",
        _duplicate_raw_line,
    ),
    "duplicate key after deduplication": Defect(
        "staging.stg_erp__order_lines",
        "order_line_key_unique",
        "error",
        "failed_expectation",
        _duplicate_staged_order_line,
    ),
    "duplicate fact key": Defect(
        "marts.fct_order_lines",
        "order_line_fact_key_unique",
        "error",
        "failed_expectation",
        _duplicate_fact,
    ),
    "delivery of an unknown order line": Defect(
        "staging.stg_erp__deliveries",
        "delivery_order_line_known",
        "warn",
        "orphan_reference",
        _delivery_of_unknown_order_line,
    ),
    "order of an unknown customer": Defect(
        "staging.stg_erp__sales_orders",
        "sales_order_customer_known",
        "warn",
        "orphan_reference",
        _order_of_unknown_customer,
    ),
    "order line of an unknown order": Defect(
        "staging.stg_erp__order_lines",
        "order_line_order_known",
        "warn",
        "orphan_reference",
        _line_of_unknown_order,
    ),
    "order line of an unknown material": Defect(
        "staging.stg_erp__order_lines",
        "order_line_material_known",
        "warn",
        "orphan_reference",
        _line_of_unknown_material,
    ),
    "unknown picklist value": Defect(
        "staging.stg_crm__accounts",
        "crm_account_segment_known",
        "warn",
        "inconsistent_picklist",
        _account_with("Energy", "Utilities"),
    ),
    "picklist sub-segment under the wrong segment": Defect(
        "staging.stg_crm__accounts",
        "crm_account_segment_hierarchy_valid",
        "warn",
        "inconsistent_picklist",
        _account_with("Industry", "Utilities"),
    ),
    "assigned sub-segment under the wrong segment": Defect(
        "segments.customer_segments",
        "customer_segments_hierarchy_valid",
        "error",
        "failed_expectation",
        _customer_segment_under_wrong_segment,
    ),
    "customer without a segment row": Defect(
        "segments.customer_segments",
        "customer_segments_every_customer_has_a_row",
        "error",
        "failed_expectation",
        _customer_without_segment_row,
    ),
    "service tier outside the configured tiers": Defect(
        "segments.customer_service_tier",
        "service_tier_known",
        "error",
        "failed_expectation",
        _unknown_service_tier,
    ),
    "ranks not a permutation": Defect(
        "staging.stg_crm__value_driver_ratings",
        "rating_ranks_are_a_permutation",
        "warn",
        "failed_expectation",
        _ranks_not_a_permutation,
    ),
    "negative quantity on a non-credit line": Defect(
        "staging.stg_erp__order_lines",
        "order_line_quantity_sign_matches_credit",
        "warn",
        "failed_expectation",
        _negative_quantity_on_a_sale,
    ),
    "unknown currency": Defect(
        "staging.stg_erp__sales_orders",
        "sales_order_currency_known",
        "warn",
        "failed_expectation",
        _unknown_currency,
    ),
    "KPI does not reconcile with the facts": Defect(
        "marts.kpi_revenue_by_customer_year",
        "revenue_reconciles_facts_to_kpi",
        "error",
        "failed_expectation",
        _kpi_off_by_250,
    ),
    "staging does not reconcile with the facts": Defect(
        "marts.fct_order_lines",
        "revenue_reconciles_staging_to_facts",
        "error",
        "failed_expectation",
        _fact_lost_in_staging,
    ),
}


@pytest.mark.parametrize("defect", DEFECTS.values(), ids=list(DEFECTS))
def test_planted_defect_fails_its_check_with_the_keys_in_the_steward_queue(warehouse, defect):
    con = connect(warehouse)
    keys = defect.plant(con)
    con.close()

    ((outcome, table),) = run_quality_gate(warehouse, [_suite(defect.suite)])

    assert outcome.queries_dialect == "duckdb"
    failed = {e.spec.rule: e for e in outcome.failed}
    assert defect.rule in failed, [e.summary() for e in outcome.failed]
    assert [r.record_key for r in failed[defect.rule].rows] == keys
    assert failed[defect.rule].severity == defect.severity
    # An error blocks publication (the Dagster check fails with ERROR); a warning does not.
    assert (failed[defect.rule] in outcome.blocking_failures) == (defect.severity == "error")

    con = connect(warehouse)
    build_steward_queue(con, "test-run")
    queued = con.execute(
        "select record_key, severity, kind, status, message from steward.steward_queue "
        "where rule = ?",
        [defect.rule],
    ).fetchall()
    con.close()
    assert [(k, s, kind, st) for k, s, kind, st, _ in queued] == [
        (key, defect.severity, defect.kind, "open") for key in keys
    ]
    assert all(m.startswith(defect.suite) for *_, m in queued)
    assert table == f"steward.findings__{_suite(defect.suite).stage}"


def test_kpi_reconciliation_break_reports_the_revenue_affected(warehouse):
    con = connect(warehouse)
    (key,) = _kpi_off_by_250(con)
    con.close()
    outcome = validate_suite(warehouse, _suite("marts.kpi_revenue_by_customer_year"))
    (row,) = {e.spec.rule: e for e in outcome.failed}["revenue_reconciles_facts_to_kpi"].rows
    assert (row.record_key, row.customers_affected) == (key, 1)
    assert row.revenue_eur_affected == pytest.approx(250)
    assert "revenue_reconciles_facts_to_kpi" in outcome.description()


def test_a_rules_findings_are_its_lowest_keys_whatever_order_the_table_keeps(warehouse):
    # The queue keeps the first offending rows a rule returns, up to a cap. They are the lowest
    # record keys, so a rebuild that stores the table's rows in another order changes nothing.
    rule = "crm_account_value_profile_matches_axes"
    suite = _suite("staging.stg_crm__accounts")
    con = connect(warehouse)
    con.execute(
        """update staging.stg_crm__accounts set value_profile = 'Flexible Opportunist'
           where account_id in (
               select account_id from staging.stg_crm__accounts
               where business_model = 'Asset Owner-Operator'
                 and operating_environment = 'Regulated / Contracted'
               order by account_id limit 6)"""
    )
    con.close()
    every = {e.spec.rule: e for e in validate_suite(warehouse, suite).failed}[rule].rows
    assert len(every) >= 6

    con = connect(warehouse)
    con.execute(
        "create or replace table staging.stg_crm__accounts as "
        "from staging.stg_crm__accounts order by account_id desc"
    )
    con.close()
    quality = settings().quality.model_copy(update={"max_keys_per_expectation": 3})
    policy = settings().model_copy(update={"quality": quality})
    capped = {e.spec.rule: e for e in validate_suite(warehouse, suite, policy=policy).failed}
    assert [row.record_key for row in capped[rule].rows] == sorted(row.record_key for row in every)[
        :3
    ]
    assert capped[rule].unexpected_count == len(every)


def _publish_previous(warehouse, published_db):
    """A previous publication: the run's customer_segments and publish_log as a BI file."""
    con = duckdb.connect()
    con.execute(f"attach '{warehouse}' as warehouse (read_only)")
    con.execute(f"attach '{published_db}' as previous")
    con.execute(
        "create table previous.customer_segments as from warehouse.segments.customer_segments"
    )
    con.execute(
        "create table previous.publish_log as "
        "select 'previous-run' as run_id, now() as published_at"
    )
    con.close()


def test_segment_shares_are_compared_with_the_previous_publication(warehouse, tmp_path):
    suite = _suite("segments.customer_segments")
    published_db = tmp_path / "analytics.duckdb"
    rule = "segment_shares_close_to_previous_publication"

    # No previous publication (a first run): nothing to compare with.
    ((outcome, _),) = run_quality_gate(warehouse, [suite], published_db=published_db)
    assert rule not in {e.spec.rule for e in outcome.failed}

    # The same shares as published: passes.
    _publish_previous(warehouse, published_db)
    ((outcome, _),) = run_quality_gate(warehouse, [suite], published_db=published_db)
    assert rule not in {e.spec.rule for e in outcome.failed}

    # Half of the customers moved into one segment: its share jumps beyond the bound.
    con = connect(warehouse)
    con.execute(
        "update segments.customer_segments set segment = 'Industry', sub_segment = 'Oil & Gas' "
        "where hash(customer_id) % 2 = 0"
    )
    con.close()
    ((outcome, _),) = run_quality_gate(warehouse, [suite], published_db=published_db)
    shifted = {e.spec.rule: e for e in outcome.failed}[rule]
    assert shifted.severity == settings().severity_of("distribution")
    keys = {r.record_key for r in shifted.rows}
    assert {"segment=Industry", "sub_segment=Oil & Gas"} <= keys
    assert all("previous publication" in r.observed_value for r in shifted.rows)


def test_an_expectation_that_cannot_run_fails_the_gate(warehouse):
    con = connect(warehouse)
    con.execute("drop view intermediate.int_fx_rates_filled_monthly")
    con.close()
    outcome = validate_suite(warehouse, _suite("staging.stg_erp__sales_orders"))
    failed = {e.spec.rule: e for e in outcome.failed}
    assert failed["sales_order_currency_known"].error


def _findings(outcomes):
    return [
        (
            o.suite.name,
            e.spec.rule,
            e.unexpected_count,
            [(r.record_key, r.observed_value) for r in e.rows],
        )
        for o in outcomes
        for e in o.failed
    ]


def test_staging_suites_validated_beside_a_writer_find_what_the_gate_finds(warehouse):
    con = connect(warehouse)
    con.execute(
        "insert into staging.stg_erp__deliveries by name "
        "select 'D-PLANTED' as delivery_id, 'NO-SUCH-ORDER' as order_id, 1 as line_no"
    )
    staging = suites_by_layer(project_suites())["staging"]
    try:
        # the identity step holds the warehouse read-write and writes while the suites run
        assert ahead.start(warehouse, staging, "run-a", settings(), duckdb_config())
        con.execute("create schema scratch; create table scratch.written as select 1 as x")
        validated = ahead.claim("run-a", staging)
    finally:
        con.close()

    assert validated is not None
    found = _findings(validated.outcomes)
    assert ("staging.stg_erp__deliveries", "delivery_order_line_known", 1) in [f[:3] for f in found]
    assert found == _findings(validate_suites(warehouse, staging))


def test_a_validation_ahead_is_taken_only_by_its_run_and_suites(warehouse):
    staging = suites_by_layer(project_suites())["staging"]
    options = (settings(), duckdb_config())
    assert ahead.start(warehouse, staging, "run-a", *options)
    assert ahead.claim("run-b", staging) is None
    assert ahead.start(warehouse, staging, "run-a", *options)
    assert ahead.claim("run-a", staging[:1]) is None
    assert ahead.claim("run-a", staging) is None  # nothing left to take
    # suites that write what they compare with first are left to their gate step
    preparing = [s for s in project_suites() if s.prepare]
    assert preparing and not ahead.start(warehouse, preparing, "run-a", *options)


def test_data_docs_rendered_in_the_background_show_every_run_once_waited_for(warehouse, tmp_path):
    project = tmp_path / "gx"
    suites = [_suite("staging.stg_erp__materials"), _suite("staging.stg_erp__fx_rates")]
    for run in ("run-1", "run-2"):
        results = run_quality_gate(
            warehouse, suites, project_dir=project, run_name=run, data_docs_in_background=True
        )
        assert [o.suite.name for o, _ in results] == [s.name for s in suites]
    wait_for_data_docs()

    site = project / "uncommitted/data_docs/local_site"
    pages = list((site / "validations").rglob("*.html"))
    assert len(pages) == 2 * len(suites)
    index = (site / "index.html").read_text()
    assert "run-1" in index and "run-2" in index


def test_a_data_docs_render_that_fails_is_logged_not_raised(warehouse, tmp_path, caplog):
    project = tmp_path / "not_a_folder"
    project.write_text("a file where the GX project should be")
    [(outcome, _)] = run_quality_gate(
        warehouse,
        [_suite("staging.stg_erp__materials")],
        project_dir=project,
        run_name="run-1",
        data_docs_in_background=True,
    )
    wait_for_data_docs()
    assert outcome.success  # the validation stands
    assert "Data Docs not updated" in caplog.text


def test_validation_results_and_data_docs_keep_the_last_runs_only(warehouse, tmp_path):
    project = tmp_path / "gx"
    keep = settings().quality.model_copy(update={"keep_validation_runs": 2})
    policy = settings().model_copy(update={"quality": keep})
    suites = [_suite("staging.stg_erp__materials"), _suite("staging.stg_erp__fx_rates")]
    for run in ("run-1", "run-2", "run-3"):
        validate_suites(warehouse, suites, project_dir=project, policy=policy, run_name=run)

    uncommitted = project / "uncommitted"
    results = [p.relative_to(uncommitted) for p in (uncommitted / "validations").rglob("*.json")]
    pages = list((uncommitted / "data_docs/local_site/validations").rglob("*.html"))
    index = (uncommitted / "data_docs/local_site/index.html").read_text()
    assert len(results) == len(pages) == 2 * len(suites)
    assert {p.parts[-3] for p in results} == {"run-2", "run-3"}
    assert "run-3" in index and "run-1" not in index
    # No empty run folders are left behind either.
    assert not [p for p in uncommitted.rglob("*") if p.is_dir() and not any(p.iterdir())]
