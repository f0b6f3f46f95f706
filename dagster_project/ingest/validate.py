"""Row validation and typing, as set-based DuckDB SQL over a staged file.

For every contract column the staged value (text from CSV or Parquet VARCHAR, or a typed Parquet
value) gets a typed expression and a problem expression:

- a required value that is missing        -> missing_required
- a value that is not its type            -> unparseable_<type>
  int: optional sign and digits; dec: '.' decimal separator, no thousands separator;
  date: the system's format (the system's null dates, e.g. ERP 00000000, are missing values);
  ts: ISO 8601 with an offset; bool: the system's true/false words (ERP: 'X' / empty).

Rows without problems are inserted into the raw table; each problem of the other rows becomes one
reject row (the row counts once as rejected). Personal columns are masked in observed values and
record keys; reasons never quote values.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

import duckdb

from dagster_project.ingest.contract import RAW_SQL_TYPE, EntitySpec, SystemFormats
from dagster_project.ingest.masking import mask_sql
from dagster_project.ingest.raw_tables import qualified, quote_ident

_CHECKED = "_ingest_checked"

_INT_PATTERN = r"[+-]?[0-9]+"
_DEC_PATTERN = r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)"
_TS_PATTERN = (
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,9})?)?"
    r"(Z|z|[+-][0-9]{2}(:?[0-9]{2})?)"
)
_FORMAT_PARTS = {
    "%Y": ("[0-9]{4}", "YYYY"),
    "%m": ("[0-9]{2}", "MM"),
    "%d": ("[0-9]{2}", "DD"),
    "%H": ("[0-9]{2}", "hh"),
    "%M": ("[0-9]{2}", "mm"),
    "%S": ("[0-9]{2}", "ss"),
}


@dataclass(frozen=True)
class ColumnInput:
    """Where a contract column's value comes from in the staged relation."""

    expr: str  # SQL expression over the staged relation
    duckdb_type: str = "VARCHAR"  # its type there; VARCHAR is validated as text

    @property
    def is_text(self) -> bool:
        return self.duckdb_type.upper() == "VARCHAR"


@dataclass(frozen=True)
class FileContext:
    run_id: str
    source_file: str
    extract_ts: datetime
    loaded_at: datetime


@dataclass(frozen=True)
class ValidationOutcome:
    rows_loaded: int
    rows_rejected: int
    reject_rows: int


def sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def date_pattern(fmt: str) -> tuple[str, str]:
    """A strict regular expression and a human spelling for a strftime date format."""
    pattern, human, i = [], [], 0
    while i < len(fmt):
        part = fmt[i : i + 2]
        if part in _FORMAT_PARTS:
            pattern.append(_FORMAT_PARTS[part][0])
            human.append(_FORMAT_PARTS[part][1])
            i += 2
        else:
            pattern.append(re.escape(fmt[i]))
            human.append(fmt[i])
            i += 1
    return "".join(pattern), "".join(human)


@dataclass(frozen=True)
class _ColumnSql:
    """SQL for one column, over `ref`: the staged value (text with '' as NULL, or typed)."""

    value: str  # the value as text, NULL when missing (for observed_value and keys)
    present: str  # boolean: a value is there (after null words)
    typed: str  # the raw-typed value (NULL when missing or unparseable)
    rule: str  # name of the parse rule
    expectation: str  # what a valid value looks like, for the reason sentence


def _column_sql(ctype: str, source: ColumnInput, formats: SystemFormats, ref: str) -> _ColumnSql:
    target = RAW_SQL_TYPE[ctype]
    if not source.is_text:
        value = f"CAST({ref} AS VARCHAR)"
        present = f"{ref} IS NOT NULL"
        typed = f"TRY_CAST({ref} AS {target})"
        if (
            ctype == "ts"
            and source.duckdb_type.upper().startswith("TIMESTAMP")
            and ("TIME ZONE" not in source.duckdb_type.upper())
        ):
            typed = f"timezone('UTC', {ref})"  # a naive timestamp is taken as UTC
        elif ctype == "int":  # no silent rounding of fractional numbers
            typed = (
                f"CASE WHEN TRY_CAST({ref} AS BIGINT) = {ref} THEN TRY_CAST({ref} AS BIGINT) END"
            )
        elif ctype == "bool" and formats.empty_bool_is_false:
            present = "true"
            typed = f"coalesce(TRY_CAST({ref} AS BOOLEAN), false)"
        return _ColumnSql(
            value, present, typed, f"unparseable_{ctype}", f"a value of type {target}"
        )

    value = ref
    present = f"{ref} IS NOT NULL"
    if ctype == "str":
        return _ColumnSql(value, present, ref, "", "")
    if ctype == "int":
        typed = (
            f"CASE WHEN regexp_full_match({ref}, '{_INT_PATTERN}') "
            f"THEN TRY_CAST({ref} AS BIGINT) END"
        )
        return _ColumnSql(
            value, present, typed, "unparseable_int", "a whole number (optional sign and digits)"
        )
    if ctype == "dec":
        typed = (
            f"CASE WHEN regexp_full_match({ref}, '{_DEC_PATTERN}') "
            f"THEN TRY_CAST({ref} AS DECIMAL(18,4)) END"
        )
        return _ColumnSql(
            value,
            present,
            typed,
            "unparseable_dec",
            "a decimal number with '.' as decimal separator and no thousands "
            "separator, at most 14 digits before the point",
        )
    if ctype == "date":
        pattern, human = date_pattern(formats.date_format)
        if formats.null_dates:
            nulls = ", ".join(sql_literal(v) for v in formats.null_dates)
            present = f"({ref} IS NOT NULL AND {ref} NOT IN ({nulls}))"
        typed = (
            f"CASE WHEN {present} AND regexp_full_match({ref}, '{pattern}') "
            f"THEN CAST(try_strptime({ref}, {sql_literal(formats.date_format)}) AS DATE) "
            "END"
        )
        nulls_note = (
            f" ({', '.join(formats.null_dates)} means no date)" if formats.null_dates else ""
        )
        return _ColumnSql(
            value,
            present,
            typed,
            "unparseable_date",
            f"a calendar date written {human}{nulls_note}",
        )
    if ctype == "ts":
        typed = (
            f"CASE WHEN regexp_full_match({ref}, '{_TS_PATTERN}') "
            f"THEN TRY_CAST({ref} AS TIMESTAMPTZ) END"
        )
        return _ColumnSql(
            value,
            present,
            typed,
            "unparseable_ts",
            "an ISO 8601 timestamp with a UTC offset, e.g. 2024-03-01T08:15:00+02:00",
        )
    if ctype == "bool":
        trues = ", ".join(sql_literal(v.lower()) for v in formats.true_values)
        falses = ", ".join(sql_literal(v.lower()) for v in formats.false_values)
        false_case = f"WHEN lower({ref}) IN ({falses}) THEN false " if falses else ""
        missing = "false" if formats.empty_bool_is_false else "NULL"
        if formats.empty_bool_is_false:
            present = "true"  # empty is a value: false
        typed = (
            f"CASE WHEN {ref} IS NULL THEN {missing} "
            f"WHEN lower({ref}) IN ({trues}) THEN true {false_case}END"
        )
        words = [*formats.true_values, *formats.false_values]
        spelled = " or ".join(repr(w) for w in words)
        if formats.empty_bool_is_false:
            spelled += " or empty"
        return _ColumnSql(value, present, typed, "unparseable_bool", spelled)
    raise ValueError(f"unknown contract type {ctype!r}")


def _staged_value(source: ColumnInput) -> str:
    # Empty text is no value (source_contract.md: empty field = null).
    return f"nullif({source.expr}, '')" if source.is_text else source.expr


def validate_and_load(
    con: duckdb.DuckDBPyConnection,
    relation: str,
    spec: EntitySpec,
    formats: SystemFormats,
    inputs: dict[str, ColumnInput],
    drift: dict[str, str],
    context: FileContext,
) -> ValidationOutcome:
    """Insert the valid rows of `relation` into the raw table and their problems into rejects.

    `inputs`: contract column -> source; `drift`: raw drift column name -> SQL expression (text).
    Runs inside the caller's transaction.
    """
    # Layered so that each parse (regexp + cast) is evaluated once per value.
    staged = {name: quote_ident(f"s:{name}") for name in inputs}
    columns = {
        name: _column_sql(spec.columns[name].type, src, formats, staged[name])
        for name, src in inputs.items()
    }
    layer_values = ", ".join(
        [f"{_staged_value(src)} AS {staged[name]}" for name, src in inputs.items()]
        + [f"nullif({expr}, '') AS {quote_ident('d:' + name)}" for name, expr in drift.items()]
    )
    layer_typed = ", ".join(
        f"{sql.typed} AS {quote_ident('t:' + name)}" for name, sql in columns.items()
    )
    problems: dict[str, str] = {}
    for name, sql in columns.items():
        required = spec.columns[name].required
        missing = f"WHEN NOT ({sql.present}) THEN 'missing_required' " if required else ""
        parse = (
            f"WHEN ({sql.present}) AND {quote_ident('t:' + name)} IS NULL THEN '{sql.rule}' "
            if sql.rule
            else ""
        )
        if missing or parse:
            problems[name] = f"CASE {missing}{parse}END"
    layer_problems = ", ".join(f"{p} AS {quote_ident('p:' + name)}" for name, p in problems.items())
    row_ok = " AND ".join(f"{quote_ident('p:' + n)} IS NULL" for n in problems) or "true"

    personal = set(spec.personal)

    def shown(name: str) -> str:
        value = columns[name].value if name in columns else "NULL"
        return mask_sql(value) if name in personal else value

    key_sql = (
        shown(spec.key[0])
        if len(spec.key) == 1
        else "concat_ws('|', " + ", ".join(f"coalesce({shown(k)}, '')" for k in spec.key) + ")"
    )
    # Text kept only for rejected rows (observed value, record key): mostly NULL, nearly free.
    kept = [f"CASE WHEN NOT _ok THEN {key_sql} END AS record_key"]
    kept += [f"CASE WHEN NOT _ok THEN {shown(n)} END AS {quote_ident('v:' + n)}" for n in problems]
    typed_cols = [quote_ident("t:" + n) for n in columns] + [quote_ident("d:" + n) for n in drift]
    problem_cols = [quote_ident("p:" + n) for n in problems]
    checked = (
        f"SELECT _line, _ok, {', '.join([*typed_cols, *problem_cols, *kept])} FROM "
        f"(SELECT *, {row_ok} AS _ok FROM "
        f"(SELECT *{', ' + layer_problems if layer_problems else ''} FROM "
        f"(SELECT *{', ' + layer_typed if layer_typed else ''} FROM "
        f"(SELECT _line{', ' + layer_values if layer_values else ''} FROM {relation}))))"
    )
    # One pass parses and checks every value; the raw insert and the rejects read its result.
    con.execute(f"DROP TABLE IF EXISTS temp.{_CHECKED}")
    con.execute(f"CREATE TEMP TABLE {_CHECKED} AS {checked}")

    select_typed = [f"{quote_ident('t:' + name)} AS {quote_ident(name)}" for name in columns]
    select_typed += [f"{quote_ident('d:' + name)} AS {quote_ident(name)}" for name in drift]
    metadata = (
        "? AS _source_file, _line, CAST(? AS TIMESTAMP) AS _extract_ts, "
        "CAST(? AS TIMESTAMPTZ) AS _loaded_at, ? AS _run_id"
    )
    params = [context.source_file, context.extract_ts, context.loaded_at, context.run_id]
    loaded = con.execute(
        f"INSERT INTO {qualified(spec.raw_table)} BY NAME "
        f"SELECT {', '.join([*select_typed, metadata])} FROM temp.{_CHECKED} WHERE _ok",
        params,
    ).fetchall()[0][0]
    rejected = con.execute(f"SELECT count(*) FROM temp.{_CHECKED} WHERE NOT _ok").fetchall()[0][0]
    written = 0
    if rejected:
        parts = []
        for name in problems:
            sql = columns[name]
            reason = (
                f"CASE {quote_ident('p:' + name)} WHEN 'missing_required' THEN "
                f"{sql_literal(f'Required column {name!r} has no value.')} ELSE "
                f"{sql_literal(f'Value in column {name!r} is not {sql.expectation}.')} END"
            )
            parts.append(
                f"SELECT ? AS run_id, ? AS source_system, ? AS entity, ? AS source_file, "
                f"_line AS line, {sql_literal(name)} AS column_name, "
                f"{quote_ident('p:' + name)} AS rule, {reason} AS reason, "
                f"{quote_ident('v:' + name)} AS observed_value, record_key, "
                f"CAST(? AS TIMESTAMPTZ) AS loaded_at "
                f"FROM temp.{_CHECKED} WHERE NOT _ok AND {quote_ident('p:' + name)} IS NOT NULL"
            )
        reject_params = [
            context.run_id,
            spec.system,
            spec.entity,
            context.source_file,
            context.loaded_at,
        ] * len(parts)
        written = con.execute(
            f"INSERT INTO raw.rejects BY NAME {' UNION ALL '.join(parts)}", reject_params
        ).fetchall()[0][0]
    con.execute(f"DROP TABLE temp.{_CHECKED}")
    return ValidationOutcome(loaded, rejected, written)
