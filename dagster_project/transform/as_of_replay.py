"""Rebuild the dbt models that depend on the as-of date for an older as-of, without touching the
warehouse: what a backfill of an older segment-history month needs (features as of that month).

The models are found in the manifest (those calling the as-of macros, and what lies between them
and the relations asked for), and built by dbt itself, with the same SQL as in a run, into a
scratch DuckDB file (profile target `as_of_replay`) that overlays the warehouse: every other
warehouse relation appears there under its usual name as a view on the read-only warehouse. Code
that reads `marts.customer_features` etc. runs unchanged on a connection to the scratch file.
The replayed facts go into the scratch file's own fact store (dagster_project/fact_store.py),
never the warehouse's, which the replay does not attach at all.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import subprocess
from collections.abc import Iterable, Iterator
from pathlib import Path

import duckdb

from dagster_project.fact_store import (
    attach_fact_store,
    discard_fact_store,
    views_over_fact_store,
    warehouse_relation,
)
from dagster_project.paths import DBT_PROJECT_DIR, HomePaths
from dagster_project.transform.dbt_forkserver import venv_dbt
from dagster_project.warehouse import duckdb_config

# dbt macros through which a model reads the run's as-of date (dbt_project/macros/cleaning.sql).
AS_OF_MACROS = frozenset({"macro.segments.as_of_date", "macro.segments.is_within_as_of"})
REPLAY_TARGET = "as_of_replay"
WAREHOUSE_ALIAS = "warehouse"  # the catalog name the manifest's relations use
_SYSTEM_SCHEMAS = ("information_schema", "pg_catalog")


class ReplayError(RuntimeError):
    """dbt could not rebuild the as-of models."""


def _closure(start: set[str], edges: dict[str, list[str]], within: set[str]) -> set[str]:
    found, stack = set(start), list(start)
    while stack:
        for other in edges.get(stack.pop(), []):
            if other in within and other not in found:
                found.add(other)
                stack.append(other)
    return found


def models_to_replay(manifest: dict, needed: Iterable[tuple[str, str]]) -> list[str]:
    """Names of the models to rebuild so that the `needed` relations (schema, name) reflect
    another as-of: models reading the as-of (through a macro, however indirectly) and their
    descendants, restricted to the ancestors of what is needed."""
    macros = manifest.get("macros", {})
    macro_calls = {uid: m.get("depends_on", {}).get("macros", []) for uid, m in macros.items()}
    callers: dict[str, list[str]] = {}
    for uid, called in macro_calls.items():
        for callee in called:
            callers.setdefault(callee, []).append(uid)
    as_of_macros = _closure(set(AS_OF_MACROS), callers, set(macros) | set(AS_OF_MACROS))

    models = {uid: n for uid, n in manifest["nodes"].items() if n["resource_type"] == "model"}
    reading = {
        uid for uid, n in models.items() if as_of_macros & set(n["depends_on"]["macros"])
    }
    affected = _closure(reading, manifest["child_map"], set(models))
    by_relation = {warehouse_relation(n): uid for uid, n in models.items()}
    wanted = {by_relation[r] for r in needed if r in by_relation}
    upstream = _closure(wanted, manifest["parent_map"], set(models))
    return sorted(models[uid]["name"] for uid in affected & upstream)


def _relations(manifest: dict, names: list[str]) -> set[tuple[str, str]]:
    """The warehouse relations of these models (a fact-store model: its warehouse view)."""
    return {
        warehouse_relation(n)
        for n in manifest["nodes"].values()
        if n["resource_type"] == "model" and n["name"] in names
    }


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def build_overlay(scratch: Path, warehouse: Path, skip: set[tuple[str, str]]) -> int:
    """A fresh scratch file with a view per warehouse relation (except `skip`); returns views.
    Warehouse views over the fact store are left out too: they resolve to the replay's own fact
    store, which holds only what the replay rebuilds (the facts, whenever a replayed model reads
    them: they depend on the as-of)."""
    discard_replay(scratch)
    scratch.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(scratch), config=duckdb_config())
    try:
        con.execute(f"attach '{warehouse}' as {WAREHOUSE_ALIAS} (read_only)")
        relations = con.execute(
            "select table_schema, table_name from information_schema.tables "
            "where table_catalog = ? and table_schema not in (?, ?) order by 1, 2",
            [WAREHOUSE_ALIAS, *_SYSTEM_SCHEMAS],
        ).fetchall()
        skip = skip | views_over_fact_store(con, WAREHOUSE_ALIAS)
        views = 0
        for schema, table in relations:
            if (schema, table) in skip:
                continue
            con.execute(f"create schema if not exists {_quote(schema)}")
            con.execute(
                f"create view {_quote(schema)}.{_quote(table)} as select * from "
                f"{WAREHOUSE_ALIAS}.{_quote(schema)}.{_quote(table)}"
            )
            views += 1
        return views
    finally:
        con.close()


def replay_as_of(paths: HomePaths, as_of: dt.date, needed: Iterable[tuple[str, str]],
                 manifest_path: Path) -> tuple[Path, list[str]]:
    """Build the scratch database for `as_of`; returns its path and the models rebuilt.
    The caller must not hold a connection to the warehouse (dbt attaches it read-only)."""
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    models = models_to_replay(manifest, needed)
    workdir = paths.home / "history"
    scratch = workdir / f"{REPLAY_TARGET}.duckdb"
    build_overlay(scratch, paths.warehouse, skip=_relations(manifest, models))
    if not models:
        return scratch, models
    command = [
        venv_dbt(), "run", "--select", *models,
        "--target", REPLAY_TARGET,
        "--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR),
        # its own target folder: the run's manifest and partial-parse state stay untouched
        "--target-path", str(workdir / "dbt_target"), "--log-path", str(workdir / "dbt_logs"),
    ]
    env = {
        **os.environ,
        "SEGMENTS_AS_OF": as_of.isoformat(),
        "SEGMENTS_REPLAY_DB": str(scratch),
        "SEGMENTS_WAREHOUSE": str(paths.warehouse),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=DBT_PROJECT_DIR)
    if done.returncode != 0:
        raise ReplayError(
            f"dbt could not rebuild {models} as of {as_of} (exit {done.returncode}):\n"
            f"{done.stdout[-3000:]}{done.stderr[-2000:]}"
        )
    return scratch, models


@contextlib.contextmanager
def open_replay(scratch: Path, warehouse: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection on which the replayed relations and the warehouse's others resolve."""
    con = duckdb.connect(str(scratch), config=duckdb_config())
    try:
        con.execute(f"attach '{warehouse}' as {WAREHOUSE_ALIAS} (read_only)")
        attach_fact_store(con, scratch)  # the replay's own (profiles.yml: as_of_replay)
        yield con
    finally:
        con.close()


def discard_replay(scratch: Path) -> None:
    for path in (scratch, scratch.with_name(scratch.name + ".wal")):
        path.unlink(missing_ok=True)
    discard_fact_store(scratch)
