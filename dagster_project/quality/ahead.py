"""The staging quality gate, validated while the identity step runs.

At 100k companies the identity step keeps ~1.4 of the 2 cores busy for ~6 s and the staging gate
~1.7 for ~7 s, one after the other. Identity reads the staging tables and writes only its own
(identity.*, steward.findings__identity); the staging suites read only staging tables and prepare
nothing. So the identity step starts the staging suites' validation in a thread (`start`), and
the gate step takes the outcomes (`claim`) and keeps the results and findings as before. Side by
side the two took 12.1-12.3 s instead of 14.2-15.1 s (harness at 100k, same outcomes).

One process can open a DuckDB file with one configuration only, and identity holds the
warehouse read-write: GX's connections come from that same instance
(gx_duckdb.warehouse_validation_context, `shared_instance`). In any other case (another run,
other suites, a suite that prepares tables first, a failure in the thread) the gate step
validates itself, as before.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dagster_project.quality.suites import SuiteSpec
from dagster_project.quality.validate import Validated, validate_in_gx
from dagster_project.settings import PipelineSettings

_log = logging.getLogger(__name__)


class _Ahead(threading.Thread):
    """One validation made ahead: its run, its suites and what came of it."""

    def __init__(
        self,
        warehouse: Path,
        suites: Sequence[SuiteSpec],
        run_id: str,
        policy: PipelineSettings,
        duckdb_config: dict[str, Any],
    ):
        super().__init__(name="quality-gate-ahead")
        self.run_id = run_id
        self.suites = tuple(suites)
        self.suite_names = tuple(suite.name for suite in suites)
        self.warehouse, self.policy, self.duckdb_config = warehouse, policy, duckdb_config
        self.validated: Validated | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.validated = validate_in_gx(
                self.warehouse,
                self.suites,
                policy=self.policy,
                duckdb_config=self.duckdb_config,
                run_name=self.run_id,
                shared_instance=True,
            )
        except BaseException as exc:  # noqa: BLE001 - the gate step then validates itself
            self.error = exc


_lock = threading.Lock()
_pending: _Ahead | None = None


def start(
    warehouse: Path,
    suites: Sequence[SuiteSpec],
    run_id: str,
    policy: PipelineSettings,
    duckdb_config: dict[str, Any],
) -> bool:
    """Validate `suites` in a thread for the gate step of run `run_id`; False if not started
    (a suite prepares tables first: the gate step does that itself). A validation started
    before and not taken is dropped (GX runs one context at a time: gx_duckdb.GX_IN_USE)."""
    global _pending
    if not suites or any(suite.prepare for suite in suites):
        return False
    ahead = _Ahead(warehouse, suites, run_id, policy, duckdb_config)
    with _lock:
        _pending = ahead
    ahead.start()
    return True


def claim(run_id: str, suites: Sequence[SuiteSpec]) -> Validated | None:
    """The validation started for these suites in this run, once finished; None if there is
    none (or it failed: logged), and the caller validates itself."""
    global _pending
    with _lock:
        ahead, _pending = _pending, None
    if ahead is None:
        return None
    ahead.join()
    if ahead.run_id != run_id or ahead.suite_names != tuple(suite.name for suite in suites):
        return None
    if ahead.error is not None:
        _log.warning("validation ahead failed, validating again: %r", ahead.error)
        return None
    return ahead.validated
