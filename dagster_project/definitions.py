"""The one entry point Dagster loads (workspace.yaml, `segments run`): assets by stage, checks,
resources, the job, and the in-process executor (DuckDB has one writer; subprocesses per step
would only re-import the definitions)."""

from __future__ import annotations

from dagster import (
    AssetSelection,
    Definitions,
    LoggerDefinition,
    colored_console_logger,
    define_asset_job,
    in_process_executor,
)

# Imported for its effect: cheap commits of run history in SQLite (see the module).
import dagster_project.dagster_instance  # noqa: F401
from dagster_project.defs.identity import customer_identity
from dagster_project.defs.ingest import raw_extracts
from dagster_project.defs.progress import progress_logger
from dagster_project.defs.publish import published_analytics
from dagster_project.defs.quality import quality_checks
from dagster_project.defs.segmentation import customer_segmentation
from dagster_project.defs.steward import steward_queue
from dagster_project.defs.transform import dbt_customer_marts, dbt_resource, dbt_staging_and_facts
from dagster_project.resources import warehouse_resource

segments_job = define_asset_job(
    "segments_job",
    selection=AssetSelection.all(),
    description="Ingest, transform, link, check and publish: everything `segments run` does.",
)

LOGGERS: dict[str, LoggerDefinition] = {
    "console": colored_console_logger,
    "progress": progress_logger,
}

defs = Definitions(
    assets=[
        raw_extracts,
        dbt_staging_and_facts,
        customer_identity,
        dbt_customer_marts,
        customer_segmentation,
        steward_queue,
        published_analytics,
    ],
    asset_checks=quality_checks,
    jobs=[segments_job],
    resources={"warehouse": warehouse_resource(), "dbt": dbt_resource()},
    executor=in_process_executor,
    loggers=LOGGERS,
)
