"""Checks that the raw layer accounts for every record the load log says was read.

For every load_log row: rows_read = rows_loaded + rows_rejected; and for loaded files, the raw
table holds exactly rows_loaded rows of that file and run, and raw.rejects names exactly
rows_rejected distinct lines of it. An empty answer means everything reconciles.
"""

from __future__ import annotations

import duckdb

from dagster_project.ingest.contract import Contract, load_contract
from dagster_project.ingest.raw_tables import qualified


def load_log_discrepancies(
    con: duckdb.DuckDBPyConnection, run_id: str | None = None, contract: Contract | None = None
) -> list[dict]:
    contract = contract or load_contract()
    existing = {
        name
        for (name,) in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'raw'"
        ).fetchall()
    }
    if "load_log" not in existing:
        return []
    raw_counts = (
        " UNION ALL ".join(
            f"SELECT {_literal(spec.system)} AS source_system, {_literal(spec.entity)} AS entity, "
            f"_source_file, _run_id, count(*) AS n FROM {qualified(spec.raw_table)} "
            "GROUP BY _source_file, _run_id"
            for spec in contract.entities.values()
            if spec.raw_table in existing
        )
        or "SELECT NULL AS source_system, NULL AS entity, NULL AS _source_file, NULL AS _run_id, 0 AS n"
    )
    sql = f"""
        WITH raw_rows AS ({raw_counts}),
        reject_lines AS (
            SELECT source_system, entity, source_file, run_id, count(DISTINCT line) AS n
            FROM raw.rejects GROUP BY ALL
        )
        SELECT l.run_id, l.source_system, l.entity, l.source_file, l.status,
               l.rows_read, l.rows_loaded, l.rows_rejected,
               coalesce(r.n, 0) AS raw_rows, coalesce(j.n, 0) AS reject_lines
        FROM raw.load_log l
        LEFT JOIN raw_rows r ON l.status = 'loaded' AND r.source_system = l.source_system
            AND r.entity = l.entity AND r._source_file = l.source_file AND r._run_id = l.run_id
        LEFT JOIN reject_lines j ON l.status = 'loaded' AND j.source_system = l.source_system
            AND j.entity = l.entity AND j.source_file = l.source_file AND j.run_id = l.run_id
        WHERE (? IS NULL OR l.run_id = ?)
          AND (l.rows_read IS DISTINCT FROM l.rows_loaded + l.rows_rejected
               OR (l.status = 'loaded' AND (coalesce(r.n, 0) <> l.rows_loaded
                                            OR coalesce(j.n, 0) <> l.rows_rejected)))
        ORDER BY l.source_file
    """
    cursor = con.execute(sql, [run_id, run_id])
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
