"""The steward queue as an asset (it also gets written by the CLI when a run is blocked)."""

from dagster import AssetExecutionContext, AssetKey, MaterializeResult, asset

from dagster_project.defs.ingest import ENTITIES, raw_asset_key
from dagster_project.defs.quality import QUALITY_GATED_ASSETS
from dagster_project.resources import WarehouseResource
from dagster_project.steward.queue import refresh_steward_queue, summarize_queue

# Findings come from every stage: the queue waits for the last of them.
# (the quality-gated assets too, so that their checks' findings are in the published queue)
STEWARD_QUEUE_DEPS = list(
    dict.fromkeys(
        [
            *(raw_asset_key(e) for e in ENTITIES),
            AssetKey(["marts", "dim_customer"]),
            AssetKey(["marts", "customer_source_map"]),
            # segmentation writes steward.findings__segmentation (unassigned customers, ...)
            AssetKey(["segments", "customer_segments"]),
            *QUALITY_GATED_ASSETS,
        ]
    )
)


@asset(
    key=AssetKey(["steward", "steward_queue"]),
    group_name="quality",
    deps=STEWARD_QUEUE_DEPS,
    kinds={"duckdb"},
    description="Every open finding for data stewards (rejected rows and files, schema drift, ...), "
    "in DESIGN.md's schema; also written to <home>/steward/.",
)
def steward_queue(
    context: AssetExecutionContext, warehouse: WarehouseResource
) -> MaterializeResult:
    with warehouse.connect() as con:
        n_open = refresh_steward_queue(con, context.run_id, warehouse.paths.steward)
        summary = summarize_queue(con)
    return MaterializeResult(
        metadata={
            "open_findings": n_open,
            "by_kind": {f"{sev}/{kind}": n for sev, kind, n in summary},
        }
    )
