"""segments.* tables are written in the background while the next ones are computed, and
together: a failed run leaves the previous tables as they were."""

import duckdb
import pandas as pd
import pytest

from dagster_project.segmentation.assign import TableWriter


def _tables(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    names = con.execute(
        "select table_name from duckdb_tables() where schema_name = 'segments' order by 1"
    ).fetchall()
    return {n: con.execute(f"select count(*) from segments.{n}").fetchall()[0][0] for (n,) in names}


def test_tables_written_in_the_background_are_committed_together():
    con = duckdb.connect()
    with TableWriter(con) as writer:
        writer.write(
            "customer_value", pd.DataFrame({"customer_id": ["C1", "C2"], "x": [1.5, None]})
        )
        # the warehouse stays readable on the run's own connection meanwhile
        assert con.execute("select 1").fetchall() == [(1,)]
        writer.write("customer_segments", pd.DataFrame({"customer_id": ["C1"], "reasons": ["{}"]}))
    assert writer.counts == {"customer_value": 2, "customer_segments": 1}
    assert _tables(con) == {"customer_segments": 1, "customer_value": 2}
    assert con.execute("select * from segments.customer_value").fetchall() == [
        ("C1", 1.5),
        ("C2", None),
    ]


def test_a_later_run_replaces_the_tables():
    con = duckdb.connect()
    for customers in (["C1", "C2"], ["C3"]):
        with TableWriter(con) as writer:
            writer.write("customer_value", pd.DataFrame({"customer_id": customers}))
    assert con.execute("select * from segments.customer_value").fetchall() == [("C3",)]
    assert _tables(con) == {"customer_value": 1}


def test_a_failed_run_leaves_the_previous_tables():
    con = duckdb.connect()
    with TableWriter(con) as writer:
        writer.write("customer_value", pd.DataFrame({"customer_id": ["C1"]}))
    with pytest.raises(RuntimeError, match="assignment failed"), TableWriter(con) as writer:
        writer.write("customer_value", pd.DataFrame({"customer_id": ["C1", "C2", "C3"]}))
        writer.write("customer_segments", pd.DataFrame({"customer_id": ["C1"]}))
        raise RuntimeError("assignment failed")
    assert _tables(con) == {"customer_value": 1}
