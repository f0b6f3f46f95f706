"""What the pipeline, the floor and the pandas baseline share in the bench: the landing
folder's entities, the KPI vocabulary (from dbt_project.yml, one truth with the pipeline), and
the shape of a baseline's result, so that the three can be compared figure by figure."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path

import yaml

from dagster_project.paths import DBT_PROJECT_DIR

# The parts every baseline times, in order; the pipeline's stages map onto them (runner.py).
BASELINE_PARTS = ("ingest", "facts", "features", "kpis")


def landing_entities(landing: Path) -> dict[str, dict[str, list[Path]]]:
    """`system/entity` -> {"csv": [...], "parquet": [...]} for every non-empty entity folder."""
    found: dict[str, dict[str, list[Path]]] = {}
    for system_dir in sorted(p for p in landing.iterdir() if p.is_dir()):
        for entity_dir in sorted(p for p in system_dir.iterdir() if p.is_dir()):
            files = {
                "csv": sorted(entity_dir.glob("*.csv")),
                "parquet": sorted(entity_dir.glob("*.parquet")),
            }
            if files["csv"] or files["parquet"]:
                found[f"{system_dir.name}/{entity_dir.name}"] = files
    return found


def kpi_vars() -> dict[str, str | int]:
    """kpi_first_year and reporting_currency as the dbt project defines them."""
    with open(DBT_PROJECT_DIR / "dbt_project.yml", encoding="utf-8") as f:
        dbt_vars = yaml.safe_load(f)["vars"]
    return {
        "kpi_first_year": int(dbt_vars["kpi_first_year"]),
        "reporting_currency": str(dbt_vars["reporting_currency"]),
    }


@dataclass
class BaselineResult:
    """One baseline run: seconds and output rows per part, and the figures to compare."""

    name: str
    seconds: dict[str, float] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)
    # year -> orders, order_lines, revenue_eur, cost_eur, margin_eur (attributable lines only)
    kpi_by_year: dict[str, dict[str, float]] = field(default_factory=dict)
    # customers, orders, revenue_eur, frequency, days_since_last_purchase (sums)
    features_summary: dict[str, float] = field(default_factory=dict)

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2, default=_plain), encoding="utf-8")

    @classmethod
    def read(cls, path: Path) -> BaselineResult:
        return cls(**json.loads(path.read_text(encoding="utf-8")))


def _plain(value):
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"not JSON serialisable: {type(value)}")
