"""The post-hoc clustering of behavioural features against the rule-based service tiers
(dagster_project/segmentation/clustering.py)."""

from dagster import AssetKey, MaterializeResult, asset

from dagster_project.resources import WarehouseResource
from dagster_project.segmentation.clustering import (
    CROSSTAB_TABLE,
    cluster_customers,
    crosstab_against_tiers,
)
from dagster_project.segmentation.settings import segmentation_settings

CROSSTAB_KEY = AssetKey(CROSSTAB_TABLE.split("."))


@asset(
    key=CROSSTAB_KEY,
    group_name="segmentation",
    deps=[AssetKey(["marts", "customer_features"]), AssetKey(["segments", "customer_service_tier"])],
    kinds={"duckdb", "python"},
    description="Clusters of the standardised behavioural features (config clustering) against "
    "the rule-based service tiers: customers per cluster and tier, and a note per cluster on "
    "where data and rules disagree.",
)
def segment_cluster_crosstab(warehouse: WarehouseResource) -> MaterializeResult:
    settings = segmentation_settings()
    with warehouse.connect() as con:
        features = con.execute("select * from marts.customer_features order by customer_id").df()
        tiers = con.execute(
            "select customer_id, service_tier, as_of from segments.customer_service_tier"
        ).df()
        as_of = tiers["as_of"].max() if len(tiers) else None
        clustering = cluster_customers(features, settings.clustering)
        crosstab, ari = crosstab_against_tiers(
            clustering, tiers, [t.tier for t in settings.service_tier.tiers],
            settings.clustering, as_of, settings.scheme_version)
        con.register("crosstab_rows", crosstab)
        try:
            con.execute(f"create or replace table {CROSSTAB_TABLE} as select * from crosstab_rows")
        finally:
            con.unregister("crosstab_rows")
    notes = crosstab.drop_duplicates("cluster")["note"].tolist()
    return MaterializeResult(
        metadata={
            "rows": len(crosstab),
            "clustered_customers": len(clustering.labels),
            "adjusted_rand_index_vs_tiers": ari,
            "notes": "\n".join(notes),
        }
    )
