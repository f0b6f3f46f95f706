"""The dbt project handle, built once; the manifest is an explicit build step, never an import side effect."""

from __future__ import annotations

import json
import os
import sys
from functools import cache
from pathlib import Path

from dagster_dbt import DbtProject

from dagster_project.paths import DBT_PROJECT_DIR, HomePaths

# What profiles.yml reads from the environment. dbt's partial parsing is only valid for the
# profile it was parsed with, so the manifest is re-prepared when any of these change.
PROFILE_ENVIRONMENT = (
    "SEGMENTS_WAREHOUSE",
    "SEGMENTS_DUCKDB_MEMORY_LIMIT",
    "SEGMENTS_DUCKDB_THREADS",
)
PREPARED_FOR_FILE = "prepared_for.json"


def set_dbt_environment(paths: HomePaths) -> None:
    """profiles.yml reads the warehouse path and DuckDB limits from the environment: one truth
    for where the warehouse is and how much memory DuckDB may take (config/pipeline.yml)."""
    from dagster_project.warehouse import duckdb_config

    limits = duckdb_config()
    os.environ["SEGMENTS_WAREHOUSE"] = str(paths.warehouse)
    os.environ["SEGMENTS_DUCKDB_MEMORY_LIMIT"] = str(limits["memory_limit"])
    os.environ["SEGMENTS_DUCKDB_THREADS"] = str(limits["threads"])
    _put_dbt_on_path()


def _put_dbt_on_path() -> None:
    """dagster-dbt looks for `dbt` on PATH: make it the one installed beside this interpreter
    (`make ui`, cron or the tests may start us without the venv activated)."""
    venv_bin = str(Path(sys.executable).parent)
    if venv_bin not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = venv_bin + os.pathsep + os.environ.get("PATH", "")
    os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")


@cache
def dbt_project() -> DbtProject:
    os.environ.setdefault("SEGMENTS_WAREHOUSE", str(HomePaths.from_env().warehouse))
    _put_dbt_on_path()
    project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)
    project.prepare_if_dev()  # only under `dagster dev`
    return project


def manifest_is_stale(project: DbtProject) -> bool:
    """True when a dbt model, macro, seed or config file changed since the manifest was built."""
    manifest: Path = project.manifest_path
    if not manifest.exists():
        return True
    built = manifest.stat().st_mtime
    watched = [DBT_PROJECT_DIR, DBT_PROJECT_DIR.parent / "seeds"]
    for root in watched:
        for path in root.rglob("*"):
            if "target" in path.parts or "logs" in path.parts:
                continue
            if path.suffix in {".sql", ".yml", ".yaml", ".csv"} and path.stat().st_mtime > built:
                return True
    return False


def _profile_environment() -> dict[str, str]:
    return {name: os.environ.get(name, "") for name in PROFILE_ENVIRONMENT}


def _stamp_path(project: DbtProject) -> Path:
    # target_path is relative to the dbt project folder, not to the working directory
    return Path(project.project_dir) / project.target_path / PREPARED_FOR_FILE


def _prepared_for(project: DbtProject) -> dict[str, str] | None:
    stamp = _stamp_path(project)
    try:
        return json.loads(stamp.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def prepare_manifest(force: bool = False) -> Path:
    """Run `dbt parse` when the manifest is missing or stale, or was parsed for another profile
    environment (CLI, tests and CI call this). Every dbt invocation of the run then starts from
    this parse instead of re-parsing the whole project (5-13 s each)."""
    project = dbt_project()
    wanted = _profile_environment()
    if force or manifest_is_stale(project) or _prepared_for(project) != wanted:
        project.preparer.prepare(project)
        _stamp_path(project).write_text(json.dumps(wanted), encoding="utf-8")
    return project.manifest_path
