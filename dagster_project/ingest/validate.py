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

import contextlib
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

import duckdb

from dagster_project.ingest.contract import RAW_SQL_TYPE, EntitySpec, SystemFormats
from dagster_project.ingest.masking import mask_sql
from dagster_project.ingest.raw_tables import qualified, quote_ident

_PROBLEMS = "_ingest_problems"  # pass 1: the rows with a problem
_MAX_LISTED_LINES = 10_000  # lines left out by a constant list (Parquet: no stage table)

_INT_PATTERN = r"[+-]?[0-9]+"
_DEC_PATTERN = r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)"
_TS_PATTERN = (
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,9})?)?"
    r"(Z|z|[+-][0-9]{2}(:?[0-9]{2})?)"
)
# Sufficient patterns: a value that matches one of these parses for certain, so its cast need not be
# tried in the check pass (values that do not match get the full test: pattern above and cast).
# int: at most 18 digits fit BIGINT. dec: at most 13 digits before the point fit DECIMAL(18,4)
# even after rounding the fraction up. Dates: years 1000-2999 and a day that every year has in
# that month (29 February gets the full test). Checked exhaustively for dates and by 500k random
# values for numbers (tests/test_ingest_csv_parsing.py); the load casts with CAST, so a value
# that slipped through would stop the load, never load wrong.
_INT_SURE = r"[+-]?[0-9]{1,18}"
_DEC_SURE = r"[+-]?([0-9]{1,13}(\.[0-9]{0,18})?|\.[0-9]{1,18})"
_YEAR_SURE = "[12][0-9]{3}"
_MONTH_DAY_SURE = (
    "(0[13578]|1[02]){sep}(0[1-9]|[12][0-9]|3[01])"
    "|(0[469]|11){sep}(0[1-9]|[12][0-9]|30)"
    "|02{sep}(0[1-9]|1[0-9]|2[0-8])"
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


def sure_date_pattern(fmt: str) -> str | None:
    """A pattern of valid dates only, for formats of %Y and %m, %d in that order (or None).

    Every value it matches is a real calendar date in `fmt` (see _MONTH_DAY_SURE).
    """
    match = re.fullmatch(r"(?P<a>[^%]*)%Y(?P<b>[^%]*)%m(?P<sep>[^%]?)%d(?P<c>[^%]*)", fmt)
    if match is None:
        return None
    month_day = _MONTH_DAY_SURE.format(sep=re.escape(match["sep"]))
    return (
        f"{re.escape(match['a'])}{_YEAR_SURE}{re.escape(match['b'])}"
        f"({month_day}){re.escape(match['c'])}"
    )


def _parses(ref: str, sure: str | None, pattern: str, cast: str) -> str:
    """Boolean SQL: the present value `ref` matches `pattern` and `cast` (SQL) is not NULL.

    A value matching `sure` is known to do both; only the others pay for the cast.
    """
    full = f"WHEN regexp_full_match({ref}, '{pattern}') THEN ({cast}) IS NOT NULL "
    if sure is None:
        return f"CASE {full}ELSE false END"
    return f"CASE WHEN regexp_full_match({ref}, '{sure}') THEN true {full}ELSE false END"


@dataclass(frozen=True)
class _ColumnSql:
    """SQL for one column, over `ref`: the staged value (text with '' as NULL, or typed)."""

    value: str  # the value as text, NULL when missing (for observed_value and keys)
    present: str  # boolean: a value is there (after null words)
    typed: str  # the raw-typed value (NULL when missing or unparseable)
    rule: str  # name of the parse rule
    expectation: str  # what a valid value looks like, for the reason sentence
    # The raw-typed value of a row known to have no problem in this column: equal to `typed`
    # there, without the format check (the check already passed) and failing loudly otherwise.
    loaded: str = ""
    # Boolean: a present value parses, i.e. `typed` is not NULL (cheaper ways where there are).
    parses: str = ""

    def __post_init__(self) -> None:
        if not self.loaded:
            object.__setattr__(self, "loaded", self.typed)
        if not self.parses:
            object.__setattr__(self, "parses", f"({self.typed}) IS NOT NULL")


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
            value,
            present,
            typed,
            "unparseable_int",
            "a whole number (optional sign and digits)",
            loaded=f"CAST({ref} AS BIGINT)",
            parses=_parses(ref, _INT_SURE, _INT_PATTERN, f"TRY_CAST({ref} AS BIGINT)"),
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
            loaded=f"CAST({ref} AS DECIMAL(18,4))",
            parses=_parses(ref, _DEC_SURE, _DEC_PATTERN, f"TRY_CAST({ref} AS DECIMAL(18,4))"),
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
            loaded=(
                f"CASE WHEN {present} "
                f"THEN CAST(strptime({ref}, {sql_literal(formats.date_format)}) AS DATE) END"
            ),
            parses=_parses(
                ref,
                sure_date_pattern(formats.date_format),
                pattern,
                f"try_strptime({ref}, {sql_literal(formats.date_format)})",
            ),
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
            loaded=f"CAST({ref} AS TIMESTAMPTZ)",
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


@dataclass(frozen=True)
class RowCheck:
    """Pass 1's test, for evaluating while the rows are staged (see problem_flag)."""

    values: list[str]  # select-list items over the staged columns: the values, named
    has_problem: str  # boolean over those names: the row has at least one problem


def _columns_sql(
    spec: EntitySpec, formats: SystemFormats, inputs: dict[str, ColumnInput]
) -> tuple[dict[str, _ColumnSql], list[str]]:
    staged = {name: quote_ident(f"s:{name}") for name in inputs}
    columns = {
        name: _column_sql(spec.columns[name].type, src, formats, staged[name])
        for name, src in inputs.items()
    }
    values = [f"{_staged_value(src)} AS {staged[name]}" for name, src in inputs.items()]
    return columns, values


def problem_flag(
    spec: EntitySpec, formats: SystemFormats, inputs: dict[str, ColumnInput]
) -> RowCheck | None:
    """The test that picks pass 1's rows, as SQL (None: no row can have a problem).

    A stage that stores its result in a boolean column lets validate_and_load's pass 1 (its
    `flag`) look at the flagged rows only, instead of reading every value a second time. It is
    the same test as pass 1's: a required value missing, or a present value that does not parse.
    """
    columns, values = _columns_sql(spec, formats, inputs)
    fine: list[str] = []
    for name, sql in columns.items():
        required = spec.columns[name].required
        if required and sql.rule:
            fine.append(f"(({sql.present}) AND {sql.parses})")
        elif required:
            fine.append(f"({sql.present})")
        elif sql.rule:
            fine.append(f"(NOT ({sql.present}) OR {sql.parses})")
    if not fine:
        return None
    return RowCheck(values, f"NOT ({' AND '.join(fine)})")


def validate_and_load(
    con: duckdb.DuckDBPyConnection,
    relation: str,
    spec: EntitySpec,
    formats: SystemFormats,
    inputs: dict[str, ColumnInput],
    drift: dict[str, str],
    context: FileContext,
    *,
    stage_table: str | None = None,
    flag: str | None = None,
) -> ValidationOutcome:
    """Insert the valid rows of `relation` into the raw table and their problems into rejects.

    `inputs`: contract column -> source; `drift`: raw drift column name -> SQL expression (text).
    `stage_table`: the temp table behind `relation` when the relation's `_k` is that table's
    rowid; its rows with problems are then deleted before the load. `flag`: a boolean column of
    `relation` holding problem_flag's test (true for every row with a problem); pass 1 then
    checks only those rows. Runs inside the caller's transaction.

    Two passes over the staged rows, neither materialising the whole file: the first checks every
    value and keeps only the rows with a problem (a small temp table: line, problems, observed
    values); the second inserts every other row, typed, straight into the raw table in the
    relation's order. A row that passed every check needs no format test any more, only its cast.
    """
    columns, values = _columns_sql(spec, formats, inputs)
    problems: dict[str, str] = {}
    for name, sql in columns.items():
        required = spec.columns[name].required
        missing = f"WHEN NOT ({sql.present}) THEN 'missing_required' " if required else ""
        parse = (
            f"WHEN ({sql.present}) AND NOT {quote_ident('ok:' + name)} THEN '{sql.rule}' "
            if sql.rule
            else ""
        )
        if missing or parse:
            problems[name] = f"CASE {missing}{parse}END"

    rejected = 0
    if problems:
        keep = ["_k"] if stage_table else []
        source = f"{relation} WHERE {flag}" if flag else relation
        rejected = _find_problem_rows(con, source, spec, columns, values, problems, keep)

    # Pass 2: every row without a problem, typed (the cast cannot fail: its check passed).
    select_typed = [f"{columns[name].loaded} AS {quote_ident(name)}" for name in columns]
    select_typed += [f"{quote_ident('d:' + name)} AS {quote_ident(name)}" for name in drift]
    metadata = (
        "? AS _source_file, _line, CAST(? AS TIMESTAMP) AS _extract_ts, "
        "CAST(? AS TIMESTAMPTZ) AS _loaded_at, ? AS _run_id"
    )
    layer_values = ", ".join(
        ["_line", *values]
        + [f"nullif({expr}, '') AS {quote_ident('d:' + name)}" for name, expr in drift.items()]
    )
    without_problems = _without_problem_rows(con, rejected, stage_table)
    source = f"(SELECT {layer_values} FROM {relation}{without_problems})"
    params = [context.source_file, context.extract_ts, context.loaded_at, context.run_id]
    with _file_order_kept(con):
        loaded = con.execute(
            f"INSERT INTO {qualified(spec.raw_table)} BY NAME "
            f"SELECT {', '.join([*select_typed, metadata])} FROM {source}",
            params,
        ).fetchall()[0][0]
    written = _write_problem_rejects(con, spec, columns, problems, context) if rejected else 0
    con.execute(f"DROP TABLE IF EXISTS temp.{_PROBLEMS}")
    return ValidationOutcome(loaded, rejected, written)


@contextmanager
def _file_order_kept(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Load in the relation's (the file's) order, on every thread the connection has.

    With order kept, several threads leave some part-filled row groups that the next checkpoint
    rewrites; one thread fills them all but writes alone. On an idle 2-core machine the two
    threads win (erp/deliveries, 20.5M rows, load plus checkpoint: 24.6 s vs 27.9 s on one
    thread); only a machine busy with other work favours the single writer.
    """
    ((ordered,),) = con.execute("SELECT current_setting('preserve_insertion_order')").fetchall()
    restore = f"SET preserve_insertion_order = {'true' if ordered else 'false'}"
    con.execute("SET preserve_insertion_order = true")
    try:
        yield
    except BaseException:
        # A failed load leaves the transaction aborted, which refuses the SET: the load's own
        # error is the one to report.
        with contextlib.suppress(duckdb.Error):
            con.execute(restore)
        raise
    con.execute(restore)


def _find_problem_rows(
    con: duckdb.DuckDBPyConnection,
    relation: str,
    spec: EntitySpec,
    columns: dict[str, _ColumnSql],
    values: list[str],
    problems: dict[str, str],
    keep: list[str],
) -> int:
    """Pass 1: keep the rows with at least one problem in temp `_PROBLEMS`; return their count."""
    # Layered so that each parse (regexp + cast) is evaluated once per value.
    layer_typed = ", ".join(
        f"{columns[name].parses} AS {quote_ident('ok:' + name)}"
        for name in problems
        if columns[name].rule
    )
    layer_problems = ", ".join(f"{p} AS {quote_ident('p:' + name)}" for name, p in problems.items())
    row_ok = " AND ".join(f"{quote_ident('p:' + n)} IS NULL" for n in problems)

    personal = set(spec.personal)

    def shown(name: str) -> str:
        value = columns[name].value if name in columns else "NULL"
        return mask_sql(value) if name in personal else value

    key_sql = (
        shown(spec.key[0])
        if len(spec.key) == 1
        else "concat_ws('|', " + ", ".join(f"coalesce({shown(k)}, '')" for k in spec.key) + ")"
    )
    kept = [f"{key_sql} AS record_key"]
    kept += [f"{shown(n)} AS {quote_ident('v:' + n)}" for n in problems]
    problem_cols = [quote_ident("p:" + n) for n in problems]
    checked = (
        f"SELECT {', '.join(['_line', *keep, *problem_cols, *kept])} FROM "
        f"(SELECT *, {layer_problems} FROM "
        f"(SELECT *{', ' + layer_typed if layer_typed else ''} FROM "
        f"(SELECT {', '.join(['_line', *keep, *values])} FROM {relation}))) "
        f"WHERE NOT ({row_ok})"
    )
    con.execute(f"DROP TABLE IF EXISTS temp.{_PROBLEMS}")
    con.execute(f"CREATE TEMP TABLE {_PROBLEMS} AS {checked}")
    return con.execute(f"SELECT count(*) FROM temp.{_PROBLEMS}").fetchall()[0][0]


def _without_problem_rows(
    con: duckdb.DuckDBPyConnection, rejected: int, stage_table: str | None
) -> str:
    """Leave pass 1's rows out of the relation; return the SQL clause that does it, if any.

    Both ways keep the relation's row order (a join would not): deleting the rows from the stage
    table behind the relation (its other rows keep their rowids, hence their lines), or a filter
    on a constant list of lines.
    """
    if not rejected:
        return ""
    if stage_table:
        con.execute(
            f"DELETE FROM temp.{stage_table} WHERE rowid IN (SELECT _k FROM temp.{_PROBLEMS})"
        )
        return ""
    if rejected > _MAX_LISTED_LINES:  # a join then: same rows, row order not guaranteed
        return f" WHERE _line NOT IN (SELECT _line FROM temp.{_PROBLEMS})"
    lines = [line for (line,) in con.execute(f"SELECT _line FROM temp.{_PROBLEMS}").fetchall()]
    return f" WHERE _line NOT IN ({', '.join(str(int(line)) for line in lines)})"


def _write_problem_rejects(
    con: duckdb.DuckDBPyConnection,
    spec: EntitySpec,
    columns: dict[str, _ColumnSql],
    problems: dict[str, str],
    context: FileContext,
) -> int:
    """One reject row per problem of the rows kept by pass 1."""
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
            f"FROM temp.{_PROBLEMS} WHERE {quote_ident('p:' + name)} IS NOT NULL"
        )
    reject_params = [
        context.run_id,
        spec.system,
        spec.entity,
        context.source_file,
        context.loaded_at,
    ] * len(parts)
    return con.execute(
        f"INSERT INTO raw.rejects BY NAME {' UNION ALL '.join(parts)}", reject_params
    ).fetchall()[0][0]
