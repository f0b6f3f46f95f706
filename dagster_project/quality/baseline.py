"""Tables the gate builds in the warehouse before validating, for suites that compare this run
with something outside the warehouse (a suite names them in `meta.segments.prepare`).

previous_publication_shares: the share of customers per value of the configured
customer_segments columns in the previous publication (<home>/published/analytics.duckdb),
so that a distribution expectation can compare this run's shares with it in SQL. GX validates
on a read-only connection to the warehouse and cannot attach another file, hence the snapshot.
Without a previous publication (first run) or without the table in it the snapshot is empty:
there is nothing to compare with, and the expectation passes.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from dagster_project.settings import DistributionSettings

PREVIOUS_SHARES_TABLE = "quality.previous_publication_shares"
PUBLISHED_SEGMENTS_TABLE = "customer_segments"
_ALIAS = "previous_publication"


def _published_columns(con: duckdb.DuckDBPyConnection) -> set[str]:
    rows = con.execute(
        "select column_name from information_schema.columns "
        "where table_catalog = ? and table_name = ?",
        [_ALIAS, PUBLISHED_SEGMENTS_TABLE],
    ).fetchall()
    return {r[0] for r in rows}


def snapshot_previous_shares(
    con: duckdb.DuckDBPyConnection, published_db: Path | None, distribution: DistributionSettings
) -> int:
    """(Re)build quality.previous_publication_shares; returns the number of rows written."""
    con.execute("create schema if not exists quality")
    con.execute(
        f"""create or replace table {PREVIOUS_SHARES_TABLE} (
            dimension varchar, value varchar, customers bigint, population bigint,
            share double, published_run_id varchar)"""
    )
    if published_db is None or not Path(published_db).exists():
        return 0
    quoted = str(published_db).replace("'", "''")
    con.execute(f"attach '{quoted}' as {_ALIAS} (read_only)")
    try:
        columns = [c for c in distribution.columns if c in _published_columns(con)]
        if not columns:
            return 0
        run_id = con.execute(
            f"select max_by(run_id, published_at) from {_ALIAS}.publish_log"
        ).fetchall()[0][0]
        for column in columns:  # validated identifiers (settings.Identifier)
            con.execute(
                f"""insert into {PREVIOUS_SHARES_TABLE}
                select ?, cast({column} as varchar), count(*),
                       sum(count(*)) over (), count(*) / sum(count(*)) over (), ?
                from {_ALIAS}.{PUBLISHED_SEGMENTS_TABLE} group by {column}""",
                [column, run_id],
            )
    finally:
        con.execute(f"detach {_ALIAS}")
    return con.execute(f"select count(*) from {PREVIOUS_SHARES_TABLE}").fetchall()[0][0]


def prepare(
    con: duckdb.DuckDBPyConnection,
    names: set[str],
    *,
    published_db: Path | None,
    distribution: DistributionSettings,
) -> None:
    """Build the named tables (suites.PREPARATIONS) before validation."""
    if "previous_publication_shares" in names:
        snapshot_previous_shares(con, published_db, distribution)
