"""The GX-on-DuckDB shim: needed (without it a passing expectation fails), working (with it
passes pass and failures fail, with the offending keys), pushed down as SQL, and the warehouse
file released afterwards."""

from __future__ import annotations

import duckdb
import pytest

from dagster_project.quality.gx_duckdb import warehouse_validation_context


@pytest.fixture()
def warehouse(tmp_path):
    path = tmp_path / "warehouse.duckdb"
    con = duckdb.connect(str(path))
    con.execute("create schema staging")
    con.execute(
        "create table staging.orders as "
        "select 'O' || lpad(cast(range as varchar), 4, '0') as order_id, range % 3 as qty "
        "from range(50)"
    )
    con.execute("insert into staging.orders values ('O0007', 1)")  # one duplicate key
    con.close()
    return path


def _validate(path, apply_shim: bool):
    import great_expectations as gx
    import great_expectations.expectations as gxe

    with warehouse_validation_context(path, apply_shim=apply_shim) as v:
        asset = v.datasource.add_query_asset(
            "orders", query="select *, order_id as record_key from staging.orders"
        )
        batch = asset.add_batch_definition_whole_table("all")
        suite = v.context.suites.add(gx.ExpectationSuite("orders"))
        suite.add_expectation(gxe.ExpectColumnValuesToNotBeNull(column="order_id"))
        suite.add_expectation(gxe.ExpectColumnValuesToBeUnique(column="order_id"))
        suite.add_expectation(
            gxe.UnexpectedRowsExpectation(
                unexpected_rows_query="select record_key from {batch} where qty > 2"
            )
        )
        definition = v.context.validation_definitions.add(
            gx.ValidationDefinition(name="orders", data=batch, suite=suite)
        )
        result = definition.run(
            result_format={
                "result_format": "COMPLETE",
                "unexpected_index_column_names": ["order_id"],
            }
        )
        dialects = {e.dialect.name for e in v.engines()}
    return {r.expectation_config.type: r for r in result.results}, dialects


def test_without_the_shim_gx_fails_even_a_passing_expectation(warehouse):
    """If this test fails, GX or duckdb_engine fixed the bug: drop the shim (gx_duckdb.py)."""
    results, _ = _validate(warehouse, apply_shim=False)
    not_null = results["expect_column_values_to_not_be_null"]
    assert not not_null.success
    assert not_null.exception_info, "the failure is a swallowed exception, not a data problem"


def test_with_the_shim_passes_pass_and_failures_fail_with_their_keys(warehouse):
    results, dialects = _validate(warehouse, apply_shim=True)
    assert dialects == {"duckdb"}

    not_null = results["expect_column_values_to_not_be_null"]
    assert not_null.success, not_null.exception_info
    assert not_null.result["unexpected_count"] == 0

    unique = results["expect_column_values_to_be_unique"]
    assert not unique.success
    assert not unique.exception_info.get("raised_exception")
    assert {row["order_id"] for row in unique.result["unexpected_index_list"]} == {"O0007"}
    # Pushed down: GX reports the SQL it ran against DuckDB, not a pandas batch.
    assert "GROUP BY order_id" in unique.result["unexpected_index_query"]

    rows = results["unexpected_rows_expectation"]
    assert rows.success  # qty is 0..2
    assert rows.result["observed_value"] == 0


def test_engines_are_disposed_so_the_warehouse_can_be_written_again(warehouse):
    _validate(warehouse, apply_shim=True)
    # A read-only handle still open in this process would make this read-write open fail.
    con = duckdb.connect(str(warehouse))
    con.execute("insert into staging.orders values ('O9999', 0)")
    con.close()


def _validate_rows_rule(path, query: str, reuse: bool):
    """One UnexpectedRowsExpectation, COMPLETE results; returns (result, reuse counters)."""
    import great_expectations as gx
    import great_expectations.expectations as gxe

    with warehouse_validation_context(path, reuse_query_results=reuse) as v:
        asset = v.datasource.add_query_asset(
            "orders", query="select *, order_id as record_key from staging.orders"
        )
        batch = asset.add_batch_definition_whole_table("all")
        suite = v.context.suites.add(gx.ExpectationSuite("orders"))
        suite.add_expectation(gxe.UnexpectedRowsExpectation(unexpected_rows_query=query))
        definition = v.context.validation_definitions.add(
            gx.ValidationDefinition(name="orders", data=batch, suite=suite)
        )
        (result,) = definition.run(result_format={"result_format": "COMPLETE"}).results
        return result, v.reuse


@pytest.mark.parametrize(
    ("query", "unexpected"),
    [
        ("select record_key from {batch} where qty > 2", 0),  # passes
        ("select record_key from {batch} where qty = 1", 18),  # 18 rows: fewer than GX fetches
        # More unexpected rows than GX fetches (200): the COUNT(*) query still runs.
        ("with b as (select * from {batch}) select b.record_key from b, range(10)", 510),
    ],
)
def test_unexpected_rows_are_counted_from_one_execution_with_the_same_result(
    warehouse, query, unexpected
):
    """GX runs an unexpected_rows_query twice (first rows, COUNT(*)): the shim answers the
    count from the fetched rows when they are all of them, with the same result as GX."""
    plain, _ = _validate_rows_rule(warehouse, query, reuse=False)
    reused, reuse = _validate_rows_rule(warehouse, query, reuse=True)

    assert plain.result["observed_value"] == reused.result["observed_value"] == unexpected
    assert plain.success == reused.success == (unexpected == 0)
    assert reused.result["details"] == plain.result["details"]
    assert len(reused.result["details"]["unexpected_rows"]) == min(unexpected, 200)
    # One execution of the rule's query; the COUNT(*) only when 200 rows did not say it all.
    assert reuse.counts_answered == (1 if unexpected < 200 else 0)
    assert reuse.executed == (1 if unexpected < 200 else 2)


def test_a_rule_that_cannot_run_still_fails_with_reuse(warehouse):
    result, _ = _validate_rows_rule(
        warehouse, "select record_key from {batch} where no_such_column > 2", reuse=True
    )
    assert not result.success
    assert result.exception_info


@pytest.mark.parametrize("count_first", [True, False])
def test_rows_and_count_are_answered_from_one_execution_in_either_order(warehouse, count_first):
    """GX resolves the two metrics in no fixed order: either one runs the query."""
    import sqlalchemy as sa

    from dagster_project.quality.gx_duckdb import make_engine_gx_safe, reuse_unexpected_rows

    engine = make_engine_gx_safe(sa.create_engine(f"duckdb:///{warehouse}"))

    class Engine:  # the one method of a GX execution engine the shim wraps
        def __init__(self):
            self.ran = []

        def execute_query(self, query):
            self.ran.append(query.text)
            with engine.connect() as connection:
                return connection.execute(query)

    fake = Engine()
    reuse = reuse_unexpected_rows(fake, batch_size=5)
    rows_sql = "select order_id from staging.orders where qty = 2 and order_id < 'O0010'"
    count_sql = (
        f"SELECT COUNT(*) as unexpected_row_count FROM ({rows_sql}) AS substituted_batch_subquery"
    )
    if count_first:
        count = fake.execute_query(sa.text(count_sql)).fetchone()[0]
        rows = fake.execute_query(sa.text(rows_sql)).fetchmany(5)
    else:
        rows = fake.execute_query(sa.text(rows_sql)).fetchmany(5)
        count = fake.execute_query(sa.text(count_sql)).fetchone()[0]
    engine.dispose()
    assert [r[0] for r in rows] == ["O0002", "O0005", "O0008"] and count == 3
    assert fake.ran == [rows_sql]  # the COUNT(*) never ran
    assert reuse.counts_answered == 1
