"""The fact store: the 20M-row order-line facts in their own DuckDB file beside the warehouse.

dbt builds marts.fct_order_lines once, straight into `<warehouse>.facts.duckdb` (attached as
catalog `fact_store`, written in the storage version of the publication), and the warehouse
keeps a view `marts.fct_order_lines` over it. Publication then starts its new file as a byte
copy of the fact store instead of encoding 20M rows again (publish/write_audit_publish.py).

Every connection that opens the warehouse attaches the fact store too (warehouse.connect, the
GX engine, the as-of replay); a connection without it fails on the view with a catalog error,
never with other data. dbt attaches it through profiles.yml, which derives the same path.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path

import duckdb

from dagster_project.settings import settings

CATALOG = "fact_store"


def fact_store_path(database: Path | str) -> Path:
    """`.../warehouse.duckdb` -> `.../warehouse.facts.duckdb` (profiles.yml: the same rule)."""
    name = str(database)
    stem = name[: -len(".duckdb")] if name.endswith(".duckdb") else name
    return Path(stem + ".facts.duckdb")


def _wal(path: Path) -> Path:
    return path.with_name(path.name + ".wal")


def attach_fact_store(
    con: duckdb.DuckDBPyConnection, database: Path | str, read_only: bool = False
) -> bool:
    """Attach the fact store of `database` (the warehouse, or a replay's scratch file) to `con`.
    Read-only and not built yet (a new home): nothing to attach, returns False."""
    path = fact_store_path(database)
    if read_only and not path.exists():
        return False
    if read_only:
        options = " (read_only)"
    elif not path.exists():
        # Created in the storage version the publication promises its readers (profiles.yml's
        # attach says the same; the publish step checks it before it copies the file). An
        # existing file keeps its own: DuckDB refuses to attach it with another.
        options = f" (storage_version '{settings().publish.storage_version}')"
    else:
        options = ""
    con.execute(f"attach if not exists '{path}' as {CATALOG}{options}")
    return True


def copy_open_database(source: Path, target: Path) -> None:
    """Byte copy of a DuckDB file this process has open (the fact store), keeping DuckDB's lock
    on it. The lock is a POSIX record lock, which the kernel drops when the process closes any
    descriptor of the file: a copy made here (shutil) would let another process open the store
    read-write for the rest of the run. A child process's descriptors do not count."""
    if os.name == "posix":
        subprocess.run(["cp", "--", str(source), str(target)], check=True, capture_output=True)
    else:  # Windows locks the file itself; reading it does not release that
        shutil.copyfile(source, target)


def discard_fact_store(database: Path | str) -> None:
    """Delete the fact store of `database` (and its WAL); dbt creates it afresh when it attaches.
    A rebuilt table leaves its old blocks free inside a DuckDB file, and the publication is a
    byte copy of this file: recreated before every rebuild, it never carries free blocks or
    grows run over run."""
    path = fact_store_path(database)
    for file in (path, _wal(path)):
        file.unlink(missing_ok=True)


def fact_store_asset_keys(manifest_path: Path) -> set[tuple[str, ...]]:
    """Asset keys (as tuples) of the dbt models the manifest builds into the fact store."""
    manifest = json.loads(Path(manifest_path).read_text(encoding="utf-8"))
    keys = set()
    for node in manifest["nodes"].values():
        config = node.get("config", {})
        if node["resource_type"] == "model" and config.get("database") == CATALOG:
            asset_key = (config.get("meta") or {}).get("dagster", {}).get("asset_key")
            keys.add(tuple(asset_key or (node["schema"], node["name"])))
    return keys


def warehouse_relation(node: dict) -> tuple[str, str]:
    """(schema, name) under which the warehouse shows a dbt model: a fact-store model through
    its view (named by its Dagster asset key), any other model as itself."""
    asset_key = ((node.get("config", {}).get("meta") or {}).get("dagster", {})).get("asset_key")
    if node.get("config", {}).get("database") == CATALOG and asset_key:
        return asset_key[0], asset_key[-1]
    return node["schema"], node.get("alias") or node["name"]


def views_over_fact_store(
    con: duckdb.DuckDBPyConnection, catalog: str | None = None
) -> set[tuple[str, str]]:
    """(schema, name) of the views in `catalog` (default: the connection's own database, the
    warehouse) that read the fact store (marts.fct_order_lines): they resolve only where a fact
    store is attached."""
    return set(
        con.execute(
            "select schema_name, view_name from duckdb_views() "
            "where database_name = coalesce(?, current_database()) and sql ilike ?",
            [catalog, f"%{CATALOG}.%"],
        ).fetchall()
    )


def reset_before_rebuild(
    selected_asset_keys: Iterable, warehouse: Path, manifest_path: Path
) -> bool:
    """Called by the dbt step before dbt runs: when it rebuilds a fact-store model, start that
    from a new, empty fact store (see discard_fact_store). A warehouse from before the fact
    store holds the facts as a table where the view goes: dropped here. Returns True if reset."""
    stored = fact_store_asset_keys(manifest_path)
    if not stored & {tuple(key.path) for key in selected_asset_keys}:
        return False
    discard_fact_store(warehouse)
    from dagster_project.warehouse import connect

    con = connect(warehouse)
    try:
        for schema, name in sorted(stored):
            con.execute(
                "select table_schema, table_name from information_schema.tables where "
                "table_catalog = current_database() and table_schema = ? and table_name = ? "
                "and table_type = 'BASE TABLE'",
                [schema, name],
            )
            if con.fetchall():
                con.execute(f'drop table "{schema}"."{name}"')
    finally:
        con.close()
    return True
