"""The identity step between dbt staging and the customer marts."""

from dagster import AssetExecutionContext, AssetKey, MaterializeResult, asset

from dagster_project.identity.resolve import link_records
from dagster_project.resources import WarehouseResource


@asset(
    key=AssetKey(["identity", "customer_source_map"]),
    group_name="identity",
    deps=[
        # the staged CRM accounts and ERP customers, normalised for matching by dbt
        AssetKey(["intermediate", "int_customer_match_records"]),
        # only for the revenue an uncertain match touches (steward queue)
        AssetKey(["intermediate", "int_order_lines_converted_to_eur"]),
    ],
    kinds={"duckdb", "python"},
    description="Every CRM account and ERP customer -> one stable customer_id: deterministic "
    "evidence (VAT id), a Fellegi-Sunter model (Splink) confirming ERP links, shared domains "
    "and name/address matches, merger predecessors joined to their survivor, steward "
    "decisions from seeds/, clusters guarded against chaining; uncertain pairs -> steward queue.",
)
def customer_identity(
    context: AssetExecutionContext, warehouse: WarehouseResource
) -> MaterializeResult:
    with warehouse.connect() as con:
        result = link_records(con, context.run_id)
    linked = result.source_map
    methods = linked["match_method"].value_counts().to_dict()
    refused = result.links[~result.links["accepted"]]["refused_because"].value_counts().to_dict()
    return MaterializeResult(
        metadata={
            "source_records": len(linked),
            "customers": int(linked["customer_id"].nunique()),
            "uncertain_pairs_queued": len(result.uncertain),
            **{f"records.{m}": int(n) for m, n in methods.items()},
            **{f"links_refused.{r}": int(n) for r, n in refused.items()},
            **{k: round(v, 2) for k, v in result.timings.items()},
        }
    )
