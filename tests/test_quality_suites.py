"""The expectation suites on a real pipeline warehouse: a clean dataset passes every suite,
and each kind of planted defect fails the right expectation, with the offending keys as steward
findings of the right severity. Validation runs as SQL in DuckDB."""

from __future__ import annotations

import shutil

import duckdb
import pytest

from dagster_project.paths import EXPECTATIONS_DIR
from dagster_project.quality.suites import SuiteError, load_suites, project_suites
from dagster_project.quality.validate import record_findings, validate_suite
from dagster_project.settings import load_settings


@pytest.fixture()
def warehouse(published_home, tmp_path):
    """A private copy of the e2e run's warehouse, to plant defects in."""
    copy = tmp_path / "warehouse.duckdb"
    shutil.copyfile(published_home / "warehouse.duckdb", copy)
    return copy


def _suite(name):
    return next(s for s in project_suites() if s.name == name)


def _failures(warehouse, name):
    outcome = validate_suite(warehouse, _suite(name))
    assert outcome.queries_dialect == "duckdb"  # pushed down to DuckDB through SQLAlchemy
    return outcome, {e.spec.rule: e for e in outcome.failed}


def test_suites_are_a_gx_file_project_and_cover_staging_and_marts():
    import great_expectations as gx

    context = gx.get_context(mode="file", context_root_dir=str(EXPECTATIONS_DIR))
    names = {s.name for s in context.suites.all()}
    assert names == {s.name for s in project_suites()}
    assets = {s.asset for s in project_suites()}
    assert {
        "staging.stg_erp__sales_orders",
        "staging.stg_erp__order_lines",
        "staging.stg_crm__value_driver_ratings",
        "marts.dim_customer",
        "marts.customer_source_map",
        "marts.kpi_revenue_by_customer_year",
    } <= assets


def test_a_policy_without_severity_in_config_is_refused(tmp_path):
    folder = tmp_path / "expectations"
    folder.mkdir()
    source = _suite("marts.dim_customer").path
    text = source.read_text().replace('"key_integrity"', '"no_such_policy"')
    (folder / source.name).write_text(text)
    with pytest.raises(SuiteError, match="no_such_policy"):
        load_suites(folder, load_settings())


def test_clean_dataset_passes_every_suite(warehouse):
    for suite in project_suites():
        outcome = validate_suite(warehouse, suite)
        assert outcome.success, [e.summary() for e in outcome.failed]


def test_duplicate_staged_key_blocks_with_the_key(warehouse):
    con = duckdb.connect(str(warehouse))
    order_id, line_no = con.execute(
        "select order_id, line_no from staging.stg_erp__order_lines order by all limit 1"
    ).fetchall()[0]
    con.execute(
        "insert into staging.stg_erp__order_lines select * from staging.stg_erp__order_lines "
        "where order_id = ? and line_no = ?",
        [order_id, line_no],
    )
    con.close()
    outcome, failed = _failures(warehouse, "staging.stg_erp__order_lines")
    unique = failed["order_line_key_unique"]
    assert unique.severity == "error"
    assert [r.record_key for r in unique.rows] == [f"{order_id}-{line_no}"]
    assert outcome.blocking_failures == [unique]
    assert "order_line_key_unique" in outcome.description()


def test_source_defects_warn_with_their_keys(warehouse):
    con = duckdb.connect(str(warehouse))
    material = con.execute("select min(material_number) from staging.stg_erp__materials")
    material = material.fetchall()[0][0]
    # An order line without its order, one order in an unknown currency dated in the future,
    # one credit line with a positive net value.
    con.execute(
        "insert into staging.stg_erp__order_lines (order_id, line_no, material_number, quantity,"
        " net_value, is_credit) values ('NO-SUCH-ORDER', 10, ?, 1, 100, false)",
        [material],
    )
    (order_id,) = con.execute("select min(order_id) from staging.stg_erp__sales_orders").fetchall()[
        0
    ]
    con.execute(
        "update staging.stg_erp__sales_orders set currency = 'XQZ', order_date = date '2099-01-01'"
        " where order_id = ?",
        [order_id],
    )
    (credit_key,) = con.execute(
        "select order_id || '-' || line_no from staging.stg_erp__order_lines "
        "where quantity > 0 and net_value > 0 order by all limit 1"
    ).fetchall()[0]
    con.execute(
        "update staging.stg_erp__order_lines set quantity = -quantity "
        "where order_id || '-' || line_no = ?",
        [credit_key],
    )
    con.close()

    outcome, failed = _failures(warehouse, "staging.stg_erp__order_lines")
    assert set(failed) == {"order_line_order_known", "order_line_quantity_sign_matches_credit"}
    assert not outcome.blocking_failures  # source-data quality: publish and queue
    assert [r.record_key for r in failed["order_line_order_known"].rows] == ["NO-SUCH-ORDER-10"]
    assert [r.record_key for r in failed["order_line_quantity_sign_matches_credit"].rows] == [
        credit_key
    ]

    outcome, failed = _failures(warehouse, "staging.stg_erp__sales_orders")
    assert set(failed) == {"sales_order_currency_known", "sales_order_dates_plausible"}
    currency = failed["sales_order_currency_known"]
    assert currency.severity == "warn"
    assert [(r.record_key, r.observed_value) for r in currency.rows] == [(order_id, "XQZ")]


def test_ranks_that_are_not_a_permutation_are_found(warehouse):
    con = duckdb.connect(str(warehouse))
    (key,) = con.execute(
        "select opportunity_id || '/' || coalesce(rater_key, '-') "
        "from staging.stg_crm__value_driver_ratings where price_rank is not null "
        "order by all limit 1"
    ).fetchall()[0]
    con.execute(
        "update staging.stg_crm__value_driver_ratings set price_rank = 9 "
        "where opportunity_id || '/' || coalesce(rater_key, '-') = ?",
        [key],
    )
    con.close()
    _, failed = _failures(warehouse, "staging.stg_crm__value_driver_ratings")
    assert [r.record_key for r in failed["rating_ranks_are_a_permutation"].rows] == [key]


def test_kpi_that_does_not_reconcile_blocks_and_becomes_findings(warehouse):
    con = duckdb.connect(str(warehouse))
    customer_id, year = con.execute(
        "select customer_id, year from marts.kpi_revenue_by_customer_year order by all limit 1"
    ).fetchall()[0]
    con.execute(
        "update marts.kpi_revenue_by_customer_year set revenue_eur = revenue_eur + 250 "
        "where customer_id = ? and year = ?",
        [customer_id, year],
    )
    con.close()
    outcome, failed = _failures(warehouse, "marts.kpi_revenue_by_customer_year")
    broken = failed["revenue_reconciles_facts_to_kpi"]
    assert broken.severity == "error"
    (row,) = broken.rows
    assert row.record_key == f"{customer_id}/{year}"
    assert row.revenue_eur_affected == pytest.approx(250)
    assert row.customers_affected == 1

    con = duckdb.connect(str(warehouse))
    table = record_findings(con, outcome)
    findings = con.execute(
        f"select kind, severity, record_key, rule, revenue_eur_affected from {table}"
    ).fetchall()
    con.close()
    assert findings == [
        ("failed_expectation", "error", row.record_key, "revenue_reconciles_facts_to_kpi", 250.0)
    ]


def test_an_expectation_that_cannot_run_fails_the_gate(warehouse):
    con = duckdb.connect(str(warehouse))
    con.execute("drop view intermediate.int_fx_rates_filled_monthly")
    con.close()
    _, failed = _failures(warehouse, "staging.stg_erp__sales_orders")
    assert failed["sales_order_currency_known"].error
