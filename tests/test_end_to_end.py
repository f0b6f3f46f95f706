"""The first slice end to end, through the real CLI, on a small generated dataset."""

from __future__ import annotations

import csv
import hashlib
import shutil
import subprocess
import sys

import duckdb
import pytest

from tests.conftest import run_segments

pytestmark = pytest.mark.e2e


def _csv_rows(path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def _read_only(path):
    return duckdb.connect(str(path), read_only=True)


def test_run_publishes_marts_readable_from_another_process(published_home):
    db = published_home / "published" / "analytics.duckdb"
    code = (
        "import duckdb,sys; c = duckdb.connect(sys.argv[1], read_only=True);"
        "print(*[c.execute(f'select count(*) from {t}').fetchone()[0] for t in"
        " ('dim_customer','customer_source_map','publish_log')])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(db)], capture_output=True, text=True, check=True
    )
    counts = [int(x) for x in out.stdout.split()]
    assert all(n > 0 for n in counts), counts
    for table in ("dim_customer", "customer_source_map", "publish_log"):
        assert (published_home / "published" / "parquet" / f"{table}.parquet").exists()


def test_every_source_record_maps_to_exactly_one_customer(published_home):
    truth = _csv_rows(published_home / "truth" / "source_records.csv")
    con = _read_only(published_home / "published" / "analytics.duckdb")
    mapped = con.execute(
        "select source_system, source_id, count(*) from customer_source_map group by all"
    ).fetchall()
    con.close()
    assert all(n == 1 for _, _, n in mapped)
    mapped_keys = {(s, i) for s, i, _ in mapped}
    truth_keys = {(r["source_system"], r["source_id"]) for r in truth}
    # Records whose key row was malformed are in the steward queue instead; nothing else is missing.
    assert mapped_keys <= truth_keys
    assert len(truth_keys - mapped_keys) <= 0.01 * len(truth_keys)


def test_deterministic_links_never_merge_two_true_companies(published_home):
    truth = {
        (r["source_system"], r["source_id"]): r["company_id"]
        for r in _csv_rows(published_home / "truth" / "source_records.csv")
    }
    con = _read_only(published_home / "published" / "analytics.duckdb")
    rows = con.execute(
        "select source_system, source_id, customer_id from customer_source_map"
    ).fetchall()
    con.close()
    companies_per_customer: dict[str, set[str]] = {}
    for system, source_id, customer_id in rows:
        companies_per_customer.setdefault(customer_id, set()).add(truth[(system, source_id)])
    merged_wrongly = {c: v for c, v in companies_per_customer.items() if len(v) > 1}
    assert len(merged_wrongly) <= 0.01 * len(companies_per_customer), list(merged_wrongly.items())[
        :5
    ]


def test_every_planted_defect_is_rejected_with_file_line_and_column(published_home):
    defects = _csv_rows(published_home / "truth" / "planted_defects.csv")
    assert defects, "the generator plants defects"
    con = _read_only(published_home / "warehouse.duckdb")
    rejects = {
        (f, int(line)): col
        for f, line, col in con.execute(
            "select source_file, line, column_name from raw.rejects"
        ).fetchall()
    }
    con.close()
    missing = [d for d in defects if (d["file"], int(d["line"])) not in rejects]
    assert not missing, missing[:5]


def test_load_log_reconciles_and_second_ingest_loads_nothing(published_home):
    con = _read_only(published_home / "warehouse.duckdb")
    bad = con.execute(
        "select source_file from raw.load_log where rows_read <> rows_loaded + rows_rejected"
    ).fetchall()
    loaded_before = con.execute(
        "select count(*) from raw.load_log where status = 'loaded'"
    ).fetchone()[0]
    con.close()
    assert not bad
    run_segments("run", "--home", str(published_home), check=True)
    con = _read_only(published_home / "warehouse.duckdb")
    loaded_after = con.execute(
        "select count(*) from raw.load_log where status = 'loaded'"
    ).fetchone()[0]
    con.close()
    assert loaded_after == loaded_before


def test_customer_ids_are_stable_across_runs(published_home):
    def ids():
        con = _read_only(published_home / "published" / "analytics.duckdb")
        out = dict(
            ((s, i), c)
            for s, i, c in con.execute(
                "select source_system, source_id, customer_id from customer_source_map"
            ).fetchall()
        )
        con.close()
        return out

    before = ids()
    run_segments("run", "--home", str(published_home), check=True)
    assert ids() == before


def test_steward_queue_holds_rejected_rows_with_personal_data_masked(published_home):
    queue = published_home / "steward" / "steward_queue.csv"
    rows = list(_csv_rows(queue))
    assert any(r["kind"] == "rejected_row" for r in rows)
    con = _read_only(published_home / "warehouse.duckdb")
    emails = {
        e
        for (e,) in con.execute(
            "select email from raw.crm__contacts where email is not null"
        ).fetchall()
    }
    con.close()
    text = queue.read_text(encoding="utf-8")
    assert not any(e in text for e in emails)


def test_blocking_gate_exits_3_and_leaves_publication_untouched(published_home, tmp_path):
    home = tmp_path / "home"
    shutil.copytree(published_home, home, symlinks=True)
    published = home / "published" / "analytics.duckdb"
    before = hashlib.sha256(published.read_bytes()).hexdigest()
    # A new incremental extract where most rows are unparseable: above the 2% reject threshold.
    folder = home / "landing" / "erp" / "materials"
    folder.mkdir(parents=True, exist_ok=True)
    bad = folder / "materials_29991231T000000.csv"
    rows = ["material_number,description,product_line,category,unit,standard_cost"]
    rows += [f"M-BAD-{i},Broken,Engines,Specialty,PC,not-a-number" for i in range(500)]
    bad.write_text("\n".join(rows) + "\n", encoding="utf-8")
    result = run_segments("run", "--home", str(home))
    assert result.returncode == 3, result.stderr[-3000:]
    assert "BLOCKED" in result.stderr and "materials" in result.stderr
    assert hashlib.sha256(published.read_bytes()).hexdigest() == before
    queue = (home / "steward" / "steward_queue.csv").read_text(encoding="utf-8")
    assert "M-BAD-1" in queue


def test_no_good_row_is_missing(published_home):
    """Planted defects are extra damaged copies of generated rows, so per file:
    data records in the file - planted defects = rows loaded, exactly."""
    landing = published_home / "landing"
    defects_per_file: dict[str, int] = {}
    for d in _csv_rows(published_home / "truth" / "planted_defects.csv"):
        defects_per_file[d["file"]] = defects_per_file.get(d["file"], 0) + 1
    con = _read_only(published_home / "warehouse.duckdb")
    loaded = dict(
        con.execute(
            "select source_file, rows_loaded from raw.load_log where status = 'loaded'"
        ).fetchall()
    )
    con.close()
    csv_files = sorted(landing.rglob("*.csv"))
    for path in csv_files:
        rel = path.relative_to(landing).as_posix()
        if "/surveys/" in rel:  # comments span lines; the generator never breaks quotes there
            with open(path, encoding="utf-8-sig", newline="") as f:
                n_records = sum(1 for _ in csv.reader(f)) - 1
        else:  # one physical line per record, a broken quote included
            n_records = len(path.read_bytes().splitlines()) - 1
        assert loaded[rel] == n_records - defects_per_file.get(rel, 0), rel
    assert len(csv_files) > 20
