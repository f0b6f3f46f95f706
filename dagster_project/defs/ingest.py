"""Ingest: one Dagster asset per contract entity (raw/<system>__<entity>), each with two blocking
checks (DESIGN.md severity policy): the share of rejected rows stays under the configured
threshold, and no extract file was rejected whole.

All entities load in one step on one warehouse connection: loading a small extract takes
tenths of a second, and a Dagster step per entity and per check (42 steps) cost more than the
loading itself. The UI still shows an asset and two checks per entity; a subset can be run.
"""

import os
from collections.abc import Iterator
from pathlib import Path

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetSpec,
    MaterializeResult,
    multi_asset,
)

from dagster_project.ingest import ingest_entity, load_contract
from dagster_project.ingest.scan_ahead import scan_ahead_for_ingest
from dagster_project.resources import WarehouseResource
from dagster_project.settings import settings

REJECTED_SHARE_CHECK = "rejected_share_within_threshold"
REJECTED_FILES_CHECK = "no_rejected_files"


def landing_folder(warehouse: WarehouseResource) -> Path:
    """SEGMENTS_LANDING overrides <home>/landing (`segments run --landing DIR`)."""
    return Path(os.environ.get("SEGMENTS_LANDING") or warehouse.paths.landing)


def raw_asset_key(entity: str) -> AssetKey:
    system, name = entity.split("/")
    return AssetKey(["raw", f"{system}__{name}"])


def _is_blocking(policy_key: str) -> bool:
    return settings().severity_of(policy_key) == "error"


def _severity(policy_key: str) -> AssetCheckSeverity:
    return AssetCheckSeverity.ERROR if _is_blocking(policy_key) else AssetCheckSeverity.WARN


def _check_specs(entity: str) -> list[AssetCheckSpec]:
    key = raw_asset_key(entity)
    max_share = settings().ingest.max_rejected_share
    return [
        AssetCheckSpec(
            REJECTED_SHARE_CHECK,
            asset=key,
            blocking=_is_blocking("rejected_rows_share"),
            description=f"At most {max_share:.0%} of {entity} rows rejected; more stops "
            "publication.",
        ),
        AssetCheckSpec(
            REJECTED_FILES_CHECK,
            asset=key,
            blocking=_is_blocking("rejected_file"),
            description="No extract file was rejected whole (missing required column, "
            "file name seen with different content).",
        ),
    ]


def _rejected_share_result(con, entity: str) -> AssetCheckResult:
    system, name = entity.split("/")
    policy = settings().ingest
    max_share = policy.max_rejected_share
    read, rejected = con.execute(
        """select coalesce(sum(rows_read), 0), coalesce(sum(rows_rejected), 0)
           from raw.load_log where source_system = ? and entity = ? and status = 'loaded'""",
        [system, name],
    ).fetchall()[0]
    share = rejected / read if read else 0.0
    blocks = policy.rejected_share_blocks(int(read), int(rejected))
    return AssetCheckResult(
        asset_key=raw_asset_key(entity),
        check_name=REJECTED_SHARE_CHECK,
        passed=not blocks,
        severity=_severity("rejected_rows_share"),
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


def _rejected_files_result(con, entity: str, run_id: str) -> AssetCheckResult:
    system, name = entity.split("/")
    rows = con.execute(
        """select source_file, message from raw.ingest_findings
           where source_system = ? and entity = ? and run_id = ?
             and kind in ('rejected_file', 'file_name_conflict')""",
        [system, name, run_id],
    ).fetchall()
    return AssetCheckResult(
        asset_key=raw_asset_key(entity),
        check_name=REJECTED_FILES_CHECK,
        passed=not rows,
        severity=_severity("rejected_file"),
        metadata={"rejected_files": len(rows)},
        description="; ".join(f"{f}: {m}" for f, m in rows[:5]) or None,
    )


ENTITIES = list(load_contract().entities)
_ENTITY_OF_KEY = {raw_asset_key(e): e for e in ENTITIES}


@multi_asset(
    name="raw_extracts",
    group_name="ingest",
    can_subset=True,
    specs=[
        AssetSpec(
            raw_asset_key(entity),
            kinds={"duckdb"},
            description=f"Every extract of `{entity}` in the landing folder, typed, with file "
            "and line lineage; rows that break the contract go to raw.rejects.",
        )
        for entity in ENTITIES
    ],
    check_specs=[spec for entity in ENTITIES for spec in _check_specs(entity)],
)
def raw_extracts(
    context: AssetExecutionContext, warehouse: WarehouseResource
) -> Iterator[MaterializeResult | AssetCheckResult]:
    selected = [e for e in ENTITIES if raw_asset_key(e) in context.selected_asset_keys]
    landing = landing_folder(warehouse)
    # The selected entities' files are hashed and scanned ahead, in a helper thread, while DuckDB
    # loads the files before them.
    with (
        warehouse.connect() as con,
        scan_ahead_for_ingest(landing, selected, load_contract(), con) as scans,
    ):
        for entity in selected:
            result = ingest_entity(con, landing, entity, context.run_id, scans=scans)
            for finding in result.findings:
                context.log.warning(f"{entity}: {finding}")
            yield MaterializeResult(asset_key=raw_asset_key(entity), metadata=result.summary())
            yield _rejected_share_result(con, entity)
            yield _rejected_files_result(con, entity, context.run_id)
