"""Validate suites inside DuckDB and turn their failures into steward findings.

GX runs every expectation as SQL against the warehouse (a query asset over the suite's
`batch_query`); nothing is loaded into pandas. The suites of one call share one GX context and
one engine, and the Data Docs are built once per call. Each failed expectation yields its
offending rows by `record_key` (column expectations through `unexpected_index_list`, SQL rules
through the rows their query returns), which become findings of the expectation's kind
(default `failed_expectation`) with its rule name and the severity its policy has in
config/pipeline.yml.

An expectation that could not be evaluated at all (GX swallowed an exception) counts as failed:
a gate that cannot look must not let data through.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from dagster_project.quality.gx_duckdb import warehouse_validation_context
from dagster_project.quality.suites import RECORD_KEY, ExpectationSpec, SuiteSpec, build_gx_suite
from dagster_project.settings import PipelineSettings, Severity, settings
from dagster_project.steward.queue import FINDING_COLUMNS, create_findings_table


@dataclass(frozen=True)
class OffendingRow:
    record_key: str | None
    observed_value: str | None = None
    customers_affected: int | None = None
    revenue_eur_affected: float | None = None


@dataclass
class ExpectationOutcome:
    spec: ExpectationSpec
    severity: Severity
    success: bool
    unexpected_count: int
    rows: list[OffendingRow] = field(default_factory=list)
    error: str | None = None

    def summary(self) -> str:
        if self.error:
            return f"{self.spec.rule}: could not be evaluated ({self.error})"
        return f"{self.spec.rule}: {self.unexpected_count} row(s)"


@dataclass
class SuiteOutcome:
    suite: SuiteSpec
    expectations: list[ExpectationOutcome]
    seconds: float
    queries_dialect: str

    @property
    def failed(self) -> list[ExpectationOutcome]:
        return [e for e in self.expectations if not e.success]

    @property
    def blocking_failures(self) -> list[ExpectationOutcome]:
        return [e for e in self.failed if e.severity == "error"]

    @property
    def success(self) -> bool:
        return not self.failed

    def description(self) -> str | None:
        """One paragraph for the run's closing message: what failed, how many rows, where."""
        if not self.failed:
            return None
        worst = self.blocking_failures or self.failed
        parts = "; ".join(e.summary() for e in worst[:5])
        more = f" (and {len(worst) - 5} more)" if len(worst) > 5 else ""
        kinds = ", ".join(sorted({e.spec.kind for e in worst}))
        return (
            f"{self.suite.asset} failed {len(worst)} expectation(s): {parts}{more}. "
            f"Offending keys: steward queue, kind {kinds} (`segments review`)."
        )


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _rows_of(result: dict[str, Any], limit: int) -> list[OffendingRow]:
    """Offending rows of one GX expectation result, by record_key."""
    details = result.get("details") or {}
    if "unexpected_rows" in details:  # UnexpectedRowsExpectation: the rows our SQL returned
        rows = []
        for row in details["unexpected_rows"][:limit]:
            customers = row.get("customers_affected")
            revenue = row.get("revenue_eur_affected")
            rows.append(
                OffendingRow(
                    record_key=_text(row.get(RECORD_KEY)),
                    observed_value=_text(row.get("observed_value")),
                    customers_affected=None if customers is None else int(customers),
                    revenue_eur_affected=None if revenue is None else float(revenue),
                )
            )
        return rows
    rows, seen = [], set()
    for row in result.get("unexpected_index_list") or []:
        key = _text(row.get(RECORD_KEY))
        if key in seen:  # a duplicate key is listed once per copy
            continue
        seen.add(key)
        observed = {k: v for k, v in row.items() if k != RECORD_KEY}
        rows.append(
            OffendingRow(
                record_key=key,
                observed_value=", ".join(f"{k}={v}" for k, v in observed.items()) or None,
            )
        )
        if len(rows) >= limit:
            break
    return rows


def _unexpected_count(result: dict[str, Any], rows: list[OffendingRow]) -> int:
    if "unexpected_count" in result:
        return int(result["unexpected_count"])
    if isinstance(result.get("observed_value"), int):  # UnexpectedRowsExpectation: row count
        return int(result["observed_value"])
    return len(rows)


def _error_of(validation_result) -> str | None:
    info = validation_result.exception_info or {}
    if info.get("raised_exception"):
        return str(info.get("exception_message") or "error")
    # Several metrics may fail: GX nests {metric id: info}.
    for value in info.values():
        if isinstance(value, dict) and value.get("raised_exception"):
            return str(value.get("exception_message") or "error")
    return None


def _outcome(
    spec: SuiteSpec, results, gx_suite, policy: PipelineSettings, seconds: float, dialects: str
) -> SuiteOutcome:
    limit = policy.quality.max_keys_per_expectation
    # Results come back in GX's evaluation order: match them to our specs by expectation id.
    position = {e.id: i for i, e in enumerate(gx_suite.expectations)}
    by_spec = sorted(results, key=lambda r: position[r.expectation_config.id])
    outcomes = []
    for expectation, result in zip(spec.expectations, by_spec, strict=True):
        payload = dict(result.result or {})
        error = _error_of(result)
        rows = [] if error else _rows_of(payload, limit)
        outcomes.append(
            ExpectationOutcome(
                spec=expectation,
                severity=policy.severity_of(expectation.policy),
                success=bool(result.success) and error is None,
                unexpected_count=_unexpected_count(payload, rows),
                rows=rows,
                error=error,
            )
        )
    return SuiteOutcome(
        suite=spec, expectations=outcomes, seconds=seconds, queries_dialect=dialects
    )


@dataclass
class Validated:
    """What one GX context validated: our outcomes, and GX's suites and results for the file
    project (Data Docs)."""

    outcomes: list[SuiteOutcome]
    gx_suites: list[Any]
    gx_results: list[tuple[Any, Any]]

    def keep(self, project_dir: Path, policy: PipelineSettings, in_background: bool) -> None:
        """Keep the results in the home's GX file project and render its Data Docs: before
        this returns, or in a thread (quality/data_docs.py)."""
        from dagster_project.quality.data_docs import keep_results, keep_results_in_background

        keep = keep_results_in_background if in_background else keep_results
        keep(project_dir, self.gx_suites, self.gx_results, policy.quality.keep_validation_runs)


def validate_suites(
    warehouse: Path,
    suites: Sequence[SuiteSpec],
    *,
    project_dir: Path | None = None,
    policy: PipelineSettings | None = None,
    duckdb_config: dict[str, Any] | None = None,
    run_name: str | None = None,
) -> list[SuiteOutcome]:
    """Run `suites` against the warehouse as SQL in DuckDB, in one GX context on one engine.

    With `project_dir`, the results are kept in that GX file project (one per home) under
    `run_name` (the Dagster run id) and its Data Docs updated (quality/data_docs.py).
    """
    policy = policy or settings()
    validated = validate_in_gx(
        warehouse, suites, policy=policy, duckdb_config=duckdb_config, run_name=run_name
    )
    if project_dir is not None:
        validated.keep(project_dir, policy, in_background=False)
    return validated.outcomes


def validate_in_gx(
    warehouse: Path,
    suites: Sequence[SuiteSpec],
    *,
    policy: PipelineSettings | None = None,
    duckdb_config: dict[str, Any] | None = None,
    run_name: str | None = None,
    shared_instance: bool = False,
) -> Validated:
    """validate_suites' validation, nothing kept yet. `shared_instance`: see
    gx_duckdb.warehouse_validation_context."""
    import great_expectations as gx
    from great_expectations.core.run_identifier import RunIdentifier

    policy = policy or settings()
    now = dt.datetime.now(dt.UTC)
    run_id = RunIdentifier(run_name=run_name or f"adhoc-{now:%Y%m%dT%H%M%S}", run_time=now)
    result_format = {
        "result_format": "COMPLETE",
        "unexpected_index_column_names": [RECORD_KEY],
        "partial_unexpected_count": policy.quality.max_keys_per_expectation,
    }
    validated = []
    with warehouse_validation_context(
        warehouse, duckdb_config=duckdb_config, shared_instance=shared_instance
    ) as v:
        for suite in suites:
            started = time.monotonic()
            asset = v.add_query_asset(suite.name, suite.batch_query)
            batch = asset.add_batch_definition_whole_table("whole table")
            gx_suite = v.context.suites.add(build_gx_suite(suite))
            definition = v.context.validation_definitions.add(
                gx.ValidationDefinition(name=suite.name, data=batch, suite=gx_suite)
            )
            results = definition.run(result_format=result_format, run_id=run_id).results
            validated.append((suite, results, gx_suite, time.monotonic() - started))
        dialects = ",".join(sorted({e.dialect.name for e in v.engines()}))
        stored = v.context.validation_results_store
        kept = [(key, stored.get(key)) for key in stored.list_keys()]
    # Matched to our specs by expectation id before the file project re-identifies the suites.
    outcomes = [
        _outcome(suite, results, gx_suite, policy, seconds, dialects)
        for suite, results, gx_suite, seconds in validated
    ]
    return Validated(outcomes, [gx_suite for _, _, gx_suite, _ in validated], kept)


def validate_suite(warehouse: Path, suite: SuiteSpec, **options) -> SuiteOutcome:
    """One suite (validate_suites' options)."""
    return validate_suites(warehouse, [suite], **options)[0]


def findings_frame(outcome: SuiteOutcome) -> pd.DataFrame:
    """The outcome's failures as steward findings (FINDING_COLUMNS)."""
    suite = outcome.suite
    records = []
    for e in outcome.failed:
        base = {
            "kind": e.spec.kind,
            "severity": e.severity,
            "source_system": suite.source_system,
            "entity": suite.entity,
            "source_file": None,
            "line": None,
            "column_name": e.spec.column,
            "rule": e.spec.rule,
        }
        what = e.spec.description or e.spec.rule
        if e.error or not e.rows:
            records.append(
                {
                    **base,
                    "record_key": None,
                    "observed_value": None,
                    "customers_affected": None,
                    "revenue_eur_affected": None,
                    "message": f"{suite.asset}: {e.summary()} - {what}",
                }
            )
            continue
        shown = (
            ""
            if len(e.rows) >= e.unexpected_count
            else (f" (first {len(e.rows)} of {e.unexpected_count} listed)")
        )
        for row in e.rows:
            records.append(
                {
                    **base,
                    "record_key": row.record_key,
                    "observed_value": row.observed_value,
                    "customers_affected": row.customers_affected,
                    "revenue_eur_affected": row.revenue_eur_affected,
                    "message": f"{suite.asset}: {what}{shown}",
                }
            )
    return pd.DataFrame.from_records(records, columns=list(FINDING_COLUMNS))


def record_findings(con: duckdb.DuckDBPyConnection, outcome: SuiteOutcome) -> str:
    """Replace this suite's findings table (an empty one when it passed: old findings resolve)."""
    frame = findings_frame(outcome)
    con.register("quality_findings", frame)
    try:
        return create_findings_table(con, outcome.suite.stage, "select * from quality_findings")
    finally:
        con.unregister("quality_findings")
