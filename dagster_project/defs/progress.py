"""A quiet logger for the CLI: one line per finished stage instead of Dagster's full event log.

Steps that only evaluate checks print nothing when their checks pass (the CLI sums them up at
the end); a failed check always prints.
"""

import logging
import sys
import time
from collections import defaultdict

from dagster import Field, logger

_SHOWN = {
    "STEP_START",
    "STEP_SUCCESS",
    "STEP_FAILURE",
    "ASSET_CHECK_EVALUATION",
    "ASSET_MATERIALIZATION",
}


class _ProgressHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self._started: dict[str, float] = {}
        self._materialized: set[str] = set()
        self._checks: dict[str, int] = defaultdict(int)

    def emit(self, record: logging.LogRecord) -> None:
        event = getattr(record, "dagster_meta", {}).get("dagster_event")
        if event is None or event.event_type_value not in _SHOWN:
            return
        step = event.step_key or ""
        kind = event.event_type_value
        if kind == "STEP_START":
            self._started[step] = time.monotonic()
        elif kind == "ASSET_MATERIALIZATION":
            self._materialized.add(step)
        elif kind == "ASSET_CHECK_EVALUATION":
            evaluation = event.event_specific_data
            self._checks[step] += 1
            if not evaluation.passed:
                key = "/".join(evaluation.asset_key.path)
                # A warning publishes (its findings go to the steward queue); an error blocks.
                outcome = "failed" if evaluation.severity.value == "ERROR" else "warned"
                print(
                    f"  ! check {outcome}: {key} {evaluation.check_name}",
                    file=sys.stderr,
                    flush=True,
                )
        else:
            took = time.monotonic() - self._started.pop(step, time.monotonic())
            if kind == "STEP_SUCCESS" and step not in self._materialized:
                return  # a check-only step that passed
            status = "ok" if kind == "STEP_SUCCESS" else "FAILED"
            checks = f"  ({self._checks[step]} checks)" if self._checks.get(step) else ""
            print(f"  {status:6} {step:40} {took:6.1f}s{checks}", file=sys.stderr, flush=True)


@logger(
    config_schema={"log_level": Field(str, is_required=False, default_value="INFO")},
    description="One line per finished step (used by `segments run`).",
)
def progress_logger(init_context) -> logging.Logger:
    log = logging.getLogger("segments.progress")
    log.setLevel(logging.DEBUG)
    log.propagate = False
    if not log.handlers:
        log.addHandler(_ProgressHandler())
    return log
