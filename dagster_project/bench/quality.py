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


def matching_quality(warehouse: Path, truth: Path) -> dict | None:
    """identity.evaluation.pairwise_scores where it exists, else the same figures in SQL."""
    con = connect_read_only(warehouse)
    try:
        try:
            from dagster_project.identity.evaluation import pairwise_scores
        except ImportError:
            scores = _pairwise_scores_sql(con, truth)
        else:
            scores = pairwise_scores(con, truth)
    finally:
        con.close()
    if scores is None:
        return None
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in scores.items()}


def _pairwise_scores_sql(con: duckdb.DuckDBPyConnection, truth: Path) -> dict | None:
    """Pairs of source records in one predicted customer vs in one true company, counted from
    cluster sizes (n records make n(n-1)/2 pairs), never by a pairwise join."""
    source_map = _find_table(con, "customer_source_map")
    if not source_map:
        return None
    truth_csv = str(truth / "source_records.csv").replace("'", "''")
    predicted, true, correct, scored = con.execute(f"""
        with scored as (
            select m.customer_id, t.company_id
            from {source_map} as m
            join read_csv('{truth_csv}', all_varchar = true) as t
                using (source_system, source_id)
            where m.customer_id is not null and t.company_id is not null
        ),
        pairs as (
            select 'predicted' as kind, count(*) as n from scored group by customer_id
            union all
            select 'true', count(*) from scored group by company_id
            union all
            select 'correct', count(*) from scored group by customer_id, company_id
        )
        select
            sum(n * (n - 1) // 2) filter (where kind = 'predicted'),
            sum(n * (n - 1) // 2) filter (where kind = 'true'),
            sum(n * (n - 1) // 2) filter (where kind = 'correct'),
            (select count(*) from scored)
        from pairs
    """).fetchall()[0]
    precision = correct / predicted if predicted else 1.0
    recall = correct / true if true else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "true_pairs": int(true or 0),
        "predicted_pairs": int(predicted or 0),
        "correct_pairs": int(correct or 0),
        "records_scored": int(scored),
    }


def _find_table(con: duckdb.DuckDBPyConnection, name: str) -> str | None:
    rows = con.execute(
        "select table_schema from information_schema.tables where table_name = ?"
        " order by table_schema = 'marts' desc, table_schema = 'segmentation' desc",
        [name],
    ).fetchall()
    return f'"{rows[0][0]}"."{name}"' if rows else None


# Truth columns (truth/companies.csv) a segmentation table may assign, by the same name.
TRUTH_SEGMENT_COLUMNS = ("segment", "sub_segment", "service_tier", "size_tier", "value_profile")
SEGMENTATION_SCHEMAS = ("segments", "segmentation")


def segmentation_accuracy(warehouse: Path, truth: Path) -> dict | None:
    """Accuracy of every truth column a segmentation table assigns (customer_segments, or the
    tables of the segments schema); None when the pipeline has no segmentation (yet)."""
    con = connect_read_only(warehouse)
    try:
        source_map = _find_table(con, "customer_source_map")
        tables = con.execute(
            "select table_schema, table_name from information_schema.tables"
            " where table_schema in (select unnest(?)) or table_name = 'customer_segments'",
            [list(SEGMENTATION_SCHEMAS)],
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
    finally:
        con.close()
    return scores or None
