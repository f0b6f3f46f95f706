"""One quality gate step: prepare what the suites compare with, validate them all in one GX
context, and leave each suite's findings in the warehouse for the steward queue.

The warehouse is opened read-write only before and after GX, never while GX holds its
read-only engine (DuckDB refuses two configurations of one file in one process). A validation
made ahead (quality/ahead.py: GX on the same instance as the step beside it) is taken as it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dagster_project.quality.baseline import prepare
from dagster_project.quality.suites import SuiteSpec
from dagster_project.quality.validate import (
    SuiteOutcome,
    Validated,
    record_findings,
    validate_in_gx,
)
from dagster_project.settings import PipelineSettings, settings
from dagster_project.warehouse import connect


def run_quality_gate(
    warehouse: Path,
    suites: Sequence[SuiteSpec],
    *,
    run_name: str | None = None,
    published_db: Path | None = None,
    project_dir: Path | None = None,
    policy: PipelineSettings | None = None,
    duckdb_config: dict[str, Any] | None = None,
    data_docs_in_background: bool = False,
    validated: Validated | None = None,
) -> list[tuple[SuiteOutcome, str]]:
    """(outcome, findings table) per suite, in the order given (Data Docs: validate_suites).
    `validated`: the suites' validation made ahead (quality/ahead.py), kept and recorded here."""
    policy = policy or settings()
    if validated is None:
        _prepare(warehouse, suites, published_db, policy)
        validated = validate_in_gx(
            warehouse, suites, policy=policy, duckdb_config=duckdb_config, run_name=run_name
        )
    if project_dir is not None:
        validated.keep(project_dir, policy, in_background=data_docs_in_background)
    con = connect(warehouse)
    try:
        return [(outcome, record_findings(con, outcome)) for outcome in validated.outcomes]
    finally:
        con.close()


def _prepare(
    warehouse: Path,
    suites: Sequence[SuiteSpec],
    published_db: Path | None,
    policy: PipelineSettings,
) -> None:
    """What the suites compare with (quality/baseline.py), written before GX opens the file."""
    preparations = {name for suite in suites for name in suite.prepare}
    if not preparations:
        return
    con = connect(warehouse)
    try:
        prepare(
            con, preparations, published_db=published_db, distribution=policy.quality.distribution
        )
    finally:
        con.close()
