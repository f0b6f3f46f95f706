"""Matching quality against known truth: pairwise precision, recall and F1.

A pair is two source records; it is predicted when both records got the same customer_id and
true when the truth gives them the same company. Pairwise scores weigh a wrong merge of two big
clusters heavily, which is what hurts KPIs. Used by tests and by `segments bench`.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd


def _pairs(sizes: pd.Series) -> int:
    return int((sizes * (sizes - 1) // 2).sum())


def _load_map(con_or_df: duckdb.DuckDBPyConnection | pd.DataFrame) -> pd.DataFrame:
    if isinstance(con_or_df, pd.DataFrame):
        return con_or_df
    for table in ("identity.customer_source_map", "marts.customer_source_map"):
        schema, name = table.split(".")
        found = con_or_df.execute(
            "select count(*) from information_schema.tables "
            "where table_schema = ? and table_name = ?",
            [schema, name],
        ).fetchall()[0][0]
        if found:
            return con_or_df.execute(
                f"select source_system, source_id, customer_id from {table}"
            ).df()
    raise LookupError("no customer_source_map in this warehouse")


def pairwise_scores(
    con_or_df: duckdb.DuckDBPyConnection | pd.DataFrame, truth_dir: Path | str
) -> dict[str, float | int]:
    """Pairwise precision/recall/F1 of a source map (source_system, source_id, customer_id)
    against <truth_dir>/source_records.csv (source_system, source_id, company_id).

    Only records known to both are scored; how many were left out is reported.
    """
    predicted = _load_map(con_or_df)[["source_system", "source_id", "customer_id"]]
    truth = pd.read_csv(Path(truth_dir) / "source_records.csv", dtype=str)[
        ["source_system", "source_id", "company_id"]
    ]
    both = predicted.merge(truth, on=["source_system", "source_id"], how="inner")
    both = both.dropna(subset=["customer_id", "company_id"])
    predicted_pairs = _pairs(both.groupby("customer_id").size())
    true_pairs = _pairs(both.groupby("company_id").size())
    correct = _pairs(both.groupby(["customer_id", "company_id"]).size())
    precision = correct / predicted_pairs if predicted_pairs else 1.0
    recall = correct / true_pairs if true_pairs else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "true_pairs": true_pairs,
        "predicted_pairs": predicted_pairs,
        "correct_pairs": correct,
        "records_scored": len(both),
        "records_not_in_truth": len(predicted) - len(both),
        "true_companies": int(both["company_id"].nunique()),
        "predicted_customers": int(both["customer_id"].nunique()),
    }
