"""The as-of date of a run: given, or the newest event date in the landed data (never today)."""

from __future__ import annotations

import datetime as dt

import duckdb

# Event columns that say how far the data reaches (DESIGN.md "As-of"). Dated master data
# (created_at of accounts) does not count: it is not an event.
EVENT_DATE_COLUMNS: list[tuple[str, str]] = [
    ("raw.erp__sales_orders", "order_date"),
    ("raw.erp__invoices", "invoice_date"),
    ("raw.erp__deliveries", "actual_ship_date"),
    ("raw.erp__deliveries", "delivered_date"),
    ("raw.crm__cases", "created_at"),
    ("raw.crm__surveys", "responded_at"),
]


def data_through(con: duckdb.DuckDBPyConnection) -> dt.date | None:
    """Newest event date not later than the newest extract (future-dated typos don't count)."""
    tables = {
        f"{s}.{t}"
        for s, t in con.execute(
            "select table_schema, table_name from information_schema.tables"
        ).fetchall()
    }
    parts = [
        f"select cast(max(cast({col} as date)) filter (where cast({col} as date)"
        f" <= cast(_extract_ts as date)) as date) as d from {table}"
        for table, col in EVENT_DATE_COLUMNS
        if table in tables
    ]
    if not parts:
        return None
    return con.execute(f"select max(d) from ({' union all '.join(parts)})").fetchall()[0][0]


def resolve_as_of(con: duckdb.DuckDBPyConnection, given: str | dt.date | None) -> dt.date | None:
    if given:
        return given if isinstance(given, dt.date) else dt.date.fromisoformat(str(given))
    return data_through(con)
