"""A home's Dagster instance: the run history `make ui` shows is written and read back through
the home's dagster.yaml, and `segments run` starts its early imports on steps that exist."""

from __future__ import annotations

from dagster import DagsterInstance
from dagster._core.storage.dagster_run import DagsterRun
from dagster._core.storage.event_log import ConsolidatedSqliteEventLogStorage

from dagster_project.dagster_instance import (
    SegmentsEventLogStorage,
    history_kept_open,
    write_instance_config,
)


def test_the_run_history_is_written_and_read_back_through_the_homes_instance(tmp_path):
    """SegmentsEventLogStorage overrides Dagster's private `_connect`: if an upgrade renames it,
    this fails instead of the history silently going back to a new engine per event."""
    assert callable(getattr(ConsolidatedSqliteEventLogStorage, "_connect", None))
    write_instance_config(tmp_path)
    instance = DagsterInstance.from_config(str(tmp_path))
    try:
        assert isinstance(instance.event_log_storage, SegmentsEventLogStorage)
        run = instance.add_run(DagsterRun(job_name="segments_job", run_id="run-1"))
        with history_kept_open(tmp_path):
            for i in range(3):
                instance.report_engine_event(f"event {i}", run)
            # a second instance (`make ui` beside a running pipeline) reads what is committed
            reader = DagsterInstance.from_config(str(tmp_path))
            try:
                seen = [e.dagster_event.message for e in reader.all_logs("run-1")]
            finally:
                reader.dispose()
        assert seen == ["event 0", "event 1", "event 2"]
        assert [e.dagster_event.message for e in instance.all_logs("run-1")] == seen
    finally:
        instance.dispose()
    # the last connection closed: SQLite folded the WAL back into the database file
    assert not list((tmp_path / "history").glob("*.db-wal"))


def test_early_imports_start_on_steps_of_the_job():
    """`segments run` starts importing a library when a named step starts: a renamed step would
    silently move the import back into the step that needs it."""
    from dagster_project.cli import IMPORT_WHEN_STEP_STARTS
    from dagster_project.definitions import defs

    job = defs.resolve_job_def("segments_job")
    step_keys = {node.name for node in job.graph.node_dict.values()}
    assert set(IMPORT_WHEN_STEP_STARTS) <= step_keys
