"""The facts' copy and Parquet, prepared in the background while segmentation runs: taken over
by publish when still current, never visible before the swap, never left behind."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import duckdb
import pytest
import yaml
from dagster import AssetKey, DagsterInstance, RunsFilter

from dagster_project.fact_store import CATALOG as FACT_STORE
from dagster_project.fact_store import discard_fact_store
from dagster_project.paths import HomePaths
from dagster_project.publish import prestage, publish_marts, write_audit_publish
from dagster_project.settings import SETTINGS_ENV, SETTINGS_FILE
from dagster_project.warehouse import connect
from tests.conftest import PROJECT_ROOT, run_segments

TABLES = ["dim_customer", "marts.facts"]


def _build_facts(con, lines: int, factor: float = 1.5) -> None:
    """The facts in the fact store behind the view marts.facts, as dbt leaves them."""
    con.execute(f"create table {FACT_STORE}.main.facts (line_id varchar not null, amount double)")
    con.execute(
        f"insert into {FACT_STORE}.main.facts "
        f"select 'L-' || i, i * {factor} from range({lines}) t(i)"
    )
    con.execute(f"checkpoint {FACT_STORE}")


def _warehouse(home: Path, lines: int):
    con = connect(home / "warehouse.duckdb")
    con.execute("create table dim_customer as select 'CU-' || i as customer_id from range(3) t(i)")
    con.execute("create schema marts")
    _build_facts(con, lines)
    con.execute(f"create view marts.facts as select * from {FACT_STORE}.main.facts")
    return con


def _publish(con, paths, run_id, prestaged=None):
    return publish_marts(
        con,
        paths,
        run_id,
        TABLES,
        data_through=None,
        git_revision="abc",
        config_hash="cfg",
        prestaged=prestaged,
    )


def _pending(paths: HomePaths) -> list[str]:
    return sorted(p.name for p in paths.published.glob(".*") if p.name != ".parquet.tmp")


def _checksums(folder: Path) -> dict[str, str]:
    """Every file (and symlink target) under `folder`, by its relative path."""
    sums = {}
    for path in sorted(folder.rglob("*")):
        if path.is_symlink():
            sums[str(path.relative_to(folder))] = str(path.readlink())
        elif path.is_file():
            sums[str(path.relative_to(folder))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return sums


def _published_rows(paths: HomePaths) -> dict[str, list]:
    reader = duckdb.connect(str(paths.published_db), read_only=True)
    try:
        return {
            table: reader.execute(f"select * from {table} order by all").fetchall()
            for table in ("dim_customer", "facts")
        }
    finally:
        reader.close()


def _publish_directly_and_prestaged(tmp_path) -> tuple[HomePaths, HomePaths]:
    """The same warehouse published twice: without a prestage, and with one started first (as
    the marts gate does). Both leave no pending files and publish the same rows."""
    direct, early = HomePaths(tmp_path / "direct"), HomePaths(tmp_path / "early")
    for paths in (direct, early):
        paths.home.mkdir()
        con = _warehouse(paths.home, 50_000)
        if paths is early:
            prestage.start(early, "gate-run")
        result = _publish(con, paths, "run1", prestage.claim(paths))
        con.close()
        assert result.prestaged is (paths is early)
        assert result.from_fact_store == ["facts"]
        assert _pending(paths) == []
    assert _published_rows(early) == _published_rows(direct)
    return direct, early


def test_publish_takes_over_the_prestaged_facts_and_publishes_the_same(tmp_path):
    direct, early = _publish_directly_and_prestaged(tmp_path)
    for table in ("facts", "dim_customer"):
        assert (early.published_parquet / f"{table}.parquet").read_bytes() == (
            direct.published_parquet / f"{table}.parquet"
        ).read_bytes()


def _export_running() -> bool:
    return any(thread.name == "publish-prestage" for thread in threading.enumerate())


def test_a_publication_failing_while_the_export_runs_leaves_the_old_one_and_no_files(tmp_path):
    """publish takes the new file before the facts' Parquet is done: when it fails then, the
    previous publication stays as it was, the export is stopped and its files are gone."""
    paths = HomePaths(tmp_path)
    con = _warehouse(tmp_path, 2_000_000)
    _publish(con, paths, "run1")
    before = _checksums(paths.published)

    prestage.start(paths, "gate-run")
    with pytest.raises(duckdb.CatalogException):
        publish_marts(
            con,
            paths,
            "run2",
            [*TABLES, "no_such_table"],
            data_through=None,
            git_revision="abc",
            config_hash="cfg",
            prestaged=prestage.claim(paths),
        )
    con.close()
    assert not _export_running()
    assert _checksums(paths.published) == before
    assert _pending(paths) == []


def test_publish_writes_the_facts_parquet_itself_when_the_export_fails(tmp_path, monkeypatch):
    write_parquet = write_audit_publish.write_parquet

    def failing_export(con, catalog, table, target):
        if catalog != "pub":  # the background export's own copy
            raise OSError("disk full")
        write_parquet(con, catalog, table, target)

    monkeypatch.setattr(write_audit_publish, "write_parquet", failing_export)
    direct, early = _publish_directly_and_prestaged(tmp_path)
    assert (early.published_parquet / "facts.parquet").read_bytes() == (
        direct.published_parquet / "facts.parquet"
    ).read_bytes()


def test_a_prestage_of_facts_rebuilt_since_is_not_published(tmp_path):
    paths = HomePaths(tmp_path)
    con = _warehouse(tmp_path, 1000)
    prestage.start(paths, "gate-run")
    prestaged = prestage.claim(paths)
    assert prestaged is not None
    # the facts are rebuilt (a new fact store) after the prestage copied them
    con.execute(f"detach {FACT_STORE}")
    discard_fact_store(paths.warehouse)
    con.close()
    con = connect(paths.warehouse)
    _build_facts(con, 1000, factor=2.0)

    result = _publish(con, paths, "run1", prestaged)
    con.close()
    assert not result.prestaged
    assert _published_rows(paths)["facts"][:2] == [("L-0", 0.0), ("L-1", 2.0)]
    parquet = paths.published_parquet / "facts.parquet"
    assert duckdb.connect().execute(f"select sum(amount) from '{parquet}'").fetchone()[0] == sum(
        i * 2.0 for i in range(1000)
    )
    assert _pending(paths) == []


def test_an_unclaimed_prestage_is_gone_when_the_process_ends(tmp_path):
    """A later gate blocks, the run ends: the export is stopped and its files removed."""
    con = _warehouse(tmp_path, 2_000_000)
    con.close()
    script = (
        "import sys, time\n"
        "from dagster_project.paths import HomePaths\n"
        "from dagster_project.publish import prestage\n"
        "paths = HomePaths(__import__('pathlib').Path(sys.argv[1]))\n"
        "prestage.start(paths, 'gate-run')\n"
        "while not any(paths.published.glob('.prestaged.*')):\n"
        "    time.sleep(0.01)\n"
        "print('pending files written')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "pending files written" in done.stdout
    assert _pending(HomePaths(tmp_path)) == []


def test_files_of_a_killed_prestage_are_removed_by_the_next_publication(tmp_path):
    paths = HomePaths(tmp_path)
    con = _warehouse(tmp_path, 1000)
    paths.published.mkdir()
    (paths.published / ".prestaged.killed.duckdb").write_bytes(b"half a file")
    (paths.published / ".prestaged.killed.parquet").mkdir()
    (paths.published / ".prestaged.killed.parquet" / "facts.parquet").write_bytes(b"half")

    result = _publish(con, paths, "run1", prestage.claim(paths))
    con.close()
    assert not result.prestaged
    assert _pending(paths) == []
    assert len(_published_rows(paths)["facts"]) == 1000


def _prestage_started(home: Path, job_name: str) -> bool:
    instance = DagsterInstance.from_config(str(home / "dagster"))
    try:
        run = instance.get_runs(filters=RunsFilter(job_name=job_name), limit=1)[0]
        return any(
            "fact exports started in the background" in (record.user_message or "")
            for record in instance.all_logs(run.run_id)
        )
    finally:
        instance.dispose()


def _published_metadata(home: Path) -> dict:
    instance = DagsterInstance.from_config(str(home / "dagster"))
    try:
        event = instance.get_latest_materialization_event(AssetKey(["published", "analytics"]))
        return {k: v.value for k, v in event.asset_materialization.metadata.items()}
    finally:
        instance.dispose()


def test_a_gate_blocking_after_the_prestage_leaves_the_publication_and_no_files(
    published_home, tmp_path, monkeypatch
):
    home = tmp_path / "home"
    shutil.copytree(published_home, home, symlinks=True, ignore=shutil.ignore_patterns(".run.lock"))
    paths = HomePaths(home)
    # The previous publication had every customer in one service tier: this run's shares moved
    # far more than allowed, and under this policy that blocks (segments gate, after marts).
    con = duckdb.connect(str(paths.published_db))
    con.execute("update customer_segments set service_tier = 'Bronze'")
    con.close()
    strict = yaml.safe_load(SETTINGS_FILE.read_text(encoding="utf-8"))
    strict["severity"]["distribution"] = "error"
    policy_file = tmp_path / "strict.yml"
    policy_file.write_text(yaml.safe_dump(strict), encoding="utf-8")
    before = _checksums(paths.published)

    with monkeypatch.context() as env:
        env.setenv(SETTINGS_ENV, str(policy_file))
        blocked = run_segments("run", "--home", str(home), "--quiet")

    assert blocked.returncode == 3, blocked.stderr[-3000:]
    assert "segments/customer_segments: expectation_suite" in blocked.stderr
    assert _prestage_started(home, "segments_job")
    assert _checksums(paths.published) == before
    assert _pending(paths) == []

    # a prestage's files left by a killed process: gone after the next run, which publishes
    (paths.published / ".prestaged.killed.duckdb").write_bytes(b"half a file")
    published = run_segments("run", "--home", str(home), "--quiet")
    assert published.returncode == 0, published.stderr[-3000:]
    assert _checksums(paths.published) != before
    assert _pending(paths) == []
    assert _published_metadata(home)["fact_exports_prestaged"] is True
