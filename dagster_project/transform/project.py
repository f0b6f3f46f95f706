"""The dbt project handle, built once; the manifest is an explicit build step, never an import side effect."""

from __future__ import annotations

import os
import sys
from functools import cache
from pathlib import Path

from dagster_dbt import DbtProject

from dagster_project.paths import DBT_PROJECT_DIR, HomePaths


def set_dbt_environment(paths: HomePaths) -> None:
    """profiles.yml reads the warehouse path from the environment: one truth for where it is."""
    os.environ["SEGMENTS_WAREHOUSE"] = str(paths.warehouse)
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


def prepare_manifest(force: bool = False) -> Path:
    """Run `dbt parse` when the manifest is missing or stale (CLI, tests and CI call this)."""
    project = dbt_project()
    if force or manifest_is_stale(project):
        project.preparer.prepare(project)
    return project.manifest_path
