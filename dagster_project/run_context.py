"""Facts decided once per run (the as-of date) and read by every later stage of that run."""

from __future__ import annotations

import datetime as dt

import duckdb

# `segments run` is two Dagster runs: the unpartitioned graph, then the history partition of its
# as-of (segment_history_job); the second carries this tag with the first one's run id.
AFTER_RUN_TAG = "segments/after_run"


def record_as_of(con: duckdb.DuckDBPyConnection, run_id: str, as_of: dt.date | None) -> None:
    con.execute("create schema if not exists meta")
    con.execute(
        "create table if not exists meta.run_context (run_id varchar primary key, as_of date,"
        " recorded_at timestamptz default current_timestamp)"
    )
    con.execute(
        "insert or replace into meta.run_context (run_id, as_of) values (?, ?)", [run_id, as_of]
    )


def as_of_for_run(con: duckdb.DuckDBPyConnection, run_id: str) -> dt.date | None:
    """The run's as-of; for a partial re-run (e.g. only publish), the latest recorded one."""
    try:
        row = con.execute(
            "select as_of from meta.run_context order by (run_id = ?) desc, recorded_at desc limit 1",
            [run_id],
        ).fetchall()
    except duckdb.CatalogException:
        return None
    return row[0][0] if row else None
