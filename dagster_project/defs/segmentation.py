"""The segmentation asset: industry segment, customer value, service tier and value profile per
customer (and per project), and the consolidated customer_segments table, as of the run's as-of
date, from the dbt marts and the rules in seeds/ and config/segmentation.yml
(dagster_project/segmentation/). Its steward findings go to steward.findings__segmentation."""

from collections.abc import Iterator

from dagster import AssetExecutionContext, AssetKey, AssetSpec, MaterializeResult, multi_asset

from dagster_project.as_of import resolve_as_of
from dagster_project.resources import WarehouseResource
from dagster_project.run_context import as_of_for_run
from dagster_project.segmentation.assign import (
    SCHEMA,
    TABLES,
    TableWriter,
    run_segmentation,
    write_findings,
)
from dagster_project.segmentation.settings import segmentation_settings

INPUTS = [
    AssetKey(["marts", "customer_features"]),
    AssetKey(["marts", "fct_order_lines"]),
    AssetKey(["marts", "dim_customer"]),
    AssetKey(["staging", "stg_crm__value_driver_ratings"]),
    AssetKey(["staging", "stg_crm__opportunities"]),
    AssetKey(["staging", "stg_crm__accounts"]),
    AssetKey(["staging", "stg_identity__customer_source_map"]),
    AssetKey(["intermediate", "int_customer_legacy_labels_mapped"]),
    AssetKey(["intermediate", "int_customer_source_records"]),
]


@multi_asset(
    name="customer_segmentation",
    group_name="segmentation",
    specs=[
        AssetSpec(
            AssetKey([SCHEMA, table]),
            deps=INPUTS,
            description=description,
            kinds={"duckdb", "python"},
        )
        for table, description in TABLES.items()
    ],
)
def customer_segmentation(
    context: AssetExecutionContext, warehouse: WarehouseResource
) -> Iterator[MaterializeResult]:
    settings = segmentation_settings()
    with warehouse.connect() as con:
        as_of = as_of_for_run(con, context.run_id) or resolve_as_of(con, None)
        if as_of is None:
            raise ValueError("no as-of date: no events have been landed yet")
        # each table is stored while the next ones are computed
        with TableWriter(con) as writer:
            result = run_segmentation(con, as_of, settings, on_table=writer.write)
        write_findings(con, result.findings)
    counts = {table: writer.counts[table] for table in TABLES}
    tiers = result.tables["customer_service_tier"]["service_tier"].value_counts().to_dict()
    sources = result.tables["customer_industry_segments"]["segment_source"].value_counts().to_dict()
    for table, rows in counts.items():
        metadata = {"rows": rows, "as_of": str(as_of), "scheme_version": settings.scheme_version}
        if table == "customer_value":
            metadata["clv_model"] = result.clv_fit.reason
        if table == "customer_service_tier":
            metadata.update({f"tier.{tier}": int(n) for tier, n in tiers.items()})
        if table == "customer_industry_segments":
            metadata.update({f"source.{source}": int(n) for source, n in sources.items()})
            metadata["steward_findings"] = len(result.findings)
        yield MaterializeResult(asset_key=AssetKey([SCHEMA, table]), metadata=metadata)
