"""Build the steward queue from the findings each stage leaves in the warehouse, and write it out.

The queue has one schema for every stage (DESIGN.md "The steward queue"). A finding keeps its
`finding_id` across runs (a hash of what it is about, not of when it was seen), and its
`first_seen_run` and `status` are remembered in `steward.finding_history`. The queue is written
to <home>/steward/ on EVERY run, blocked or not, so stewards see why a run was blocked.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from dagster_project.settings import settings

QUEUE_COLUMNS = [
    "finding_id",
    "kind",
    "severity",
    "source_system",
    "entity",
    "source_file",
    "line",
    "record_key",
    "column_name",
    "rule",
    "observed_value",
    "customers_affected",
    "revenue_eur_affected",
    "first_seen_run",
    "last_seen_run",
    "status",
    "message",
]


# The columns a stage's findings table must have (steward.findings__<stage>), with their types.
FINDING_COLUMNS: dict[str, str] = {
    "kind": "varchar",
    "severity": "varchar",
    "source_system": "varchar",
    "entity": "varchar",
    "source_file": "varchar",
    "line": "bigint",
    "record_key": "varchar",
    "column_name": "varchar",
    "rule": "varchar",
    "observed_value": "varchar",
    "customers_affected": "bigint",
    "revenue_eur_affected": "double",
    "message": "varchar",
}


def create_findings_table(con: duckdb.DuckDBPyConnection, stage: str, select_sql: str) -> str:
    """Replace steward.findings__<stage> with the rows of `select_sql` (FINDING_COLUMNS, by name).

    Stages call this instead of writing the queue: the queue keeps ids, history and status.
    """
    table = f"steward.findings__{stage}"
    con.execute("create schema if not exists steward")
    casts = ", ".join(f"cast({c} as {t}) as {c}" for c, t in FINDING_COLUMNS.items())
    con.execute(f"create or replace table {table} as select {casts} from ({select_sql})")
    return table


def _existing_tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    rows = con.execute("select table_schema || '.' || table_name from information_schema.tables")
    return {r[0] for r in rows.fetchall()}


def _findings_sql(tables: set[str]) -> str:
    """Current findings of every stage, before run bookkeeping. Each stage adds a branch."""
    policy = settings()
    threshold = policy.ingest.max_rejected_share
    tolerated = policy.ingest.tolerated_rejected_rows
    branches: list[str] = []
    if {"raw.rejects", "raw.load_log"} <= tables:
        # A rejected row is a warning unless its entity's rejected share is above the threshold.
        branches.append(f"""
            with shares as (
                select source_system, entity,
                       sum(rows_rejected)::double / nullif(sum(rows_read), 0) as share,
                       sum(rows_rejected) as n_rejected
                from raw.load_log where status = 'loaded' group by all
            )
            select 'rejected_row' as kind,
                   case when s.share > {threshold} and s.n_rejected > {tolerated} then '{policy.severity_of("rejected_rows_share")}'
                        else '{policy.severity_of("rejected_row")}' end as severity,
                   r.source_system, r.entity, r.source_file, r.line, r.record_key,
                   r.column_name, r.rule, r.observed_value,
                   cast(null as bigint) as customers_affected,
                   cast(null as double) as revenue_eur_affected,
                   r.reason as message
            from raw.rejects r left join shares s using (source_system, entity)""")
    if "raw.ingest_findings" in tables:
        branches.append("""
            select kind, severity, source_system, entity, source_file,
                   cast(null as bigint) as line, cast(null as varchar) as record_key,
                   column_name, rule, cast(null as varchar) as observed_value,
                   cast(null as bigint) as customers_affected,
                   cast(null as double) as revenue_eur_affected, message
            from raw.ingest_findings
            -- file-level problems are re-checked every run; what a loaded file showed
            -- (schema drift) stays true as long as its rows are in raw
            where run_id = (select max_by(run_id, loaded_at) from raw.load_log)
               or kind not in ('rejected_file', 'file_name_conflict', 'missing_entity')""")
    # Every later stage (identity, quality gates, segmentation, ...) writes its findings to a
    # table steward.findings__<stage> with FINDING_COLUMNS: the queue picks them all up, so a
    # new stage adds findings without touching this module.
    for table in sorted(t for t in tables if t.startswith("steward.findings__")):
        branches.append(f"select {', '.join(FINDING_COLUMNS)} from {table}")
    if not branches:
        empty = ", ".join(f"cast(null as {t}) as {c}" for c, t in FINDING_COLUMNS.items())
        return f"select {empty} where false"
    return " union all by name ".join(f"({b})" for b in branches)


def build_steward_queue(con: duckdb.DuckDBPyConnection, run_id: str) -> int:
    """(Re)build steward.steward_queue for this run; returns the number of open findings."""
    con.execute("create schema if not exists steward")
    con.execute(
        """create table if not exists steward.finding_history (
            finding_id varchar primary key, first_seen_run varchar, last_seen_run varchar,
            status varchar default 'open')"""
    )
    findings = _findings_sql(_existing_tables(con))
    con.execute(
        f"""create or replace temp table current_findings as
        select distinct
            md5(concat_ws('|', kind, source_system, entity, source_file, cast(line as varchar),
                          record_key, column_name, rule)) as finding_id, *
        from ({findings})"""
    )
    con.execute(
        """insert into steward.finding_history (finding_id, first_seen_run, last_seen_run)
        select distinct finding_id, ?, ? from current_findings
        on conflict (finding_id) do update set last_seen_run = excluded.last_seen_run""",
        [run_id, run_id],
    )
    # Findings not seen any more were fixed at the source.
    con.execute(
        """update steward.finding_history set status = 'resolved'
        where status = 'open' and finding_id not in (select finding_id from current_findings)"""
    )
    con.execute(
        f"""create or replace table steward.steward_queue as
        select {", ".join("f." + c if c not in ("first_seen_run", "last_seen_run", "status") else "h." + c for c in QUEUE_COLUMNS)}
        from current_findings f join steward.finding_history h using (finding_id)
        order by severity, kind, source_file, line, column_name"""
    )
    return con.execute(
        "select count(*) from steward.steward_queue where status = 'open'"
    ).fetchall()[0][0]


def write_steward_files(con: duckdb.DuckDBPyConnection, steward_dir: Path) -> dict[str, Path]:
    """CSV for people (opens in a spreadsheet), Parquet for tools; replaced atomically."""
    steward_dir.mkdir(parents=True, exist_ok=True)
    out = {}
    for fmt, options in (("csv", "format csv, header true"), ("parquet", "format parquet")):
        final = steward_dir / f"steward_queue.{fmt}"
        tmp = steward_dir / f".steward_queue.{fmt}.tmp"
        con.execute(f"copy steward.steward_queue to '{tmp}' ({options})")
        tmp.replace(final)
        out[fmt] = final
    return out


def summarize_queue(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str, int]]:
    """(severity, kind, count) of open findings, errors first: for the CLI's closing lines."""
    return con.execute(
        """select severity, kind, count(*) from steward.steward_queue where status = 'open'
        group by all order by severity, count(*) desc"""
    ).fetchall()


def refresh_steward_queue(con: duckdb.DuckDBPyConnection, run_id: str, steward_dir: Path) -> int:
    n_open = build_steward_queue(con, run_id)
    write_steward_files(con, steward_dir)
    return n_open
