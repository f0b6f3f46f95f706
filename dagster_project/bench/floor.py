"""Run the floor (floor.sql): the core work in one DuckDB script, timed part by part.

    python -m dagster_project.bench.floor --landing L --as-of 2025-12-31 --db F --out R.json

Runs as its own process under the bench, so that its peak memory is measured apart from the
pipeline's. DuckDB gets the same memory_limit and threads as the pipeline.
"""

from __future__ import annotations

import argparse
import re
import shutil
import time
from pathlib import Path

import duckdb

from dagster_project.bench.common import BASELINE_PARTS, BaselineResult, kpi_vars, landing_entities

SCRIPT = Path(__file__).with_name("floor.sql")
# Entities floor.sql loads typed; every other extract is loaded as text.
TYPED_ENTITIES = (
    "erp/order_lines",
    "erp/sales_orders",
    "erp/customers",
    "erp/materials",
    "erp/fx_rates",
)
_PART = re.compile(r"^-- part: (\w+)\s*$", re.MULTILINE)
_READER = re.compile(r"\{reader:([a-z_]+/[a-z_]+)\}")


def _sql_list(paths: list[Path]) -> str:
    return "[" + ", ".join("'" + str(p).replace("'", "''") + "'" for p in paths) + "]"


def reader_sql(files: dict[str, list[Path]]) -> str:
    """A relation over one entity's extracts: CSV as text (bad lines skipped), Parquet as typed."""
    readers = []
    if files["csv"]:
        readers.append(
            f"select * from read_csv({_sql_list(files['csv'])}, header = true, all_varchar = true,"
            " ignore_errors = true, filename = true, union_by_name = true)"
        )
    if files["parquet"]:
        readers.append(
            f"select * from read_parquet({_sql_list(files['parquet'])}, filename = true,"
            " union_by_name = true)"
        )
    return "(" + " union all by name ".join(readers) + ")"


def without_broken_quotes(con: duckdb.DuckDBPyConnection, path: Path, scratch: Path) -> Path:
    """The file itself, or a copy without its lines holding an odd number of quotes.

    DuckDB's reader, even with ignore_errors, reads on across line breaks after an unclosed
    quote and loses thousands of rows (verified: 120k of 386k sales orders). No field of the
    contract spans lines, so such a line is a rejected row; dropping it costs exactly that row,
    as in the pipeline. One quick scan of the lines as text; a copy only when needed.
    """
    lines = (
        f"read_csv('{_quoted(path)}', columns = {{'line': 'varchar'}}, header = false,"
        " delim = '\x1f', quote = '', escape = '')"
    )
    odd = "(length(line) - length(replace(line, '\"', ''))) % 2 = 1"
    if not con.execute(f"select count(*) from {lines} where {odd}").fetchall()[0][0]:
        return path
    copy = scratch / path.name
    con.execute(
        f"copy (select line from {lines} where not ({odd}) or line is null)"
        f" to '{_quoted(copy)}' (header false, delimiter '\x1f', quote '\x1e')"
    )
    return copy


def _quoted(path: Path) -> str:
    return str(path).replace("'", "''")


def render(entities: dict[str, dict[str, list[Path]]], as_of: str) -> dict[str, str]:
    """floor.sql with its placeholders filled, split into its named parts."""
    missing = [e for e in TYPED_ENTITIES if e not in entities]
    if missing:
        raise SystemExit(f"the floor needs these extracts, missing: {missing}")
    load_as_text = "\n".join(
        f"create table text_{name.replace('/', '_')} as select * from {reader_sql(files)};"
        for name, files in entities.items()
        if name not in TYPED_ENTITIES
    )
    text = SCRIPT.read_text(encoding="utf-8")
    text = _READER.sub(lambda m: reader_sql(entities[m.group(1)]), text)
    values = {"as_of": as_of, "load_as_text": load_as_text, **kpi_vars()}
    for key, value in values.items():
        text = text.replace("{" + key + "}", str(value))
    pieces = _PART.split(text)
    return {pieces[i]: pieces[i + 1] for i in range(1, len(pieces), 2)}


def _count(con: duckdb.DuckDBPyConnection, tables: list[str]) -> int:
    return sum(con.execute(f"select count(*) from {t}").fetchall()[0][0] for t in tables)


def run_floor(
    landing: Path, as_of: str, db: Path, memory_limit: str = "4GB", threads: int = 2
) -> BaselineResult:
    db.unlink(missing_ok=True)
    scratch = db.with_suffix(".resync")
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    con = duckdb.connect(str(db), config={"memory_limit": memory_limit, "threads": threads})
    con.execute("set enable_progress_bar = false")
    result = BaselineResult(name="floor")
    try:
        started = time.perf_counter()
        entities = landing_entities(landing)
        for files in entities.values():
            files["csv"] = [without_broken_quotes(con, p, scratch) for p in files["csv"]]
        parts = render(entities, as_of)
        assert tuple(parts) == BASELINE_PARTS, f"floor.sql parts {tuple(parts)}"
        for name, sql in parts.items():
            con.execute(sql)
            result.seconds[name] = round(time.perf_counter() - started, 3)
            started = time.perf_counter()
        loaded = [
            t
            for (t,) in con.execute(
                "select table_name from information_schema.tables where table_name like 'erp_%'"
                " or table_name like 'text_%'"
            ).fetchall()
        ]
        result.rows = {
            "ingest": _count(con, loaded),
            "facts": _count(con, ["fct_order_lines"]),
            "features": _count(con, ["customer_features"]),
            "kpis": _count(con, ["kpi_revenue_by_customer_year"]),
        }
        for year, orders, lines, revenue, cost, margin in con.execute(
            "select year, sum(orders), sum(order_lines), sum(revenue_eur), sum(cost_eur),"
            " sum(margin_eur) from kpi_revenue_by_customer_year group by year order by year"
        ).fetchall():
            result.kpi_by_year[str(year)] = {
                "orders": int(orders),
                "order_lines": int(lines),
                "revenue_eur": float(revenue),
                "cost_eur": float(cost),
                "margin_eur": float(margin),
            }
        customers, orders, revenue, frequency, recency = con.execute(
            "select count(*), sum(orders), sum(revenue_eur), sum(frequency),"
            " sum(days_since_last_purchase) from customer_features"
        ).fetchall()[0]
        result.features_summary = {
            "customers": int(customers),
            "orders": int(orders or 0),
            "revenue_eur": float(revenue or 0),
            "frequency": int(frequency or 0),
            "days_since_last_purchase": int(recency or 0),
        }
    finally:
        con.close()
        shutil.rmtree(scratch, ignore_errors=True)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--landing", type=Path, required=True)
    parser.add_argument("--as-of", required=True)
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--memory-limit", default="4GB")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    run_floor(args.landing, args.as_of, args.db, args.memory_limit, args.threads).write(args.out)


if __name__ == "__main__":
    main()
