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
from dagster_project.defs.crm_writeback import crm_writeback, crm_writeback_files
from dagster_project.defs.identity import customer_identity
from dagster_project.defs.ingest import raw_extracts
from dagster_project.defs.progress import progress_logger
from dagster_project.defs.publish import published_analytics
from dagster_project.defs.quality import quality_checks
from dagster_project.defs.segment_clustering import segment_cluster_crosstab
from dagster_project.defs.segment_history import (
    MONTHLY_AS_OF,
    customer_segment_history,
    segment_migration_and_stability,
)
from dagster_project.defs.segmentation import customer_segmentation
from dagster_project.defs.steward import steward_queue
from dagster_project.defs.transform import dbt_customer_marts, dbt_resource, dbt_staging_and_facts
from dagster_project.resources import warehouse_resource

# The monthly history partition and what depends on it (migration, CRM write-back, publication)
# run as a partitioned run after the unpartitioned graph: `segments run` runs both jobs.
AFTER_HISTORY = AssetSelection.assets(customer_segment_history).downstream()

segments_job = define_asset_job(
    "segments_job",
    selection=AssetSelection.all() - AFTER_HISTORY,
    description="Ingest, transform, link, check and segment: what `segments run` does before "
    "the history snapshot of its as-of and publication (segment_history_job).",
)
segment_history_job = define_asset_job(
    "segment_history_job",
    selection=AFTER_HISTORY,
    partitions_def=MONTHLY_AS_OF,
    description="A monthly segment-history snapshot (or a backfill of several), migration and "
    "stability, the CRM write-back, then publication.",
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
        segment_cluster_crosstab,
        customer_segment_history,
        segment_migration_and_stability,
        crm_writeback,
        steward_queue,
        published_analytics,
        crm_writeback_files,
    ],
    asset_checks=quality_checks,
    jobs=[segments_job, segment_history_job],
    resources={"warehouse": warehouse_resource(), "dbt": dbt_resource()},
    executor=in_process_executor,
    loggers=LOGGERS,
)
