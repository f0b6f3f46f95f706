"""Quality beside speed: matching quality and segmentation accuracy against the generator's
truth, so that a faster pipeline is never bought with worse answers.

Matching: pairwise precision/recall/F1 from the identity module (identity/evaluation.py).
Segments: share of customers whose segment, sub-segment, service tier, size tier or value profile
equals the true one of the company most of their source records belong to; for whatever the
segmentation tables assign so far.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from dagster_project.bench.pipeline_stages import connect_read_only
from dagster_project.identity.evaluation import pairwise_scores


def matching_quality(warehouse: Path, truth: Path) -> dict | None:
    """Pairwise precision/recall/F1 of the warehouse's identity map (identity/evaluation.py)."""
    con = connect_read_only(warehouse)
    try:
        if not _find_table(con, "customer_source_map"):
            return None
        scores = pairwise_scores(con, truth)
    finally:
        con.close()
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in scores.items()}


def _find_table(con: duckdb.DuckDBPyConnection, name: str) -> str | None:
    rows = con.execute(
        "select table_schema from information_schema.tables where table_name = ?"
        " order by table_schema = 'marts' desc, table_schema = 'segmentation' desc",
        [name],
    ).fetchall()
    return f'"{rows[0][0]}"."{name}"' if rows else None


# Truth columns (truth/companies.csv) a segmentation table may assign, by the same name. The
# value profile is scored per project (truth/opportunities.csv), the grain it is assigned at.
TRUTH_SEGMENT_COLUMNS = ("segment", "sub_segment", "service_tier", "size_tier")
SEGMENTATION_SCHEMAS = ("segments", "segmentation")
# The table of record first; outputs derived from it (history, CRM write-back) are not scored.
PREFERRED_TABLE = "customer_segments"
DERIVED_TABLES = ("customer_segment_history", "crm_writeback")


def segmentation_accuracy(warehouse: Path, truth: Path) -> dict | None:
    """Accuracy of every truth column a segmentation table assigns (customer_segments, or the
    tables of the segments schema); None when the pipeline has no segmentation (yet)."""
    con = connect_read_only(warehouse)
    try:
        source_map = _find_table(con, "customer_source_map")
        tables = con.execute(
            "select table_schema, table_name from information_schema.tables"
            " where (table_schema in (select unnest(?)) or table_name = ?)"
            " and table_name not in (select unnest(?))"
            " order by table_name = ? desc, table_name",
            [list(SEGMENTATION_SCHEMAS), PREFERRED_TABLE, list(DERIVED_TABLES), PREFERRED_TABLE],
        ).fetchall()
        if not source_map or not tables:
            return None
        truth_csv = str(truth).replace("'", "''")
        con.execute(f"""
            create temp table company_of as
            with votes as (
                select m.customer_id, r.company_id, count(*) as n
                from {source_map} as m
                join read_csv('{truth_csv}/source_records.csv', all_varchar = true) as r
                    using (source_system, source_id)
                group by all
            )
            select customer_id, company_id from votes
            qualify row_number() over (partition by customer_id order by n desc, company_id) = 1
        """)
        con.execute(
            f"create temp table companies as select * from"
            f" read_csv('{truth_csv}/companies.csv', all_varchar = true)"
        )
        scores: dict[str, dict] = {}
        for schema, name in tables:
            table = f'"{schema}"."{name}"'
            columns = {
                c for (c,) in con.execute(f"select column_name from (describe {table})").fetchall()
            }
            if "customer_id" not in columns:
                continue
            for column in (c for c in TRUTH_SEGMENT_COLUMNS if c in columns):
                if column in scores:
                    continue
                accuracy, customers = con.execute(f"""
                    select avg(case when s.{column} = c.{column} then 1.0 else 0.0 end), count(*)
                    from {table} as s
                    join company_of using (customer_id)
                    join companies as c using (company_id)
                    where c.{column} is not null
                """).fetchall()[0]
                if customers:
                    scores[column] = {
                        "table": f"{schema}.{name}",
                        "accuracy": round(float(accuracy), 4),
                        "customers": int(customers),
                    }
        projects = _find_table(con, "project_value_profiles")
        if projects:
            accuracy, scored = con.execute(f"""
                select avg(case when p.value_profile = t.value_profile then 1.0 else 0.0 end),
                       count(*)
                from {projects} as p
                join read_csv('{truth_csv}/opportunities.csv', all_varchar = true) as t
                    using (opportunity_id)
                where t.value_profile is not null
            """).fetchall()[0]
            if scored:
                scores["value_profile"] = {
                    "table": projects.replace('"', ""),
                    "accuracy": round(float(accuracy), 4),
                    "projects": int(scored),
                }
    finally:
        con.close()
    return scores or None
