"""A quiet logger for the CLI: one line per finished stage instead of Dagster's full event log."""

import logging
import sys
import time

from dagster import Field, logger

_SHOWN = {"STEP_START", "STEP_SUCCESS", "STEP_FAILURE", "ASSET_CHECK_EVALUATION"}


class _ProgressHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self._started: dict[str, float] = {}

    def emit(self, record: logging.LogRecord) -> None:
        event = getattr(record, "dagster_meta", {}).get("dagster_event")
        if event is None or event.event_type_value not in _SHOWN:
            return
        step = event.step_key or ""
        kind = event.event_type_value
        if kind == "STEP_START":
            self._started[step] = time.monotonic()
            return
        if kind == "ASSET_CHECK_EVALUATION":
            evaluation = event.event_specific_data
            if not evaluation.passed:
                key = "/".join(evaluation.asset_key.path)
                print(
                    f"  ! check failed: {key} {evaluation.check_name}", file=sys.stderr, flush=True
                )
            return
        took = time.monotonic() - self._started.pop(step, time.monotonic())
        status = "ok" if kind == "STEP_SUCCESS" else "FAILED"
        print(f"  {status:6} {step:45} {took:6.1f}s", file=sys.stderr, flush=True)


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
