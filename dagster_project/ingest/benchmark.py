"""Ingest throughput on a synthetic erp/order_lines extract, against DuckDB's bare CSV load.

    python -m dagster_project.ingest.benchmark --rows 2000000 --workdir /tmp/ingest_bench

Measures, each into a fresh warehouse file with the given threads and memory limit:
- floor: `CREATE TABLE AS SELECT * FROM read_csv(...)` (DuckDB's own, sniffed and typed);
- ingest of a clean file (fast path, verified);
- ingest of the same file with a few planted defects (broken quotes etc.: fast path on a copy);
- the exact parser's staging of the defective file (what a file costs when the fast path is refused).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import duckdb

from dagster_project.ingest.contract import load_contract
from dagster_project.ingest.csv_layout import scan_layout
from dagster_project.ingest.csv_stage import drop_stage, read_csv_header, stage_csv
from dagster_project.ingest.file_schema import match_columns
from dagster_project.ingest.loader import ingest_entity

ENTITY = "erp/order_lines"
FILE_NAME = "order_lines_20250101T000000.csv"


def write_synthetic_order_lines(path: Path, rows: int, *, defects_every: int = 0) -> int:
    """Write `rows` order lines; plant a defect every `defects_every` lines. Return #defects."""
    path.parent.mkdir(parents=True, exist_ok=True)
    clean = path.with_suffix(".clean") if defects_every else path
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    con.execute("SELECT setseed(0.42)")
    con.execute(f"""
        COPY (
            SELECT 'SO' || lpad((i // 8)::VARCHAR, 9, '0') AS order_id,
                   i % 8 + 1 AS line_no,
                   'M' || lpad(((i * 7919) % 100000)::VARCHAR, 7, '0') AS material_number,
                   (i % 50 - 2)::VARCHAR || '.000' AS quantity,
                   round(random() * 5000, 2) AS unit_price,
                   CASE i % 3 WHEN 0 THEN NULL WHEN 1 THEN 5.0 ELSE 10.5 END AS discount_pct,
                   round(random() * 100000, 2) AS net_value,
                   round(random() * 60000, 2) AS cost
            FROM range({rows}) t(i)
        ) TO '{clean}' (HEADER, DELIMITER ',')
    """)
    con.close()
    if not defects_every:
        return 0
    planted = 0
    with (
        clean.open("r", encoding="utf-8", newline="") as src,
        path.open("w", encoding="utf-8", newline="") as out,
    ):
        for number, line in enumerate(src, start=1):
            if number > 1 and number % defects_every == 0:
                fields = line.rstrip("\n").split(",")
                kind = (number // defects_every) % 3
                if kind == 0:
                    fields[2] = '"' + fields[2]  # broken quote
                elif kind == 1:
                    fields[3] = "n/a"  # text in a number
                else:
                    fields = fields[:4]  # too few values
                line = ",".join(fields) + "\n"
                planted += 1
            out.write(line)
    clean.unlink()
    return planted


def _connect(db: Path, threads: int, memory_limit: str) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(str(db))
    con.execute(f"SET threads = {threads}")
    con.execute(f"SET memory_limit = '{memory_limit}'")
    con.execute("SET enable_progress_bar = false")
    return con


def run_benchmark(workdir: Path, rows: int, threads: int = 2, memory_limit: str = "4GB") -> dict:
    workdir.mkdir(parents=True, exist_ok=True)
    clean_landing, dirty_landing = workdir / "clean", workdir / "dirty"
    clean_file = clean_landing / ENTITY / FILE_NAME
    dirty_file = dirty_landing / ENTITY / FILE_NAME
    if not clean_file.exists():
        write_synthetic_order_lines(clean_file, rows)
    if not dirty_file.exists():
        write_synthetic_order_lines(dirty_file, rows, defects_every=max(rows // 12, 1))
    size_mb = clean_file.stat().st_size / 1e6
    report: dict = {
        "rows": rows,
        "file_mb": round(size_mb, 1),
        "threads": threads,
        "memory_limit": memory_limit,
    }

    def timed(label: str, fn) -> None:
        with tempfile.TemporaryDirectory(dir=workdir) as scratch:
            con = _connect(Path(scratch) / "w.duckdb", threads, memory_limit)
            started = time.perf_counter()
            detail = fn(con)
            seconds = time.perf_counter() - started
            con.close()
        report[label] = {
            "seconds": round(seconds, 2),
            "rows_per_s": round(rows / seconds),
            **(detail or {}),
        }

    timed(
        "floor_read_csv_ctas",
        lambda con: (
            con.execute(f"CREATE TABLE t AS SELECT * FROM read_csv('{clean_file}')").fetchall()
            and None
        ),
    )

    def ingest(landing: Path):
        def run(con):
            result = ingest_entity(con, landing, ENTITY, "bench")
            (outcome,) = result.files
            return {
                "parser": outcome.parser,
                "loaded": outcome.rows_loaded,
                "rejected": outcome.rows_rejected,
            }

        return run

    timed("ingest_clean_fast_path", ingest(clean_landing))
    timed("ingest_with_defects_fast_path", ingest(dirty_landing))

    def exact_stage(con):
        layout = scan_layout(dirty_file)
        spec = load_contract().entity(ENTITY)
        header = match_columns(read_csv_header(dirty_file, layout), spec).header_info(spec)
        staged = stage_csv(con, dirty_file, layout, header, exact=True)
        drop_stage(con)
        return {"parser": staged.parser, "note": "staging only, without validation and load"}

    timed("stage_with_defects_exact_parser", exact_stage)

    def fast_stage(con):
        layout = scan_layout(dirty_file)
        spec = load_contract().entity(ENTITY)
        header = match_columns(read_csv_header(dirty_file, layout), spec).header_info(spec)
        staged = stage_csv(con, dirty_file, layout, header)
        drop_stage(con)
        return {"parser": staged.parser, "note": "staging only, without validation and load"}

    timed("stage_with_defects_fast_path", fast_stage)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument(
        "--workdir", type=Path, default=Path(tempfile.gettempdir()) / "ingest_bench"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--memory-limit", default="4GB")
    args = parser.parse_args()
    print(
        json.dumps(
            run_benchmark(args.workdir, args.rows, args.threads, args.memory_limit), indent=2
        )
    )


if __name__ == "__main__":
    main()
