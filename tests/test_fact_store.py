"""The fact store (dagster_project/fact_store.py): where dbt builds the facts, and who sees it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import duckdb
import jinja2
import yaml
from dagster import AssetKey

from dagster_project.fact_store import (
    CATALOG,
    copy_open_database,
    fact_store_path,
    reset_before_rebuild,
    views_over_fact_store,
)
from dagster_project.paths import DBT_PROJECT_DIR, HomePaths
from dagster_project.settings import settings
from dagster_project.transform.project import PROFILE_ENVIRONMENT, set_dbt_environment
from dagster_project.warehouse import connect


def _profile_attachments(env: dict[str, str]) -> dict[str, dict]:
    """profiles.yml's attach entries per target, rendered as dbt renders them."""
    profile = yaml.safe_load((DBT_PROJECT_DIR / "profiles.yml").read_text(encoding="utf-8"))
    found = {}
    for target, output in profile["segments"]["outputs"].items():
        for attachment in output.get("attach", []):
            if attachment["alias"] == CATALOG:
                found[target] = {
                    **attachment,
                    "path": _render(attachment["path"], env),
                    "options": {
                        name: _render(str(value), env)
                        for name, value in attachment.get("options", {}).items()
                    },
                }
    return found


def _render(text: str, env: dict[str, str]) -> str:
    return jinja2.Template(text).render(env_var=lambda name, default=None: env.get(name, default))


def test_dbt_and_the_pipeline_agree_on_where_the_fact_store_is(tmp_path):
    warehouse, replay = tmp_path / "warehouse.duckdb", tmp_path / "history" / "replay.duckdb"
    attachments = _profile_attachments(
        {"SEGMENTS_WAREHOUSE": str(warehouse), "SEGMENTS_REPLAY_DB": str(replay)}
    )
    assert attachments["dev"]["path"] == str(tmp_path / "warehouse.facts.duckdb")
    assert attachments["dev"]["path"] == str(fact_store_path(warehouse))
    # a replay writes its facts into its own store, never the warehouse's
    assert attachments["as_of_replay"]["path"] == str(fact_store_path(replay))
    # written once in the storage version the publication promises: the profile's default is the
    # config's, and a version set in the config reaches dbt through the environment
    assert attachments["dev"]["options"]["storage_version"] == settings().publish.storage_version
    older = _profile_attachments(
        {"SEGMENTS_WAREHOUSE": str(warehouse), "SEGMENTS_PUBLISH_STORAGE_VERSION": "v1.2.0"}
    )
    assert older["dev"]["options"]["storage_version"] == "v1.2.0"


def test_the_pipeline_passes_the_publication_storage_version_to_dbt(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "environ", dict(os.environ))  # this test's changes stay here
    set_dbt_environment(HomePaths(tmp_path))
    assert "SEGMENTS_PUBLISH_STORAGE_VERSION" in PROFILE_ENVIRONMENT  # re-parse when it changes
    assert os.environ["SEGMENTS_PUBLISH_STORAGE_VERSION"] == settings().publish.storage_version


def test_every_warehouse_connection_sees_the_facts_view(tmp_path):
    warehouse = tmp_path / "warehouse.duckdb"
    con = connect(warehouse)
    con.execute(f"create table {CATALOG}.main.facts as select 1 as line")
    con.execute("create schema marts")
    con.execute(f"create view marts.facts as select * from {CATALOG}.main.facts")
    assert views_over_fact_store(con, "warehouse") == {("marts", "facts")}
    assert views_over_fact_store(con) == {("marts", "facts")}  # the connection's own database
    con.close()
    reader = connect(warehouse, read_only=True)
    assert reader.execute("select count(*) from marts.facts").fetchone()[0] == 1
    reader.close()


def _manifest(tmp_path) -> str:
    node = {
        "resource_type": "model",
        "name": "facts",
        "schema": "main",
        "config": {"database": CATALOG, "meta": {"dagster": {"asset_key": ["marts", "facts"]}}},
    }
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps({"nodes": {"model.segments.facts": node}}), encoding="utf-8")
    return path


def test_the_store_starts_empty_when_its_facts_are_rebuilt(tmp_path):
    warehouse = tmp_path / "warehouse.duckdb"
    con = connect(warehouse)
    con.execute(f"create table {CATALOG}.main.facts as select range i from range(500000)")
    # a warehouse from before the store: the facts are a table where the view goes
    con.execute("create schema marts")
    con.execute("create table marts.facts as select 1 as line")
    con.close()
    store = fact_store_path(warehouse)
    size_before = store.stat().st_size

    assert not reset_before_rebuild([AssetKey(["marts", "other"])], warehouse, _manifest(tmp_path))
    assert store.stat().st_size == size_before

    assert reset_before_rebuild([AssetKey(["marts", "facts"])], warehouse, _manifest(tmp_path))
    con = connect(warehouse)
    assert (
        con.execute(
            f"select count(*) from duckdb_tables() where database_name in "
            f"('{CATALOG}', 'warehouse')"
        ).fetchone()[0]
        == 0
    )
    con.close()
    assert store.stat().st_size < size_before


def test_copying_the_open_fact_store_keeps_other_writers_out(tmp_path):
    """Publication copies the store while the run holds it open: no other process may then
    open it for writing (the copy must not release DuckDB's lock on it)."""
    warehouse = tmp_path / "warehouse.duckdb"
    con = connect(warehouse)
    con.execute(f"create table {CATALOG}.main.facts as select 1 as line")
    con.execute(f"checkpoint {CATALOG}")
    store, copy = fact_store_path(warehouse), tmp_path / "copy.duckdb"
    copy_open_database(store, copy)
    other_writer = subprocess.run(
        [sys.executable, "-c", f"import duckdb; duckdb.connect({str(store)!r})"],
        capture_output=True,
        text=True,
    )
    con.close()
    assert other_writer.returncode != 0
    assert "lock" in other_writer.stderr.lower()
    reader = duckdb.connect(str(copy), read_only=True)
    assert reader.execute("select line from facts").fetchall() == [(1,)]
    reader.close()
