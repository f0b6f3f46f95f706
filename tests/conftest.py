"""Shared fixtures: one small generated dataset and one pipeline run, reused by the e2e tests."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SEGMENTS = [sys.executable, "-m", "dagster_project.cli"]
E2E_CUSTOMERS = 150
E2E_YEARS = 2


def run_segments(
    *args: str, home: Path | None = None, check: bool = False
) -> subprocess.CompletedProcess:
    env = {**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    if home is not None:
        env["SEGMENTS_HOME"] = str(home)
    result = subprocess.run(
        [*SEGMENTS, *args], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=900
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"segments {' '.join(args)} exited {result.returncode}\n"
            f"stdout:\n{result.stdout[-4000:]}\nstderr:\n{result.stderr[-8000:]}"
        )
    return result


@pytest.fixture(scope="session")
def generated_landing(tmp_path_factory) -> Path:
    """A small landing folder + truth, generated once per test session."""
    root = tmp_path_factory.mktemp("generated")
    run_segments(
        "generate",
        "--out",
        str(root / "landing"),
        "--customers",
        str(E2E_CUSTOMERS),
        "--years",
        str(E2E_YEARS),
        "--seed",
        "7",
        "--quiet",
        check=True,
    )
    return root / "landing"


@pytest.fixture(scope="session")
def published_home(tmp_path_factory, generated_landing) -> Path:
    """A home folder after one successful `segments run` on the generated data."""
    home = tmp_path_factory.mktemp("home")
    shutil.copytree(generated_landing, home / "landing")
    shutil.copytree(generated_landing.parent / "truth", home / "truth")
    run_segments("run", "--home", str(home), check=True)
    return home


@pytest.fixture(scope="session")
def demo_home(tmp_path_factory) -> Path:
    """A home after `segments demo` (2,000 companies, seed 42): the scale the acceptance targets
    (matching F1, segment accuracy) are stated for. SEGMENTS_DEMO_HOME reuses an existing one."""
    existing = os.environ.get("SEGMENTS_DEMO_HOME")
    if existing:
        return Path(existing)
    home = tmp_path_factory.mktemp("demo")
    run_segments("demo", "--home", str(home), check=True)
    return home
