"""Write-audit-publish enforcement through the CLI: the same planted defect (an order line
whose order does not exist) blocks publication under a policy that makes it an error, and
publishes with a queued finding under the shipped policy where it is a warning. And the gates
run as one Dagster step per layer while the UI keeps one asset check per suite."""

from __future__ import annotations

import csv
import hashlib
import shutil
from pathlib import Path

import pytest
import yaml

from dagster_project.quality.suites import project_suites, suites_by_layer
from dagster_project.settings import SETTINGS_ENV, SETTINGS_FILE
from tests.conftest import run_segments

ORPHAN_ORDER = "0099999999"
ORPHAN_KEY = f"{ORPHAN_ORDER}-10"


def _checksum(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _queue_rows(home: Path) -> list[dict[str, str]]:
    with open(home / "steward" / "steward_queue.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _plant_orphan_order_line(landing: Path) -> None:
    """A newer ERP extract with one order line of an order no extract contains."""
    folder = landing / "erp" / "order_lines"
    existing = sorted(folder.glob("order_lines_*.csv"))[-1]
    with open(existing, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        template = next(reader)
        header = reader.fieldnames
    row = {**template, "order_id": ORPHAN_ORDER, "line_no": "10"}
    with open(folder / "order_lines_20251231T235900.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=header)
        writer.writeheader()
        writer.writerow(row)


@pytest.fixture()
def defective_home(published_home, tmp_path) -> Path:
    """A copy of a home that has published once, with the defect planted in its landing."""
    home = tmp_path / "home"
    shutil.copytree(published_home, home, ignore=shutil.ignore_patterns(".run.lock"))
    _plant_orphan_order_line(home / "landing")
    return home


def test_blocking_expectation_stops_publication_and_queues_the_keys(
    defective_home, tmp_path, monkeypatch
):
    strict = yaml.safe_load(SETTINGS_FILE.read_text(encoding="utf-8"))
    strict["severity"]["orphan_reference"] = "error"
    policy_file = tmp_path / "strict.yml"
    policy_file.write_text(yaml.safe_dump(strict), encoding="utf-8")
    monkeypatch.setenv(SETTINGS_ENV, str(policy_file))
    before = _checksum(defective_home / "published")

    result = run_segments("run", "--home", str(defective_home), "--quiet")

    assert result.returncode == 3, result.stderr[-3000:]
    # One paragraph: what was blocked, which check, how many rows, where to look.
    paragraph = result.stderr[result.stderr.index("BLOCKED") :]
    assert "staging/stg_erp__order_lines: expectation_suite" in paragraph
    assert "order_line_order_known: 1 row(s)" in paragraph
    assert "kind orphan_reference" in paragraph
    assert "segments review" in paragraph
    assert _checksum(defective_home / "published") == before
    queued = [r for r in _queue_rows(defective_home) if r["rule"] == "order_line_order_known"]
    assert [(r["record_key"], r["kind"], r["severity"]) for r in queued] == [
        (ORPHAN_KEY, "orphan_reference", "error")
    ]


def test_warning_only_run_publishes_and_queues_the_findings(defective_home):
    before = _checksum(defective_home / "published")

    result = run_segments("run", "--home", str(defective_home), "--quiet")

    assert result.returncode == 0, result.stderr[-3000:]
    assert _checksum(defective_home / "published") != before
    queued = [r for r in _queue_rows(defective_home) if r["rule"] == "order_line_order_known"]
    assert [(r["record_key"], r["kind"], r["severity"]) for r in queued] == [
        (ORPHAN_KEY, "orphan_reference", "warn")
    ]
    # Data Docs of the validation are in the home.
    assert (defective_home / "docs/gx/uncommitted/data_docs/local_site/index.html").exists()


def test_one_step_per_layer_and_one_check_per_suite(published_home):
    """The suites of a layer share one Dagster step (one GX context, one engine); the UI still
    shows one asset check per suite, on the table it checks."""
    from dagster import DagsterInstance, RunsFilter

    instance = DagsterInstance.from_config(str(published_home / "dagster"))
    try:
        # The fixture's first run (other tests rerun the pipeline in the same home).
        first_run = instance.get_runs(filters=RunsFilter(job_name="segments_job"))[-1]
        events = [
            record.dagster_event
            for record in instance.all_logs(first_run.run_id)
            if record.dagster_event is not None
        ]
    finally:
        instance.dispose()
    steps = {e.step_key for e in events if e.event_type_value == "STEP_START"}
    suite_checks = [
        e.event_specific_data
        for e in events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
        and e.event_specific_data.check_name == "expectation_suite"
    ]
    layers = suites_by_layer(project_suites())
    assert {s for s in steps if s.startswith("quality_gates_")} == {
        f"quality_gates_{layer}" for layer in layers
    }
    checked = sorted(".".join(e.asset_key.path) for e in suite_checks)
    assert checked == sorted(s.asset for s in project_suites())
