"""One Dagster asset per contract entity (raw/<system>__<entity>), plus a blocking check each:
the share of rejected rows must stay under the configured threshold (DESIGN.md severity policy)."""

import os
from pathlib import Path

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    MaterializeResult,
    asset,
    asset_check,
)

from dagster_project.ingest import ingest_entity, load_contract
from dagster_project.resources import WarehouseResource
from dagster_project.settings import settings


def landing_folder(warehouse: WarehouseResource) -> Path:
    """SEGMENTS_LANDING overrides <home>/landing (`segments run --landing DIR`)."""
    return Path(os.environ.get("SEGMENTS_LANDING") or warehouse.paths.landing)


def raw_asset_key(entity: str) -> AssetKey:
    system, name = entity.split("/")
    return AssetKey(["raw", f"{system}__{name}"])


def _build_ingest_asset(entity: str) -> AssetsDefinition:
    key = raw_asset_key(entity)

    @asset(
        key=key,
        group_name="ingest",
        kinds={"duckdb"},
        description=f"Every extract of `{entity}` in the landing folder, typed, with file and line "
        "lineage; rows that break the contract go to raw.rejects.",
    )
    def _ingest(context: AssetExecutionContext, warehouse: WarehouseResource) -> MaterializeResult:
        with warehouse.connect() as con:
            result = ingest_entity(con, landing_folder(warehouse), entity, context.run_id)
        for finding in result.findings:
            context.log.warning(f"{entity}: {finding}")
        return MaterializeResult(metadata=result.summary())

    return _ingest


def _build_reject_share_check(entity: str):
    key = raw_asset_key(entity)
    system, name = entity.split("/")
    policy = settings().ingest
    max_share = policy.max_rejected_share
    blocking = settings().severity_of("rejected_rows_share") == "error"

    @asset_check(
        asset=key,
        name="rejected_share_within_threshold",
        blocking=blocking,
        description=f"At most {max_share:.0%} of {entity} rows rejected; more stops publication.",
    )
    def _check(
        context: AssetCheckExecutionContext, warehouse: WarehouseResource
    ) -> AssetCheckResult:
        with warehouse.connect() as con:
            read, rejected = con.execute(
                """select coalesce(sum(rows_read), 0), coalesce(sum(rows_rejected), 0)
                   from raw.load_log where source_system = ? and entity = ? and status = 'loaded'""",
                [system, name],
            ).fetchall()[0]
        share = rejected / read if read else 0.0
        blocks = policy.rejected_share_blocks(int(read), int(rejected))
        return AssetCheckResult(
            passed=not blocks,
            severity=AssetCheckSeverity.ERROR if blocking else AssetCheckSeverity.WARN,
            metadata={
                "rows_read": int(read),
                "rows_rejected": int(rejected),
                "rejected_share": float(share),
                "threshold": max_share,
            },
            description=None
            if not blocks
            else f"{rejected} of {read} rows of {entity} rejected ({share:.1%} > {max_share:.0%}): "
            "see the steward queue (kind rejected_row).",
        )

    return _check


def _build_rejected_files_check(entity: str):
    key = raw_asset_key(entity)
    system, name = entity.split("/")
    blocking = settings().severity_of("rejected_file") == "error"

    @asset_check(
        asset=key,
        name="no_rejected_files",
        blocking=blocking,
        description="No extract file was rejected whole (missing required column, "
        "file name seen with different content).",
    )
    def _check(
        context: AssetCheckExecutionContext, warehouse: WarehouseResource
    ) -> AssetCheckResult:
        with warehouse.connect() as con:
            rows = con.execute(
                """select source_file, message from raw.ingest_findings
                   where source_system = ? and entity = ? and run_id = ?
                     and kind in ('rejected_file', 'file_name_conflict')""",
                [system, name, context.run.run_id],
            ).fetchall()
        return AssetCheckResult(
            passed=not rows,
            severity=AssetCheckSeverity.ERROR if blocking else AssetCheckSeverity.WARN,
            metadata={"rejected_files": len(rows)},
            description="; ".join(f"{f}: {m}" for f, m in rows[:5]) or None,
        )

    return _check


ENTITIES = list(load_contract().entities)
ingest_assets = [_build_ingest_asset(e) for e in ENTITIES]
ingest_checks = [
    c for e in ENTITIES for c in (_build_reject_share_check(e), _build_rejected_files_check(e))
]
