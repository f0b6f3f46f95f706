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

from dagster_project.fact_store import CATALOG as FACT_STORE
from dagster_project.fact_store import fact_store_path
from dagster_project.paths import HomePaths
from dagster_project.publish import publish_marts
from dagster_project.publish.write_audit_publish import PublishAuditError
from dagster_project.settings import settings
from dagster_project.warehouse import connect


def _warehouse(tmp_path, customers: int):
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    con.execute(
        f"create or replace table dim_customer as select 'CU-' || i as customer_id from range({customers}) t(i)"
    )
    con.execute("create or replace table kpi as select 2024 as year, 10.5 as revenue_eur")
    return con


def _publish(con, paths, run_id, tables=("dim_customer", "kpi")):
    return publish_marts(
        con,
        paths,
        run_id,
        list(tables),
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


def _warehouse_with_fact_store(tmp_path, lines: int):
    """A warehouse whose facts live in its fact store, shown as marts.facts (like the pipeline's
    marts.fct_order_lines: dbt builds them there with a NOT NULL contract)."""
    con = connect(tmp_path / "warehouse.duckdb")
    con.execute("create table dim_customer as select 'CU-' || i as customer_id from range(3) t(i)")
    con.execute(f"create table {FACT_STORE}.main.facts (line_id varchar not null, amount double)")
    con.execute(
        f"insert into {FACT_STORE}.main.facts select 'L-' || i, i * 1.5 from range({lines}) t(i)"
    )
    con.execute("create schema marts")
    con.execute(f"create view marts.facts as select * from {FACT_STORE}.main.facts")
    return con


def _publish_with_facts(con, paths, run_id):
    return _publish(con, paths, run_id, tables=("dim_customer", "marts.facts"))


def test_facts_are_published_from_a_copy_of_the_fact_store(tmp_path):
    paths = HomePaths(tmp_path)
    con = _warehouse_with_fact_store(tmp_path, 1000)
    store = fact_store_path(paths.warehouse)
    con.execute(f"checkpoint {FACT_STORE}")
    store_before = _sha(store)
    result = _publish_with_facts(con, paths, "run1")
    con.close()
    assert result.from_fact_store == ["facts"]
    assert result.fact_store_unused_because is None
    assert result.row_counts == {"dim_customer": 3, "facts": 1000}
    assert _sha(store) == store_before  # the store is read, never changed

    reader = duckdb.connect(str(paths.published_db), read_only=True)
    assert reader.execute("select count(*), sum(amount) from main.facts").fetchone() == (
        1000,
        sum(i * 1.5 for i in range(1000)),
    )
    # published exactly as a copied table always was: no constraints, its storage version
    assert reader.execute(
        "select bool_and(is_nullable) from duckdb_columns() where table_name = 'facts'"
    ).fetchone()[0]
    assert (
        reader.execute(
            "select tags['storage_version'] from duckdb_databases() where database_name = 'analytics'"
        )
        .fetchone()[0]
        .startswith(settings().publish.storage_version)
    )
    assert sorted(r[0] for r in reader.execute("show tables").fetchall()) == [
        "dim_customer",
        "facts",
        "publish_log",
    ]
    reader.close()
    parquet = paths.published_parquet / "facts.parquet"
    assert duckdb.connect().execute(f"select count(*) from '{parquet}'").fetchone()[0] == 1000


def test_a_fact_store_with_free_blocks_is_not_copied_but_published_all_the_same(tmp_path):
    paths = HomePaths(tmp_path)
    con = _warehouse_with_fact_store(tmp_path, 1000)
    # a table rebuilt in place leaves its old blocks free: a copy would carry them
    con.execute(f"create table {FACT_STORE}.main.scratch as select range i from range(2000000)")
    con.execute(f"checkpoint {FACT_STORE}")
    con.execute(f"drop table {FACT_STORE}.main.scratch")
    result = _publish_with_facts(con, paths, "run1")
    con.close()
    assert result.from_fact_store == []
    assert "free blocks" in result.fact_store_unused_because
    reader = duckdb.connect(str(paths.published_db), read_only=True)
    assert reader.execute("select count(*) from facts").fetchone()[0] == 1000
    reader.close()


def test_the_published_file_does_not_grow_run_over_run(tmp_path):
    paths = HomePaths(tmp_path)
    con = _warehouse_with_fact_store(tmp_path, 200_000)
    _publish_with_facts(con, paths, "run1")
    first = paths.published_db.stat().st_size
    _publish_with_facts(con, paths, "run2")
    con.close()
    assert paths.published_db.stat().st_size <= first
