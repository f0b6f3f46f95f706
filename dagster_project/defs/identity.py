"""The identity step between dbt staging and the customer marts."""

from dagster import AssetExecutionContext, AssetKey, MaterializeResult, asset

from dagster_project.identity.deterministic_links import link_records
from dagster_project.resources import WarehouseResource


@asset(
    key=AssetKey(["identity", "customer_source_map"]),
    group_name="identity",
    deps=[AssetKey(["staging", "stg_crm__accounts"]), AssetKey(["staging", "stg_erp__customers"])],
    kinds={"duckdb", "python"},
    description="Every CRM account and ERP customer -> one stable customer_id, with the "
    "evidence that linked it (erp_link, vat, singleton).",
)
def customer_identity(
    context: AssetExecutionContext, warehouse: WarehouseResource
) -> MaterializeResult:
    with warehouse.connect() as con:
        linked = link_records(con, context.run_id)
    methods = linked["match_method"].value_counts().to_dict()
    return MaterializeResult(
        metadata={
            "source_records": len(linked),
            "customers": int(linked["customer_id"].nunique()),
            **{f"records.{m}": int(n) for m, n in methods.items()},
        }
    )
