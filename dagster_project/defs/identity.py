"""The identity step between dbt staging and the customer marts."""

from dagster import AssetExecutionContext, AssetKey, MaterializeResult, asset

from dagster_project.identity.resolve import link_records
from dagster_project.resources import WarehouseResource

STAGING_GATE_STEP = "quality_gates_staging"  # defs/quality.py: quality_gates_<layer>


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
        # the staging suites are validated beside identity, for the gate step after it
        _validate_staging_ahead(context, warehouse)
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


def _validate_staging_ahead(context: AssetExecutionContext, warehouse: WarehouseResource) -> None:
    """Start quality/ahead.py's validation when this run's staging gate step will take it."""
    run = context.run
    if run.step_keys_to_execute is not None and STAGING_GATE_STEP not in run.step_keys_to_execute:
        return
    checks = run.asset_check_selection
    if checks is not None and not any(key.asset_key.path[0] == "staging" for key in checks):
        return
    from dagster_project.quality import ahead
    from dagster_project.quality.suites import project_suites, suites_by_layer
    from dagster_project.settings import settings
    from dagster_project.warehouse import duckdb_config

    suites = suites_by_layer(project_suites()).get("staging", [])
    ahead.start(warehouse.paths.warehouse, suites, context.run_id, settings(), duckdb_config())
