"""The raw layer's tables: one per contract entity, plus rejects, load_log and ingest_findings.

Shapes are fixed by the shared interface (notes/common.md, RAW LAYER); dbt sources read them.
"""

from __future__ import annotations

import re

import duckdb

from dagster_project.ingest.contract import RAW_SQL_TYPE, Contract, EntitySpec

RAW_SCHEMA = "raw"

METADATA_COLUMNS: dict[str, str] = {
    "_source_file": "VARCHAR",
    "_line": "BIGINT",
    "_extract_ts": "TIMESTAMP",
    "_loaded_at": "TIMESTAMPTZ",
    "_run_id": "VARCHAR",
}

REJECTS_DDL = f"""
CREATE TABLE IF NOT EXISTS {RAW_SCHEMA}.rejects (
    run_id VARCHAR, source_system VARCHAR, entity VARCHAR, source_file VARCHAR,
    line BIGINT, column_name VARCHAR, rule VARCHAR, reason VARCHAR,
    observed_value VARCHAR, record_key VARCHAR, loaded_at TIMESTAMPTZ
)"""

LOAD_LOG_DDL = f"""
CREATE TABLE IF NOT EXISTS {RAW_SCHEMA}.load_log (
    run_id VARCHAR, source_system VARCHAR, entity VARCHAR, source_file VARCHAR,
    file_hash VARCHAR, extract_ts TIMESTAMP, file_format VARCHAR,
    rows_read BIGINT, rows_loaded BIGINT, rows_rejected BIGINT,
    status VARCHAR, message VARCHAR, loaded_at TIMESTAMPTZ
)"""

FINDINGS_DDL = f"""
CREATE TABLE IF NOT EXISTS {RAW_SCHEMA}.ingest_findings (
    kind VARCHAR, severity VARCHAR, source_system VARCHAR, entity VARCHAR,
    source_file VARCHAR, column_name VARCHAR, rule VARCHAR, message VARCHAR, run_id VARCHAR
)"""


_PLAIN_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]*")


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def qualified(table: str) -> str:
    """raw.<table>, quoted only when the name needs it (readable in messages and metadata)."""
    name = table if _PLAIN_IDENTIFIER.fullmatch(table) else quote_ident(table)
    return f"{RAW_SCHEMA}.{name}"


def ensure_bookkeeping_tables(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {RAW_SCHEMA}")
    for ddl in (REJECTS_DDL, LOAD_LOG_DDL, FINDINGS_DDL):
        con.execute(ddl)


def ensure_entity_table(con: duckdb.DuckDBPyConnection, spec: EntitySpec) -> None:
    """Create raw.<system>__<entity> with the contract's typed columns and the metadata columns."""
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {RAW_SCHEMA}")
    columns = [f"{quote_ident(c)} {RAW_SQL_TYPE[s.type]}" for c, s in spec.columns.items()]
    columns += [f"{quote_ident(c)} {t}" for c, t in METADATA_COLUMNS.items()]
    con.execute(f"CREATE TABLE IF NOT EXISTS {qualified(spec.raw_table)} ({', '.join(columns)})")


def ensure_raw_layer(con: duckdb.DuckDBPyConnection, contract: Contract) -> None:
    ensure_bookkeeping_tables(con)
    for spec in contract.entities.values():
        ensure_entity_table(con, spec)


def existing_columns(con: duckdb.DuckDBPyConnection, table: str) -> dict[str, str]:
    """Column name (lower case) -> actual name of a raw table."""
    rows = con.execute(
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
        [RAW_SCHEMA, table],
    ).fetchall()
    return {name.lower(): name for (name,) in rows}


def add_drift_columns(con: duckdb.DuckDBPyConnection, table: str, names: list[str]) -> None:
    """Append unknown source columns as VARCHAR (schema drift is kept, never dropped)."""
    present = existing_columns(con, table)
    for name in names:
        if name.lower() not in present:
            con.execute(f"ALTER TABLE {qualified(table)} ADD COLUMN {quote_ident(name)} VARCHAR")
            present[name.lower()] = name
