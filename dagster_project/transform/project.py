"""The dbt project handle, built once; the manifest is an explicit build step, never an import side effect."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path

from dagster_dbt import DbtProject

from dagster_project.paths import DBT_PROJECT_DIR, HomePaths
from dagster_project.transform.dbt_forkserver import dbt_command

# What profiles.yml reads from the environment. dbt's partial parsing is only valid for the
# profile it was parsed with, so the manifest is re-prepared when any of these change.
PROFILE_ENVIRONMENT = (
    "SEGMENTS_WAREHOUSE",
    "SEGMENTS_DUCKDB_MEMORY_LIMIT",
    "SEGMENTS_DUCKDB_THREADS",
    "SEGMENTS_PUBLISH_STORAGE_VERSION",
)
PREPARED_FOR_FILE = "prepared_for.json"
PARSE_LOG_FILE = "dbt_parse.log"
# A run's dbt state (partial-parse state, one folder per dbt invocation) lives in its home
# (HomePaths.dbt_target): the warehouse path is part of dbt's partial-parse key, so a target
# folder shared by two homes made each re-parse the whole project whenever the other had run.
# The manifest the Dagster definitions load stays in dbt_project/target (the same for every home).

# dagster-dbt writes one folder per dbt invocation (<step>-<hash>-<hash>: compiled SQL, run
# results; ~7 MB each, two per run): the newest are kept for debugging, the rest pruned, so a
# home run daily does not grow by gigabytes a year.
KEEP_INVOCATION_FOLDERS = 10
_INVOCATION_FOLDER = re.compile(r"[A-Za-z0-9_]+-[0-9a-f]{7,}-[0-9a-f]{7,}")


def set_dbt_environment(paths: HomePaths) -> None:
    """profiles.yml reads the warehouse path, DuckDB limits and the fact store's storage version
    from the environment: one truth for where the warehouse is, how much memory DuckDB may take
    and which DuckDB readers the publication serves (config/pipeline.yml).
    DBT_TARGET_PATH puts dbt's state in the home (dagster-dbt starts every invocation from the
    partial-parse state there)."""
    from dagster_project.settings import settings
    from dagster_project.warehouse import duckdb_config

    limits = duckdb_config()
    os.environ["SEGMENTS_WAREHOUSE"] = str(paths.warehouse)
    os.environ["SEGMENTS_DUCKDB_MEMORY_LIMIT"] = str(limits["memory_limit"])
    os.environ["SEGMENTS_DUCKDB_THREADS"] = str(limits["threads"])
    os.environ["SEGMENTS_PUBLISH_STORAGE_VERSION"] = settings().publish.storage_version
    os.environ["DBT_TARGET_PATH"] = str(paths.dbt_target)
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


def manifest_is_stale(project: DbtProject, manifest: Path | None = None) -> bool:
    """True when a dbt model, macro, seed or config file changed since the manifest was built."""
    manifest = manifest or project.manifest_path
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


def _state_path(project: DbtProject) -> Path:
    """Where dbt parses to and dagster-dbt takes the partial-parse state from: DBT_TARGET_PATH
    (the home's, set by set_dbt_environment), else the project's target folder."""
    # target_path is relative to the dbt project folder, not to the working directory
    return Path(project.project_dir) / os.environ.get("DBT_TARGET_PATH", project.target_path)


def _prepared_for(state: Path) -> dict[str, str] | None:
    try:
        return json.loads((state / PREPARED_FOR_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def prepare_manifest(force: bool = False, in_background: bool = False) -> Path:
    """Run `dbt parse` when the manifest is missing or stale, or was parsed for another profile
    environment (CLI, tests and CI call this). Every dbt invocation of the run then starts from
    this parse instead of re-parsing the whole project (5-13 s each).

    `dbt parse` directly rather than dagster-dbt's preparer: the preparer marks every seed as
    changed in the partial-parse state (for state moved to another machine), so that every
    invocation re-parsed the 15 seeds and what reads them; here the project never moves.

    in_background: when only the home's state needs the parse (a new home, or other DuckDB
    limits) and the definitions' manifest is current, start the parse and return at once; the
    run's first dbt step waits for it (finish_dbt_parse). A new home's full parse (~5 s of one
    core) then overlaps ingest instead of delaying the run's start."""
    global _parse_in_background
    project = dbt_project()
    state = _state_path(project)
    wanted = _profile_environment()
    home_state_current = not (
        force
        or manifest_is_stale(project, state / "manifest.json")
        or _prepared_for(state) != wanted
    )
    own_state = state != Path(project.project_dir) / project.target_path
    if not home_state_current:
        parse = _start_dbt_parse(project, state)
        if in_background and own_state and not manifest_is_stale(project):
            _parse_in_background = (parse, state, wanted)
            return project.manifest_path
        _finish_parse(parse, state, wanted)
    if own_state and (not home_state_current or manifest_is_stale(project)):
        # the definitions' manifest: replaced in one step, another home may be loading it
        project.manifest_path.parent.mkdir(parents=True, exist_ok=True)
        staging = project.manifest_path.with_name(f"manifest.{os.getpid()}.json")
        shutil.copyfile(state / "manifest.json", staging)
        os.replace(staging, project.manifest_path)
    prune_invocation_folders(state)
    return project.manifest_path


# A `dbt parse` prepare_manifest started in the background: (process, state, environment).
_parse_in_background = None


def finish_dbt_parse() -> None:
    """Wait for the parse prepare_manifest started in the background, if any (the dbt steps
    call this before they invoke dbt, so that they start from its partial-parse state)."""
    global _parse_in_background
    if _parse_in_background is not None:
        pending, _parse_in_background = _parse_in_background, None
        _finish_parse(*pending)
        prune_invocation_folders(pending[1])


def _start_dbt_parse(project: DbtProject, state: Path) -> subprocess.Popen:
    """`dbt parse` into `state`, started as a plain process: dagster-dbt's cli() would first
    spend ~4 s of this process on `dbt --version` and an in-process dbt adapter, neither of
    which a parse needs. dbt's output goes to a log file beside the state, read on failure."""
    state.mkdir(parents=True, exist_ok=True)
    with open(state / PARSE_LOG_FILE, "wb") as log:
        return subprocess.Popen(
            # through the run's dbt fork server when it runs: dbt imported once, not again here
            [dbt_command(), "parse", "--quiet", "--target-path", str(state)],
            cwd=project.project_dir,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def _finish_parse(parse: subprocess.Popen, state: Path, wanted: dict[str, str]) -> None:
    if parse.wait() != 0:
        output = (state / PARSE_LOG_FILE).read_text(encoding="utf-8", errors="replace")
        raise RuntimeError(f"dbt parse failed (exit {parse.returncode}):\n{output[-4000:]}")
    (state / PREPARED_FOR_FILE).write_text(json.dumps(wanted), encoding="utf-8")


def prune_invocation_folders(state: Path, keep: int = KEEP_INVOCATION_FOLDERS) -> None:
    """Remove all but the newest `keep` per-invocation folders dagster-dbt left in `state`."""
    if not state.is_dir():
        return
    folders = sorted(
        (p for p in state.iterdir() if p.is_dir() and _INVOCATION_FOLDER.fullmatch(p.name)),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    for old in folders[keep:]:
        shutil.rmtree(old, ignore_errors=True)
