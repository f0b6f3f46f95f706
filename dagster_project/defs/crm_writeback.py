"""The CRM write-back (dagster_project/segmentation/writeback.py): the table, built from the newest
history snapshot before publication, and the import files, written only after it published."""

from dagster import AssetKey, MaterializeResult, asset

from dagster_project.defs.segment_history import HISTORY_KEY
from dagster_project.resources import WarehouseResource
from dagster_project.segmentation.assign import read_seed
from dagster_project.segmentation.writeback import (
    CHANGED,
    WRITEBACK_TABLE,
    build_writeback,
    crm_accounts,
    newest_held_values,
    picklist_values,
    previously_published,
    write_writeback_files,
    write_writeback_table,
)

WRITEBACK_KEY = AssetKey(WRITEBACK_TABLE.split("."))
PUBLISHED_KEY = AssetKey(["published", "analytics"])


@asset(
    key=WRITEBACK_KEY,
    group_name="segmentation",
    deps=[
        HISTORY_KEY,
        AssetKey(["staging", "stg_identity__customer_source_map"]),
        AssetKey(["staging", "stg_crm__accounts"]),
    ],
    kinds={"duckdb", "python"},
    description="Per live CRM account: segment, sub_segment and value_profile picklist values "
    "(the held values of the newest history snapshot) and changed_since_last_publication.",
)
def crm_writeback(warehouse: WarehouseResource) -> MaterializeResult:
    with warehouse.connect() as con:
        held = newest_held_values(con)
        picklists = picklist_values(held, read_seed("segment_taxonomy"), read_seed("value_profiles"))
        previous = previously_published(con, warehouse.paths.published_db)
        rows = build_writeback(
            crm_accounts(con), picklists, previous,
            held["as_of"].max() if len(held) else None,
            held["scheme_version"].max() if len(held) else None,
        )
        write_writeback_table(con, rows)
    return MaterializeResult(
        metadata={
            "rows": len(rows),
            "changed_since_last_publication": int(rows[CHANGED].sum()),
            "first_publication": previous is None,
        }
    )


@asset(
    key=AssetKey(["published", "crm_writeback_files"]),
    group_name="publish",
    deps=[PUBLISHED_KEY, WRITEBACK_KEY],
    kinds={"csv"},
    description="<home>/published/crm_writeback/: the CRM import files (every account, and only "
    "the changed ones), written after the publication they belong to.",
)
def crm_writeback_files(warehouse: WarehouseResource) -> MaterializeResult:
    with warehouse.connect() as con:
        rows = con.execute(f"select * from {WRITEBACK_TABLE} order by account_id").df()
    folder = warehouse.paths.published / "crm_writeback"
    counts = write_writeback_files(rows, folder)
    return MaterializeResult(metadata={"folder": str(folder), **counts})
