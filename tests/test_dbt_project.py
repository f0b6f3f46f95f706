"""The dbt project: its raw sources match the source contract, and build + unit tests pass."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from dagster_project.ingest import load_contract
from dagster_project.paths import DBT_PROJECT_DIR

DBT = str(Path(sys.executable).with_name("dbt"))
RAW_TYPES = {
    "str": "varchar",
    "int": "bigint",
    "dec": "decimal(18,4)",
    "date": "date",
    "ts": "timestamp with time zone",
    "bool": "boolean",
}


def test_raw_sources_declare_exactly_the_contract_columns_and_types():
    sources = yaml.safe_load((DBT_PROJECT_DIR / "models/staging/_raw__sources.yml").read_text())
    raw = next(s for s in sources["sources"] if s["name"] == "raw")
    declared = {
        t["name"]: {c["name"]: c.get("data_type", "").lower() for c in t["columns"]}
        for t in raw["tables"]
    }
    for entity, spec in load_contract().entities.items():
        table = entity.replace("/", "__")
        assert table in declared, f"source raw.{table} missing"
        contract_cols = {name: RAW_TYPES[col.type] for name, col in spec.columns.items()}
        got = {k: v for k, v in declared[table].items() if not k.startswith("_")}
        assert got == contract_cols, f"raw.{table} differs from contract.yml"


def test_dbt_build_with_unit_tests_passes_on_the_fixture_warehouse(tmp_path):
    warehouse = tmp_path / "fixture.duckdb"
    env = {
        **os.environ,
        "SEGMENTS_WAREHOUSE": str(warehouse),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    subprocess.run(
        [sys.executable, str(DBT_PROJECT_DIR / "dev/make_fixture_warehouse.py"), str(warehouse)],
        env=env,
        check=True,
        capture_output=True,
    )
    target = tmp_path / "target"
    result = subprocess.run(
        [
            DBT,
            "build",
            "--profiles-dir",
            ".",
            "--target-path",
            str(target),
            "--log-path",
            str(tmp_path),
        ],
        cwd=DBT_PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-5000:]
    run_results = json.loads((target / "run_results.json").read_text())
    unit = [r for r in run_results["results"] if r["unique_id"].startswith("unit_test.")]
    assert len(unit) >= 8 and all(r["status"] == "pass" for r in unit)


def test_only_the_newest_dbt_invocation_folders_are_kept(tmp_path):
    from dagster_project.transform.project import prune_invocation_folders

    for i in range(14):
        folder = tmp_path / f"dbt_staging_and_facts-{i:07x}-abcdef{i % 10}"
        folder.mkdir()
        os.utime(folder, (1_700_000_000 + i, 1_700_000_000 + i))
    (tmp_path / "compiled").mkdir()  # dbt's own folders are not invocation folders
    (tmp_path / "partial_parse.msgpack").write_bytes(b"")

    prune_invocation_folders(tmp_path, keep=10)

    left = sorted(p.name for p in tmp_path.iterdir())
    assert "compiled" in left and "partial_parse.msgpack" in left
    kept = [name for name in left if name.startswith("dbt_staging_and_facts-")]
    assert kept == [f"dbt_staging_and_facts-{i:07x}-abcdef{i % 10}" for i in range(4, 14)]


def test_a_new_home_parses_in_the_background_and_the_dbt_steps_wait_for_it(tmp_path, monkeypatch):
    from dagster_project.paths import HomePaths
    from dagster_project.transform import project

    paths = HomePaths(tmp_path / "home").ensure()
    monkeypatch.setattr(project, "_parse_in_background", None)
    for name in (*project.PROFILE_ENVIRONMENT, "DBT_TARGET_PATH", "PATH"):
        # remembered by monkeypatch, so that the test leaves the environment as it found it
        monkeypatch.setenv(name, os.environ.get(name, "-"))
        if os.environ[name] == "-":
            monkeypatch.delenv(name)
    project.set_dbt_environment(paths)
    project.prepare_manifest()  # the definitions' manifest is current; the new home is not
    state = paths.dbt_target / "x"
    monkeypatch.setenv("DBT_TARGET_PATH", str(state))  # a second new home

    project.prepare_manifest(in_background=True)
    assert project._parse_in_background is not None  # returned before the parse finished
    project.finish_dbt_parse()

    assert (state / "partial_parse.msgpack").exists()
    assert json.loads((state / project.PREPARED_FOR_FILE).read_text()) == (
        project._profile_environment()
    )
    project.prepare_manifest(in_background=True)  # now current: nothing to parse
    assert project._parse_in_background is None


def test_the_dbt_resource_skips_dagster_dbts_in_process_adapter():
    """dagster-dbt builds a dbt adapter per cli() call only for row counts and column metadata;
    the resource turns it off. If an upgrade renames the hook, this fails instead of the runs
    silently paying ~2.4 s per dbt step again."""
    from dagster_dbt import DbtCliResource

    from dagster_project.defs.transform import dbt_resource

    assert callable(getattr(DbtCliResource, "_initialize_dbt_core_adapter", None))
    assert dbt_resource()._initialize_dbt_core_adapter(["build"]) is None


def test_the_dbt_resource_knows_the_venv_dbts_version_without_asking_it(monkeypatch):
    """dagster-dbt runs `dbt --version` once per run (~1.5 s) through its private
    `_cli_version`; the resource answers with the installed dbt-core's version: the answer the
    executable gives. If an upgrade renames the hook, this fails."""
    import re

    import dagster_dbt.core.resource
    from dagster_dbt import DbtCliResource

    from dagster_project.defs.transform import dbt_resource

    assert "_cli_version" in vars(DbtCliResource)
    asked = subprocess.run([DBT, "--version"], capture_output=True, text=True, check=True)

    def no_dbt_process(*args, **kwargs):
        raise AssertionError(f"dbt started: {args}")

    monkeypatch.setattr(dagster_dbt.core.resource, "check_output", no_dbt_process)
    version = dbt_resource()._cli_version
    assert str(version) == re.search(r"(\d+\.\d+\.\d+)", asked.stdout).group(1)
