"""Keep validation results in the home's GX file project (<home>/docs/gx) and render its Data
Docs, bounded: only the newest `keep_runs` runs stay.

Validation itself runs in an ephemeral context (quality/gx_duckdb.py); its results are copied
here under the same keys, so the file project never holds a data source (nor the warehouse
path). A run is a run name (the Dagster run id): one pipeline run validates in several steps,
each adding its results to the run. The Data Docs index is rebuilt once per call; the site
builder drops the pages of pruned results itself.

A quality gate step renders in the background (`keep_results_in_background`): rendering is
single-threaded Python (0.5-1 s a gate), and the step after a gate need not wait for HTML. GX
keeps process-wide state (its current project), so renders run one at a time, in order, and
never beside a validation (gx_duckdb.GX_IN_USE); `segments run` waits for the last one
(`wait_for_data_docs`) before it reports.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

INDEX = Path("uncommitted/data_docs/local_site/index.html")

_pending_lock = threading.Lock()
_pending: threading.Thread | None = None


def keep_results(
    project_dir: Path,
    suites: Sequence[Any],
    results: Sequence[tuple[Any, Any]],
    keep_runs: int,
) -> Path:
    """Store `suites` (GX ExpectationSuites) and `results` ((ValidationResultIdentifier,
    ExpectationSuiteValidationResult) pairs), prune old runs, update the Data Docs; returns the
    index page."""
    import great_expectations as gx
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
    )

    from dagster_project.quality.gx_duckdb import GX_IN_USE, quiet_progress_bars

    with GX_IN_USE:
        context = gx.get_context(mode="file", context_root_dir=str(project_dir))
        quiet_progress_bars(context)
        for suite in suites:
            context.suites.add_or_update(suite)
        store = context.validation_results_store
        for key, result in results:
            store.set(key, result)
        pruned = prune_validation_results(context, keep_runs)
        context.build_data_docs(
            resource_identifiers=[
                *(key for key, _ in results),
                *(ExpectationSuiteIdentifier(name=s.name) for s in suites),
            ]
        )
        if pruned:
            # The stores delete files only; the site builder has dropped the pruned pages by now.
            uncommitted = Path(project_dir) / "uncommitted"
            for tree in (uncommitted / "validations", uncommitted / "data_docs" / "local_site"):
                _remove_empty_folders(tree)
        return Path(project_dir) / INDEX


def keep_results_in_background(
    project_dir: Path,
    suites: Sequence[Any],
    results: Sequence[tuple[Any, Any]],
    keep_runs: int,
) -> None:
    """keep_results in a thread of its own, after the render still pending (if any). A render
    that fails is logged: the validation it shows stands, its results and findings are kept
    elsewhere, and the next render shows it."""
    global _pending

    def render() -> None:
        try:
            keep_results(project_dir, suites, results, keep_runs)
        except Exception:  # noqa: BLE001 - any failure of the HTML view only
            logging.getLogger(__name__).exception("Data Docs not updated in %s", project_dir)

    with _pending_lock:
        if _pending is not None:
            _pending.join()
        # not a daemon: the interpreter waits for it at exit, so no page is left half-written
        _pending = threading.Thread(target=render, name="data-docs")
        _pending.start()


def wait_for_data_docs() -> None:
    """Return once the pending Data Docs render (if any) has finished."""
    with _pending_lock:
        if _pending is not None:
            _pending.join()


def prune_validation_results(context, keep_runs: int) -> int:
    """Delete the validation results of all but the newest `keep_runs` runs (newest by the
    latest result of the run); returns the number of results deleted."""
    store = context.validation_results_store
    keys = store.list_keys()
    newest: dict[str, dt.datetime] = {}
    for key in keys:
        name, when = key.run_id.run_name or "", key.run_id.run_time
        newest[name] = max(newest.get(name, when), when)
    kept = set(sorted(newest, key=newest.__getitem__, reverse=True)[:keep_runs])
    removed = 0
    for key in keys:
        if (key.run_id.run_name or "") not in kept:
            store.remove_key(key)
            removed += 1
    return removed


def _remove_empty_folders(root: Path) -> None:
    for folder in sorted((p for p in root.rglob("*") if p.is_dir()), reverse=True):
        if not any(folder.iterdir()):
            folder.rmdir()
