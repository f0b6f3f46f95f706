"""Validated pipeline settings: thresholds and the severity policy live in config/pipeline.yml."""

from __future__ import annotations

import datetime as dt
import os
from functools import cache
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

SETTINGS_FILE = Path(__file__).resolve().parent / "config" / "pipeline.yml"
# A deployment (or a test) can point at its own policy file; it is validated the same way.
SETTINGS_ENV = "SEGMENTS_SETTINGS"

Severity = Literal["error", "warn"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DuckDBSettings(_Strict):
    memory_limit: str = "4GB"
    threads: int = Field(2, ge=1)


class IngestSettings(_Strict):
    max_rejected_share: float = Field(0.02, ge=0, le=1)
    tolerated_rejected_rows: int = Field(3, ge=0)

    def rejected_share_blocks(self, rows_read: int, rows_rejected: int) -> bool:
        share = rows_rejected / rows_read if rows_read else 0.0
        return share > self.max_rejected_share and rows_rejected > self.tolerated_rejected_rows


class PublishSettings(_Strict):
    tables: list[str]
    storage_version: str = "v1.3.0"
    keep_parquet_generations: int = Field(2, ge=1)


# A SQL identifier (a column of the checked table): these are pasted into expectation SQL.
Identifier = Annotated[str, StringConstraints(pattern=r"^[a-z_][a-z0-9_]*$")]


class ReconciliationSettings(_Strict):
    # Largest difference (EUR, or order currency between staging and facts) per compared group
    # (currency, customer and year) that still counts as reconciled: rounding, not lost rows.
    tolerance: float = Field(0.01, ge=0)


class DistributionSettings(_Strict):
    """Shares of customers per value of these segments.customer_segments columns, compared with
    the previous publication (<home>/published/analytics.duckdb)."""

    columns: list[Identifier] = Field(["segment", "sub_segment", "service_tier"], min_length=1)
    # A value's share of customers may move this much (absolute, 0.10 = 10 points) per run.
    max_share_change: float = Field(0.10, gt=0, le=1)
    # Fewer customers than this in the previous publication: shares are too jumpy to compare.
    min_customers: int = Field(100, ge=0)


class PlausibleDates(_Strict):
    """Lower bounds of dates; the upper bound is the extract that delivered the row."""

    earliest_event: dt.date = dt.date(2000, 1, 1)  # orders, invoices, cases, ratings, ...
    earliest_master_data: dt.date = dt.date(1900, 1, 1)  # customers and accounts created
    # Days a date may lie after its extract's date: source timestamps carry the users' time
    # zones, the extract time stamp does not.
    extract_grace_days: int = Field(1, ge=0)


class QualitySettings(_Strict):
    """Great Expectations gates (dagster_project/quality/); severities are in `severity:`."""

    # GX returns at most 200 offending rows of a SQL rule; the queue keeps at most this many
    # keys per failed expectation (the finding's message says how many rows failed in all).
    max_keys_per_expectation: int = Field(200, ge=1, le=200)
    # Keep a GX project with validation results and Data Docs in <home>/docs/gx.
    data_docs: bool = True
    # Validation results and their Data Docs pages of this many runs are kept; older ones go.
    keep_validation_runs: int = Field(10, ge=1)
    reconciliation: ReconciliationSettings = ReconciliationSettings()
    distribution: DistributionSettings = DistributionSettings()
    plausible_dates: PlausibleDates = PlausibleDates()


class PipelineSettings(_Strict):
    duckdb: DuckDBSettings = DuckDBSettings()
    ingest: IngestSettings = IngestSettings()
    quality: QualitySettings = QualitySettings()
    severity: dict[str, Severity]
    publish: PublishSettings

    def severity_of(self, check: str) -> Severity:
        return self.severity.get(check, "warn")


def load_settings(path: Path = SETTINGS_FILE) -> PipelineSettings:
    with open(path, encoding="utf-8") as f:
        return PipelineSettings.model_validate(yaml.safe_load(f))


@cache
def settings() -> PipelineSettings:
    return load_settings(Path(os.environ.get(SETTINGS_ENV) or SETTINGS_FILE))
