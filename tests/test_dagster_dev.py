"""`dagster dev -w workspace.yaml` starts and serves the asset graph (checked over GraphQL)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ASSETS_QUERY = "{ assetNodes { assetKey { path } groupName hasAssetChecks } }"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def dagster_dev(tmp_path):
    port = _free_port()
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "dagster"), "SEGMENTS_HOME": str(tmp_path)}
    (tmp_path / "dagster").mkdir()
    dagster = Path(sys.executable).with_name("dagster")
    # Restore SIGINT's default so that the server stops on TERM when started from a script.
    cmd = [
        sys.executable,
        "-c",
        "import os,signal,sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execvp(sys.argv[1], sys.argv[1:])",
        str(dagster),
        "dev",
        "-w",
        "workspace.yaml",
        "-p",
        str(port),
        "-h",
        "127.0.0.1",
    ]
    log_file = open(tmp_path / "dagster-dev.log", "w")  # noqa: SIM115 (closed below)
    proc = subprocess.Popen(
        cmd,
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log_file,
        start_new_session=True,
    )
    try:
        yield f"http://127.0.0.1:{port}", tmp_path / "dagster-dev.log"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log_file.close()


def _wait_for_assets(url: str, log: Path, timeout: float = 120) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            r = requests.post(f"{url}/graphql", json={"query": ASSETS_QUERY}, timeout=5)
            nodes = r.json().get("data", {}).get("assetNodes") or []
            if nodes:
                return nodes
        except (requests.RequestException, ValueError):
            pass
        time.sleep(2)
    raise AssertionError(f"dagster dev served no assets in {timeout}s:\n{log.read_text()[-3000:]}")


def test_dagster_dev_shows_the_asset_graph_by_stage(dagster_dev):
    url, log = dagster_dev
    nodes = _wait_for_assets(url, log)
    keys = {"/".join(n["assetKey"]["path"]): n for n in nodes}
    assert "raw/crm__accounts" in keys and "raw/erp__order_lines" in keys
    assert "staging/stg_crm__accounts" in keys and "marts/dim_customer" in keys
    assert "identity/customer_source_map" in keys and "published/analytics" in keys
    groups = {n["groupName"] for n in nodes}
    assert {"ingest", "staging", "identity", "marts", "publish"} <= groups
    assert keys["raw/crm__accounts"]["hasAssetChecks"]
