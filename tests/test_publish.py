"""Write-audit-publish: readers never see a half-written file; a failure leaves the old one."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from dagster_project.paths import HomePaths
from dagster_project.publish import publish_marts
from dagster_project.publish.write_audit_publish import PublishAuditError


def _warehouse(tmp_path, customers: int):
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    con.execute(
        f"create or replace table dim_customer as select 'CU-' || i as customer_id from range({customers}) t(i)"
    )
    con.execute("create or replace table kpi as select 2024 as year, 10.5 as revenue_eur")
    return con


def _publish(con, paths, run_id):
    return publish_marts(
        con,
        paths,
        run_id,
        ["dim_customer", "kpi"],
        data_through=dt.date(2025, 12, 31),
        git_revision="abc",
        config_hash="cfg",
    )


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_publish_writes_readable_file_with_log_and_parquet(tmp_path):
    paths = HomePaths(tmp_path)
    con = _warehouse(tmp_path, 3)
    result = _publish(con, paths, "run1")
    con.close()
    assert result.row_counts == {"dim_customer": 3, "kpi": 1}

    reader = duckdb.connect(str(paths.published_db), read_only=True)
    assert reader.execute("select count(*) from dim_customer").fetchone()[0] == 3
    log = reader.execute(
        "select run_id, table_name, row_count, data_through from publish_log order by table_name"
    ).fetchall()
    assert log == [
        ("run1", "dim_customer", 3, dt.date(2025, 12, 31)),
        ("run1", "kpi", 1, dt.date(2025, 12, 31)),
    ]
    reader.close()
    assert (
        duckdb.connect()
        .execute(f"select count(*) from '{paths.published_parquet}/dim_customer.parquet'")
        .fetchone()[0]
        == 3
    )


def test_reader_with_old_file_open_keeps_consistent_view(tmp_path):
    paths = HomePaths(tmp_path)
    con = _warehouse(tmp_path, 3)
    _publish(con, paths, "run1")
    reader = duckdb.connect(str(paths.published_db), read_only=True)  # BI tool holding the file
    con.execute("insert into dim_customer values ('CU-new')")
    _publish(con, paths, "run2")  # must not wait on, nor break, the reader
    assert reader.execute("select count(*) from dim_customer").fetchone()[0] == 3
    reader.close()
    fresh = duckdb.connect(str(paths.published_db), read_only=True)
    assert fresh.execute("select count(*) from dim_customer").fetchone()[0] == 4
    assert fresh.execute("select count(distinct run_id) from publish_log").fetchone()[0] == 2
    fresh.close()
    con.close()


def test_failed_publication_leaves_previous_one_untouched(tmp_path):
    paths = HomePaths(tmp_path)
    con = _warehouse(tmp_path, 3)
    _publish(con, paths, "run1")
    before = _sha(paths.published_db)
    parquet_before = _sha(paths.published_parquet / "dim_customer.parquet")
    with pytest.raises(duckdb.CatalogException):
        publish_marts(
            con,
            paths,
            "run2",
            ["dim_customer", "missing_mart"],
            data_through=None,
            git_revision="abc",
            config_hash="cfg",
        )
    assert _sha(paths.published_db) == before
    assert _sha(paths.published_parquet / "dim_customer.parquet") == parquet_before
    assert not list(paths.published.glob(".analytics.*"))  # no half-written leftovers
    con.close()


def test_audit_error_type_is_exported():
    assert issubclass(PublishAuditError, RuntimeError)


def test_published_file_is_readable_in_a_separate_process_read_only(tmp_path):
    paths = HomePaths(tmp_path)
    con = _warehouse(tmp_path, 5)
    _publish(con, paths, "run1")
    con.close()
    code = (
        f"import duckdb; c = duckdb.connect({str(paths.published_db)!r}, read_only=True);"
        "print(c.execute('select count(*) from dim_customer').fetchone()[0])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "5"


def test_published_file_opens_in_duckdb_1x(tmp_path):
    """BI drivers often bundle DuckDB 1.x: the published file must be in a storage version they read."""
    duckdb1 = Path(sys.executable).parent.parent / "duckdb1"
    assert duckdb1.exists(), "`make install` puts DuckDB 1.x in .venv/duckdb1 for this test"
    paths = HomePaths(tmp_path)
    con = _warehouse(tmp_path, 4)
    _publish(con, paths, "run1")
    con.close()
    code = (
        "import duckdb, sys; c = duckdb.connect(sys.argv[1], read_only=True);"
        "print(duckdb.__version__, c.execute('select count(*) from dim_customer').fetchone()[0])"
    )
    env = {**os.environ, "PYTHONPATH": str(duckdb1)}
    out = subprocess.run(
        [sys.executable, "-c", code, str(paths.published_db)],
        env=env,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    version, count = out.stdout.split()
    assert version.startswith("1.") and count == "4"
