"""Score assignments against the demo generator's truth (<home>/truth; never read by the pipeline).

Customers map to true companies through the published identity map and truth/source_records.csv:
a customer is the company most of its source records belong to (ties: the smallest company id).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd


@dataclass(frozen=True)
class Score:
    """Accuracy over the rows with both a truth and an assignment, and the confusion matrix."""

    accuracy: float
    scored: int
    confusion: pd.DataFrame  # rows = truth, columns = assigned

    def as_text(self) -> str:
        return f"accuracy {self.accuracy:.3f} on {self.scored} rows\n{self.confusion.to_string()}"


def score(truth: pd.Series, assigned: pd.Series) -> Score:
    both = pd.DataFrame({"truth": truth, "assigned": assigned}).dropna()
    confusion = pd.crosstab(both["truth"], both["assigned"])
    accuracy = float((both["truth"] == both["assigned"]).mean()) if len(both) else float("nan")
    return Score(accuracy=accuracy, scored=len(both), confusion=confusion)


def customer_companies(con: duckdb.DuckDBPyConnection, truth_dir: Path) -> pd.DataFrame:
    """customer_id -> company_id (the majority company of the customer's source records)."""
    records = pd.read_csv(truth_dir / "source_records.csv", dtype=str)
    con.register("truth_source_records", records)
    try:
        return con.execute(
            """
            with votes as (
                select map.customer_id, truth.company_id, count(*) as records
                from staging.stg_identity__customer_source_map as map
                inner join truth_source_records as truth
                    on truth.source_system = map.source_system and truth.source_id = map.source_id
                where map.customer_id is not null
                group by all
            )
            select customer_id, company_id
            from votes
            qualify row_number() over (
                partition by customer_id order by records desc, company_id) = 1
            """
        ).df()
    finally:
        con.unregister("truth_source_records")


def truth_companies(truth_dir: Path) -> pd.DataFrame:
    companies = pd.read_csv(truth_dir / "companies.csv", dtype={"company_id": str})
    for flag in ("service_draining", "ignores_payment_terms", "buys"):
        companies[flag] = companies[flag].astype(str).str.lower().eq("true")
    return companies


def truth_opportunities(truth_dir: Path) -> pd.DataFrame:
    return pd.read_csv(truth_dir / "opportunities.csv", dtype=str)


def industry_scores(con: duckdb.DuckDBPyConnection, truth_dir: Path,
                    assigned: pd.DataFrame | None = None) -> dict[str, Score]:
    """Segment and sub-segment accuracy of the industry assignment (`assigned`, default the
    warehouse's segments.customer_industry_segments) over every customer that maps to a true
    company: an Unassigned customer counts as wrong, so coverage is part of the figure."""
    if assigned is None:
        assigned = con.execute(
            "select customer_id, segment, sub_segment from segments.customer_industry_segments"
        ).df()
    truth = truth_companies(truth_dir)[["company_id", "segment", "sub_segment"]]
    scored = assigned[["customer_id", "segment", "sub_segment"]].merge(
        customer_companies(con, truth_dir), on="customer_id").merge(
        truth, on="company_id", suffixes=("", "_truth"))
    return {column: score(scored[f"{column}_truth"], scored[column].fillna("(none)"))
            for column in ("segment", "sub_segment")}
