"""Where the pipeline's time goes: per-stage wall time from the Dagster run's event log, and
rows per stage from the warehouse, after a `segments run` the bench measured.

Dagster steps are grouped into the DESIGN.md stages. A dbt step holds several stages (staging,
marts, KPI marts, dbt tests): its active span (first node start to last node end) is shared
among them by their nodes' execution times, and the rest of the step, dbt's own start-up
(process, parse, connection), is reported as overhead, so that it stays visible.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from dagster_project.fact_store import views_over_fact_store
from dagster_project.warehouse import connect

STAGES = (
    "ingest",
    "staging",
    "identity",
    "marts",
    "segmentation",
    "validation",
    "kpi_marts",
    "publish",
)
OVERHEAD_DBT = "dbt_startup"  # dbt process start, project parse, connection, per invocation
OVERHEAD_RUN = "run_overhead"  # process start, imports, dbt manifest check, steward refresh

# Asset key prefix (schema) -> stage, for Python assets and dbt models.
_SCHEMA_STAGE = {
    "raw": "ingest",
    "seeds": "staging",
    "staging": "staging",
    "intermediate": "staging",
    "identity": "identity",
    "marts": "marts",
    "segmentation": "segmentation",
    "segments": "segmentation",
    "quality": "validation",
    "steward": "validation",
    "published": "publish",
    "publish": "publish",
}


def stage_of_asset(key: list[str]) -> str:
    schema, name = key[0], key[-1]
    if schema in ("raw", "seeds", "staging"):
        return _SCHEMA_STAGE[schema]
    if name.startswith("kpi_"):
        return "kpi_marts"
    if name.startswith("customer_segment") or name.startswith("segment_"):
        return "segmentation"
    return _SCHEMA_STAGE.get(schema, "marts")


@dataclass
class _Step:
    start: float | None = None
    end: float | None = None
    # (stage, execution seconds, end timestamp) per dbt node / materialization / check
    nodes: list[tuple[str, float | None, float]] = field(default_factory=list)
    node_names: list[str] = field(default_factory=list)
    materialized: list[list[str]] = field(default_factory=list)
    checks: int = 0


def _seconds(metadata) -> float | None:
    value = metadata.get("Execution Duration")
    if value is None:
        return None
    try:
        return float(value.value)
    except (TypeError, ValueError):
        return None


def stage_seconds(dagster_home: Path, run_id: str | None = None) -> dict:
    """{"run_id", "stages": {stage: s}, "dbt_startup": s, "steps": s, "checks": n, "step_list"}.

    Reads the run (the newest `segments run` when run_id is None) from the Dagster instance in
    dagster_home, with the history-partition run that followed it (tagged AFTER_RUN_TAG).
    """
    from dagster import DagsterInstance, RunsFilter

    from dagster_project.run_context import AFTER_RUN_TAG

    instance = DagsterInstance.from_config(str(dagster_home))
    try:
        if run_id:
            run = instance.get_run_by_id(run_id)
        else:
            run = next(r for r in instance.get_runs(limit=10) if AFTER_RUN_TAG not in r.tags)
        runs = [run, *instance.get_runs(RunsFilter(tags={AFTER_RUN_TAG: run.run_id}))]
        steps: dict[str, _Step] = defaultdict(_Step)
        run_bounds: list[float] = []
        records = [record for r in runs for record in instance.all_logs(r.run_id)]
        for record in records:
            event = record.dagster_event
            if event is not None and event.event_type_value in (
                "PIPELINE_START",
                "PIPELINE_SUCCESS",
                "PIPELINE_FAILURE",
            ):
                run_bounds.append(record.timestamp)
            if event is None or not event.step_key:
                continue
            step = steps[event.step_key]
            kind = event.event_type_value
            if kind == "STEP_START":
                step.start = record.timestamp
            elif kind in ("STEP_SUCCESS", "STEP_FAILURE"):
                step.end = record.timestamp
            elif kind == "ASSET_MATERIALIZATION":
                data = event.event_specific_data.materialization
                step.materialized.append(list(data.asset_key.path))
                step.node_names.append("/".join(data.asset_key.path))
                step.nodes.append(
                    (
                        stage_of_asset(list(data.asset_key.path)),
                        _seconds(data.metadata),
                        record.timestamp,
                    )
                )
            elif kind == "ASSET_CHECK_EVALUATION":
                step.checks += 1
                step.node_names.append(event.event_specific_data.check_name)
                step.nodes.append(
                    ("validation", _seconds(event.event_specific_data.metadata), record.timestamp)
                )
        return {
            "run_id": run.run_id,
            "status": run.status.value,
            "run_started_at": min(run_bounds, default=None),
            "run_ended_at": max(run_bounds, default=None),
            **_group(steps),
        }
    finally:
        instance.dispose()


def _group(steps: dict[str, _Step]) -> dict:
    stages = dict.fromkeys(STAGES, 0.0)
    dbt_startup = 0.0
    step_total = 0.0
    step_list = []
    checks = 0
    nodes = []
    for key, step in steps.items():
        nodes += [
            {"node": name, "stage": stage, "seconds": round(sec, 3)}
            for name, (stage, sec, _) in zip(step.node_names, step.nodes, strict=True)
            if sec is not None
        ]
        if step.start is None or step.end is None:
            continue
        took = step.end - step.start
        step_total += took
        checks += step.checks
        timed = [(stage, sec, end) for stage, sec, end in step.nodes if sec is not None]
        if timed:  # a dbt step: share its active span among its nodes' stages
            first_start = min(end - sec for _, sec, end in timed)
            span = min(took, max(end for _, _, end in timed) - max(first_start, step.start))
            busy = sum(sec for _, sec, _ in timed) or 1.0
            for stage, sec, _ in timed:
                stages[stage] += span * sec / busy
            dbt_startup += took - span
            stage = "dbt"
        elif step.materialized:
            stage = stage_of_asset(step.materialized[0])
            stages[stage] += took
        else:  # a step of asset checks only
            stage = "validation"
            stages[stage] += took
        step_list.append({"step": key, "stage": stage, "seconds": round(took, 3)})
    return {
        "stages": {k: round(v, 3) for k, v in stages.items()},
        OVERHEAD_DBT: round(dbt_startup, 3),
        "steps_seconds": round(step_total, 3),
        "checks": checks,
        "step_list": sorted(step_list, key=lambda s: -s["seconds"]),
        # dbt models and tests by their own execution time (threads overlap: not additive)
        "node_list": sorted(nodes, key=lambda s: -s["seconds"]),
    }


def connect_read_only(path: Path, wait_seconds: float = 60.0) -> duckdb.DuckDBPyConnection:
    """A read-only connection, waiting while a process the run left behind (a dbt process
    after a failed step) still holds the file."""
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            # the product's way in: marts.fct_order_lines reads the fact store it attaches
            return connect(path, read_only=True)
        except duckdb.IOException:
            if time.monotonic() > deadline:
                raise
            time.sleep(1.0)


def stage_rows(warehouse: Path, published: Path | None) -> dict[str, int]:
    """Rows each stage wrote (tables of its schema); validation counts nothing here."""
    rows = dict.fromkeys(STAGES, 0)
    con = connect_read_only(warehouse)
    try:
        tables = con.execute(
            "select table_schema, table_name from information_schema.tables"
            " where table_type = 'BASE TABLE' and table_catalog = current_database()"
        ).fetchall()
        # the facts are a view over the fact store (dagster_project/fact_store.py)
        tables += sorted(views_over_fact_store(con))
        for schema, name in tables:
            if schema == "raw" and name in ("rejects", "load_log", "ingest_findings"):
                continue
            if schema in ("meta", "publish", "seeds", "steward"):
                continue
            stage = stage_of_asset([schema, name])
            if stage in ("validation", "publish"):
                continue
            rows[stage] += con.execute(f'select count(*) from "{schema}"."{name}"').fetchall()[0][0]
    finally:
        con.close()
    if published and published.exists():
        con = duckdb.connect(str(published), read_only=True)
        try:
            for schema, name in con.execute(
                "select table_schema, table_name from information_schema.tables"
            ).fetchall():
                rows["publish"] += con.execute(
                    f'select count(*) from "{schema}"."{name}"'
                ).fetchall()[0][0]
        finally:
            con.close()
    return rows
