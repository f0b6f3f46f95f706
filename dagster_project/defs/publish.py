"""Publication as the last asset: it only runs when everything upstream passed its blocking checks."""

from dagster import AssetExecutionContext, AssetKey, MaterializeResult, asset

from dagster_project.defs.quality import QUALITY_GATED_ASSETS
from dagster_project.provenance import config_hash, git_revision
from dagster_project.publish import prestage, publish_marts
from dagster_project.resources import WarehouseResource
from dagster_project.run_context import as_of_for_run
from dagster_project.settings import settings

PUBLISHED_TABLES = settings().publish.tables


@asset(
    key=AssetKey(["published", "analytics"]),
    group_name="publish",
    # A blocking check only stops the checked asset's direct children: publication depends on
    # every quality-gated asset itself, so any failed gate (staging too) stops it.
    deps=list(
        dict.fromkeys([*(AssetKey(t.split(".")) for t in PUBLISHED_TABLES), *QUALITY_GATED_ASSETS])
    ),
    kinds={"duckdb", "parquet"},
    description="published/analytics.duckdb (read-only for BI, DuckDB 1.x readable) and "
    "published/parquet/, swapped in atomically (write-audit-publish).",
)
def published_analytics(
    context: AssetExecutionContext, warehouse: WarehouseResource
) -> MaterializeResult:
    policy = settings().publish
    # the facts' copy and Parquet, if the marts gate started them in the background
    prestaged = prestage.claim(warehouse.paths)
    try:
        with warehouse.connect() as con:
            result = publish_marts(
                con,
                warehouse.paths,
                context.run_id,
                PUBLISHED_TABLES,
                data_through=as_of_for_run(con, context.run_id),
                git_revision=git_revision(),
                config_hash=config_hash(),
                storage_version=policy.storage_version,
                keep_parquet_generations=policy.keep_parquet_generations,
                prestaged=prestaged,
            )
    finally:
        if prestaged:
            # its export may still run: stopped, and its files removed, if publish_marts was
            # never reached (it discards them itself; a second discard does nothing)
            prestaged.discard()
    if result.fact_store_unused_because:
        context.log.warning(
            f"every table encoded again: {result.fact_store_unused_because} "
            "(dagster_project/fact_store.py)"
        )
    return MaterializeResult(
        metadata={
            "analytics_file": str(result.analytics_file),
            "parquet_dir": str(result.parquet_dir),
            "copied_from_fact_store": ", ".join(result.from_fact_store) or "none",
            "fact_exports_prestaged": result.prestaged,
            **{f"rows.{t}": n for t, n in result.row_counts.items()},
        }
    )
