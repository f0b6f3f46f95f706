"""Reading one Parquet extract into the same staging shape as a CSV file.

The temp view `_ingest_rows` has the file's columns renamed c0, c1, ... (file order, types as in
the file) and `_line`, the 1-based row number. Typed columns are validated by whether they cast
cleanly to the contract type; VARCHAR columns are validated as text, exactly like CSV values.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb

from dagster_project.ingest.csv_stage import ROWS_VIEW, drop_stage, stage_column
from dagster_project.ingest.raw_tables import quote_ident


class ParquetReadError(ValueError):
    """The file is not a readable Parquet file."""


@dataclass(frozen=True)
class ParquetSchema:
    names: list[str]
    types: list[str]  # DuckDB type names


def _source(path: Path, *, row_numbers: bool = True) -> str:
    options = ", file_row_number=true" if row_numbers else ""
    return "read_parquet('" + str(path).replace("'", "''") + "'" + options + ")"


def read_parquet_schema(con: duckdb.DuckDBPyConnection, path: Path) -> ParquetSchema:
    try:
        described = con.execute(
            f"DESCRIBE SELECT * FROM {_source(path, row_numbers=False)}"
        ).fetchall()
    except duckdb.Error as exc:
        raise ParquetReadError(
            f"the file cannot be read as Parquet ({type(exc).__name__})"
        ) from None
    columns = [(name, ctype) for name, ctype, *_ in described]
    return ParquetSchema([n for n, _ in columns], [t for _, t in columns])


def stage_parquet(con: duckdb.DuckDBPyConnection, path: Path, schema: ParquetSchema) -> int:
    """Create the staging view; return the number of rows in the file."""
    drop_stage(con)
    renamed = ", ".join(
        f"{quote_ident(name)} AS {stage_column(i)}" for i, name in enumerate(schema.names)
    )
    select_list = f"{renamed}, " if renamed else ""
    con.execute(
        f"CREATE TEMP VIEW {ROWS_VIEW} AS SELECT {select_list}"
        f"file_row_number + 1 AS _line FROM {_source(path)}"
    )
    try:
        return con.execute(f"SELECT count(*) FROM temp.{ROWS_VIEW}").fetchall()[0][0]
    except duckdb.Error as exc:
        raise ParquetReadError(
            f"the file cannot be read as Parquet ({type(exc).__name__})"
        ) from None
