"""Ingest's shortcuts must not change what it loads or rejects.

- The "sure" patterns (validate.py) let most values skip their cast in the check pass: every value
  they accept must parse.
- The fast path checks rows while staging them (validate.problem_flag) and validation then looks
  at the flagged rows only; the exact parser's stage has no flags. Both must give the same raw
  rows, rejects and counts as the plain checks.
- Scan-ahead (hash, layout and the bulk reader's copy made in helper threads) must give what an
  inline scan gives, whatever order files are asked in, and leave no copies behind.
"""

from __future__ import annotations

import random
import tempfile
import time
from pathlib import Path

import duckdb
import pytest

from dagster_project.ingest import csv_stage, ingest_entity, ingest_landing, load_contract, validate
from dagster_project.ingest import loader as loader_module
from dagster_project.ingest import scan_ahead as scan_ahead_module
from dagster_project.ingest.landing import list_extract_files
from dagster_project.ingest.raw_tables import ensure_raw_layer
from dagster_project.ingest.scan_ahead import ScanAhead, scan_ahead, scan_file

# --- sure patterns ------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["%Y%m%d", "%Y-%m-%d"])
def test_sure_date_pattern_accepts_only_real_dates(fmt):
    sure = validate.sure_date_pattern(fmt)
    full, _ = validate.date_pattern(fmt)
    assert sure is not None
    shape = fmt.replace("%Y", "%04d").replace("%m", "%02d").replace("%d", "%02d")
    con = duckdb.connect()
    # Every month and day number 00-99 in years around the edges and a leap year or two.
    years = [999, 1000, 1900, 1999, 2000, 2023, 2024, 2100, 2999, 3000]
    wrong, sure_count = con.execute(
        f"""
        SELECT count(*) FILTER (WHERE NOT (regexp_full_match(v, '{full}')
                                           AND try_strptime(v, '{fmt}') IS NOT NULL)),
               count(*)
        FROM (SELECT printf('{shape}', y, m, d) AS v
              FROM unnest(?) a(y), range(100) b(m), range(100) c(d))
        WHERE regexp_full_match(v, '{sure}')
        """,
        [years],
    ).fetchone()
    assert wrong == 0
    assert sure_count == 8 * 365  # the years 1000-2999 of the list, 29 February left out


def test_sure_number_patterns_accept_only_values_that_cast():
    rng = random.Random(7)

    def digits(n: int) -> str:
        return "".join(rng.choice("0123456789" if rng.random() < 0.5 else "9") for _ in range(n))

    ints = [rng.choice(["", "+", "-"]) + digits(rng.randint(1, 18)) for _ in range(20000)]
    decs = []
    for _ in range(20000):
        sign = rng.choice(["", "+", "-"])
        if rng.random() < 0.2:
            decs.append(f"{sign}.{digits(rng.randint(1, 18))}")
        elif rng.random() < 0.5:
            decs.append(f"{sign}{digits(rng.randint(1, 13))}.{digits(rng.randint(0, 18))}")
        else:
            decs.append(f"{sign}{digits(rng.randint(1, 13))}")
    ints += ["999999999999999999", "-999999999999999999", "+000000000000000000"]
    decs += ["9999999999999.999999999999999999", "-9999999999999.99995", "0000000000000.", "1."]
    con = duckdb.connect()
    for values, sure, full, target in (
        (ints, validate._INT_SURE, validate._INT_PATTERN, "BIGINT"),
        (decs, validate._DEC_SURE, validate._DEC_PATTERN, "DECIMAL(18,4)"),
    ):
        (matched, wrong) = con.execute(
            f"""SELECT count(*), count(*) FILTER (WHERE NOT (regexp_full_match(v, '{full}')
                                                AND TRY_CAST(v AS {target}) IS NOT NULL))
                FROM unnest(?) t(v) WHERE regexp_full_match(v, '{sure}')""",
            [values],
        ).fetchone()
        assert matched == len(values) and wrong == 0


# --- flagged rows vs plain checks ---------------------------------------------------------------

_DELIVERY_VALUES = [
    # line_no, planned, actual, delivered, quantity
    ("10", "20240229", "20230228", "00000000", "7.000"),  # 2024 is a leap year
    ("20", "20230229", "", "", "1.5"),  # 29 Feb 2023 does not exist
    ("30", "20231131", "20231130", "20230431", "-.5"),
    ("40", "2023-01-01", "09991231", "30000101", "5."),
    ("1234567890123456789", "20230101", "20230101", "20230101", "99999999999999.9999"),
    ("123456789012345678", "20230101", "20230101", "20230101", "999999999999999"),
    ("+7", "20230101", "20230101", "20230101", "9999999999999.99995"),
    (" 8", "20230101", "20230101", "20230101", "1e3"),
    ("", "20230101", "20230101", "20230101", "12,5"),
    ("9.0", "20231301", "00000000", "19990101", "+0.0001"),
    ("10", "10000101", "29991231", "20000229", "0000000000000001.5"),
]


def _land_erp(landing: Path) -> None:
    folder = landing / "erp" / "deliveries"
    folder.mkdir(parents=True)
    lines = [
        "delivery_id,order_id,line_no,planned_ship_date,actual_ship_date,delivered_date,"
        "delivered_quantity"
    ]
    for i in range(300):
        line_no, planned, actual, delivered, quantity = _DELIVERY_VALUES[i % len(_DELIVERY_VALUES)]
        delivery = "" if i % 37 == 5 else f"D{i:08d}"
        lines.append(f"D{delivery},O{i // 3},{line_no},{planned},{actual},{delivered},{quantity}")
        if i % 50 == 7:
            lines.append(f'D{i}X,"broken,1,20230101,,,1')  # a broken quote: a structural reject
    (folder / "deliveries_20240101T000000.csv").write_text("\n".join(lines) + "\n")
    folder = landing / "erp" / "sales_orders"
    folder.mkdir(parents=True)
    lines = [
        "order_id,customer_number,order_date,requested_delivery_date,order_type,currency,"
        "change_count,created_on"
    ]
    for i in range(200):
        _, planned, actual, _, _ = _DELIVERY_VALUES[i % len(_DELIVERY_VALUES)]
        count = ["1", "", "x", "-3", "+12", "0001"][i % 6]
        lines.append(f"O{i},{i:010d},{planned},{actual},ZOR,EUR,{count},{actual or '20230101'}")
    (folder / "sales_orders_20240101T000000.csv").write_text("\n".join(lines) + "\n")


def _outcome(con) -> dict[str, list[tuple]]:
    tables = {
        "deliveries": "SELECT * EXCLUDE (_loaded_at, _run_id) FROM raw.erp__deliveries",
        "sales_orders": "SELECT * EXCLUDE (_loaded_at, _run_id) FROM raw.erp__sales_orders",
        "rejects": "SELECT * EXCLUDE (loaded_at, run_id) FROM raw.rejects "
        "ORDER BY source_file, line, column_name",
        "load_log": "SELECT source_file, file_hash, rows_read, rows_loaded, rows_rejected, status "
        "FROM raw.load_log ORDER BY source_file",
    }
    return {name: con.execute(sql).fetchall() for name, sql in tables.items()}


def _ingest(landing: Path) -> dict[str, list[tuple]]:
    con = duckdb.connect()
    for entity in ("erp/deliveries", "erp/sales_orders"):
        ingest_entity(con, landing, entity, "run")
    return _outcome(con)


def test_flagged_checks_and_sure_patterns_change_nothing(tmp_path, monkeypatch):
    _land_erp(tmp_path)
    fast = _ingest(tmp_path)
    assert fast["rejects"] and fast["deliveries"]
    rules = {rule for *_, rule, _reason, _value, _key in fast["rejects"]}
    assert {"unparseable_int", "unparseable_dec", "unparseable_date", "broken_quoting"} <= rules

    # The plain checks: every row checked by pass 1, every value by pattern and cast.
    with monkeypatch.context() as patch:
        patch.setattr(loader_module, "problem_flag", lambda *args: None)
        patch.setattr(validate, "_INT_SURE", None)
        patch.setattr(validate, "_DEC_SURE", None)
        patch.setattr(validate, "sure_date_pattern", lambda fmt: None)
        plain = _ingest(tmp_path)
    assert plain == fast

    # The exact parser's stage has no flags: pass 1 checks every row there.
    def refuse(*args, **kwargs):
        raise csv_stage._FastPathRefused("test")

    with monkeypatch.context() as patch:
        patch.setattr(csv_stage, "_stage_fast", refuse)
        exact = _ingest(tmp_path)
    assert exact == fast


# --- scan ahead ---------------------------------------------------------------------------------


@pytest.fixture
def scratch(tmp_path, monkeypatch) -> Path:
    """tempfile's folder, where the bulk reader's copies go: empty again once they are released."""
    folder = tmp_path / "scratch"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def _land_csv(landing: Path) -> list[Path]:
    header = "account_id,account_name,billing_country,employees,created_at,last_modified\n"
    row = "A{i},Acme {i},FI,{i},2024-03-01T08:15:00+02:00,2024-03-01T08:15:00+02:00\n"
    folder = landing / "crm" / "accounts"
    folder.mkdir(parents=True)
    paths = []
    for day in (1, 2, 3):
        text = header + "".join(row.format(i=i) for i in range(day * 100))
        if day != 2:
            text += 'A9,"broken,FI,1,2024-03-01T08:15:00Z,2024-03-01T08:15:00Z\n'  # needs a copy
            text += row.format(i=999)
        path = folder / f"accounts_2024010{day}T000000.csv"
        path.write_text(text)
        paths.append(path)
    return paths


def test_scan_ahead_gives_what_an_inline_scan_gives_in_any_order(tmp_path, scratch):
    landing = tmp_path / "landing"
    _land_csv(landing)
    contract = load_contract()
    spec = contract.entity("crm/accounts")
    files, _ = list_extract_files(landing, "crm", "accounts")
    with ScanAhead([(f, spec) for f in files], loaded=set()) as scans:
        last = scans.scan(files[2])  # asked first: the two before it are dropped
        assert (last.file_hash, last.layout) == (
            scan_file(files[2]).file_hash,
            scan_file(files[2]).layout,
        )
        assert last.source is not None and last.source.path != files[2]  # a copy, made ahead
        assert last.source.path.exists()
        copy = last.source.path
        last.release()
        assert not copy.exists()
        first = scans.scan(files[0])  # dropped before: scanned inline now
        assert first.file_hash == scan_file(files[0]).file_hash and first.source is None
    with ScanAhead([(f, spec) for f in files], loaded=set()):
        pass  # closed with copies made and never asked for
    assert list(scratch.iterdir()) == []


def test_scan_ahead_keeps_at_most_copies_ahead_copies_on_disk(tmp_path, scratch):
    # Copies can be as large as their file: made ahead, they are bounded (disk space), and the
    # next one is written as soon as ingest has read one.
    folder = tmp_path / "landing" / "crm" / "accounts"
    folder.mkdir(parents=True)
    header = "account_id,account_name,billing_country,employees,created_at,last_modified\n"
    broken = 'A9,"broken,FI,1,2024-03-01T08:15:00Z,2024-03-01T08:15:00Z\nA10,x,FI,1,,\n'
    for day in range(1, scan_ahead_module.COPIES_AHEAD + 3):
        (folder / f"accounts_202401{day:02d}T000000.csv").write_text(header + broken)
    spec = load_contract().entity("crm/accounts")
    files, _ = list_extract_files(tmp_path / "landing", "crm", "accounts")

    def copies_on_disk(expected: int) -> int:
        for _ in range(100):  # the preparing thread writes them in the background
            if len(list(scratch.iterdir())) >= expected:
                break
            time.sleep(0.05)
        time.sleep(0.2)  # and would write more by now if it were allowed to
        return len(list(scratch.iterdir()))

    with ScanAhead([(f, spec) for f in files], loaded=set()) as scans:
        assert copies_on_disk(scan_ahead_module.COPIES_AHEAD) == scan_ahead_module.COPIES_AHEAD
        first = scans.scan(files[0])
        assert first.source is not None and first.source.path != files[0]
        first.release()  # read: the next file's copy may be written now
        assert copies_on_disk(scan_ahead_module.COPIES_AHEAD) == scan_ahead_module.COPIES_AHEAD
    assert list(scratch.iterdir()) == []


def test_ingest_with_and_without_scan_ahead_is_identical(tmp_path):
    landing = tmp_path / "landing"
    _land_csv(landing)
    _land_erp(landing)
    contract = load_contract()
    entities = ["crm/accounts", "erp/deliveries", "erp/sales_orders"]

    with_scans = duckdb.connect()
    with scan_ahead(landing, entities, contract, with_scans) as scans:
        for entity in entities:
            ingest_entity(with_scans, landing, entity, "run", contract, scans=scans)
    inline = duckdb.connect()
    for entity in entities:
        ingest_entity(inline, landing, entity, "run", contract)
    landing_run = duckdb.connect()
    ingest_landing(landing_run, landing, "run", contract)

    query = (
        "SELECT * EXCLUDE (_loaded_at, _run_id) FROM raw.crm__accounts",
        "SELECT * EXCLUDE (loaded_at, run_id) FROM raw.rejects ORDER BY source_file, line",
        "SELECT * EXCLUDE (loaded_at, run_id) FROM raw.load_log ORDER BY source_file",
    )
    for sql in query:
        expected = inline.execute(sql).fetchall()
        assert expected
        assert with_scans.execute(sql).fetchall() == expected
        assert landing_run.execute(sql).fetchall() == expected


def test_ingest_takes_over_the_scan_the_run_started_early(tmp_path, scratch):
    # `segments run` starts scanning the landing folder before its Dagster start-up; the ingest
    # step loads exactly what it would have loaded with its own scan, and leaves no copies.
    landing = tmp_path / "landing"
    _land_csv(landing)
    _land_erp(landing)
    contract = load_contract()
    entities = list(contract.entities)
    sql = "SELECT * EXCLUDE (loaded_at, run_id) FROM raw.load_log ORDER BY source_file"

    own = duckdb.connect()
    ingest_landing(own, landing, "run", contract)

    early = duckdb.connect()
    ensure_raw_layer(early, contract)
    scan_ahead_module.start_early(landing, tmp_path / "no-warehouse-yet.duckdb", contract)
    _, started = scan_ahead_module._started_early
    with scan_ahead_module.scan_ahead_for_ingest(landing, entities, contract, early) as scans:
        assert scans is started  # its work is used, not done again
        for entity in entities:
            ingest_entity(early, landing, entity, "run", contract, scans=scans)
    assert early.execute(sql).fetchall() == own.execute(sql).fetchall()
    assert early.execute("SELECT count(*) FROM raw.load_log").fetchall()[0][0] > 0
    assert list(scratch.iterdir()) == []

    # A scan started for another landing folder is stopped, its copies removed.
    scan_ahead_module.start_early(landing, tmp_path / "no-warehouse-yet.duckdb", contract)
    other = tmp_path / "other"
    other.mkdir()
    _, started = scan_ahead_module._started_early
    with scan_ahead_module.scan_ahead_for_ingest(other, entities, contract, duckdb.connect()) as s:
        assert s is not started and scan_ahead_module._started_early is None
    assert list(scratch.iterdir()) == []


def test_a_failed_load_reports_its_own_error_not_the_aborted_transaction():
    import duckdb

    from dagster_project.ingest.validate import _file_order_kept

    con = duckdb.connect()
    con.execute("begin transaction")
    with (
        pytest.raises(duckdb.ConversionException, match="Could not convert"),
        _file_order_kept(con),
    ):
        con.execute("select cast('x' as integer)")
