"""Reading one CSV extract into a temporary staging relation, fast and line-accurate.

The result is the temp view `_ingest_rows`: one VARCHAR column per file column (c0, c1, ... in
file order), `_line`, the physical line where the record starts, and `_k`, the row's rowid in the
temp table `_ingest_stage` behind the view (rows deleted from that table leave the view; the other
rows keep their line numbers; the fast path's stage also has `_nl`/`_bad`, see _bulk_read), plus the
records that were structurally unusable (wrong number of values, broken quoting, bad encoding).

Fast path: DuckDB's native reader with a fixed dialect (no sniffing). DuckDB numbers records,
not physical lines, and an unclosed quote makes it read on across line breaks, so its result is
only used when it can be verified against the byte scan (csv_layout) and the record rules applied
to the flagged lines (csv_records):

1. flagged lines are resolved in Python; lines that are rejected (or blank) are left out of a
   temporary copy of the file, so a broken quote cannot swallow the lines after it;
2. DuckDB reads the file (or the copy); its structural rejects are re-classified by the same rules;
3. rows + DuckDB's rejects must equal the records the layout predicts, and the rows holding line
   breaks must be exactly the multi-line records found in step 1, at the same lines.

Anything else (a mismatch, invalid UTF-8, a DuckDB error) falls back to the exact parser
(csv_records.parse_exact), which applies the rules to every line. Staging only creates temporary
objects; the caller writes the warehouse in its own transaction.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import duckdb
import numpy as np
import pyarrow as pa

from dagster_project.ingest.csv_layout import CsvLayout, read_span
from dagster_project.ingest.csv_records import (
    FlaggedLines,
    HeaderInfo,
    ParsedRecord,
    StructuralReject,
    classify_line,
    parse_exact,
    read_record,
    resolve_flagged_lines,
)
from dagster_project.ingest.validate import RowCheck

log = logging.getLogger(__name__)

STAGE_TABLE = "_ingest_stage"
ROWS_VIEW = "_ingest_rows"
_NL = "_nl"  # fast path's stage: the row holds a line break inside a value
_BAD = "_bad"  # fast path's stage, given a row check: the row has a problem
_GAPS_TABLE = "_ingest_gaps"
_LINED_TABLE = "_ingest_stage_lined"
_REJECT_ERRORS = "_ingest_reject_errors"
_REJECT_SCANS = "_ingest_reject_scans"
_BATCH_ROWS = 100_000
# The bulk reader's buffer: DuckDB reads a quarter of it per task (here 16 MB, ~270k order lines)
# and each task becomes its own run of row groups in the stage and, through the load, in the raw
# table. The default (a few MB a task) leaves a part-filled row group after every full one, which
# the next checkpoint merges, decompressing and compressing most of the table again (order lines
# at 100k: ~4 CPU s). Larger tasks leave one part-filled group in every few, which stay as they are.
_READ_BUFFER_BYTES = 1 << 26
_MAX_CASE_GAPS = 64


class CsvHeaderError(ValueError):
    """The header row itself is unusable: the file cannot be read against the contract."""


class _FastPathRefused(Exception):
    """The bulk reader's result could not be verified; use the exact parser."""


@dataclass(frozen=True)
class StagedCsv:
    relation: str  # temp view: c0..c{n-1} VARCHAR, _line BIGINT, _k (rowid in STAGE_TABLE)
    records: int  # data records seen: staged rows + structural rejects
    structural_rejects: list[StructuralReject]
    parser: str  # 'duckdb' | 'duckdb+copy' | 'python'
    fallback_reason: str | None = None
    flag: str | None = None  # column of `relation` holding the row check's result, if any


@dataclass
class CsvSource:
    """What the bulk reader reads for a file: the flagged lines resolved, and the file itself or
    a copy without the lines that must be left out (in a scratch folder until released)."""

    header: HeaderInfo
    flagged: FlaggedLines
    path: Path
    _release: list[Callable[[], None]] = field(default_factory=list)

    def release(self) -> None:
        """Delete the copy (if any); idempotent."""
        while self._release:
            self._release.pop()()


def prepare_source(
    path: Path,
    layout: CsvLayout,
    header: HeaderInfo,
    before_copy: Callable[[], bool] | None = None,
    after_release: Callable[[], None] | None = None,
) -> CsvSource | None:
    """Resolve the flagged lines and, where needed, write the copy the bulk reader reads.

    `before_copy` (scan_ahead: wait for a free copy slot) may decline the copy: then None.
    `after_release` runs once the copy is deleted.
    """
    flagged = resolve_flagged_lines(path, layout, header)
    if not flagged.needs_copy:
        return CsvSource(header, flagged, path)
    if before_copy is not None and not before_copy():
        return None
    release = [after_release] if after_release is not None else []
    try:
        scratch = tempfile.TemporaryDirectory(prefix="ingest_")
        release.append(scratch.cleanup)
        copy = Path(scratch.name) / path.name
        _copy_without(path, flagged.dropped, copy, layout.size)
    except BaseException:
        while release:
            release.pop()()
        raise
    return CsvSource(header, flagged, copy, release)


def stage_column(index: int) -> str:
    return f"c{index}"


def read_csv_header(path: Path, layout: CsvLayout) -> list[str]:
    if layout.header is None:
        raise CsvHeaderError("the file is empty: it has no header row")
    try:
        text = read_span(path, layout.header).decode("utf-8-sig")
    except UnicodeDecodeError:
        raise CsvHeaderError("the header row is not valid UTF-8") from None
    record = read_record(iter([text]))
    if record.error is not None or record.fields is None:
        raise CsvHeaderError(f"the header row cannot be parsed ({record.error})")
    return record.fields


def stage_csv(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    layout: CsvLayout,
    header: HeaderInfo,
    *,
    exact: bool = False,
    row_check: RowCheck | None = None,
    source: CsvSource | None = None,
) -> StagedCsv:
    """Stage the file; `exact=True` skips the fast path (benchmarks, diagnosis).

    `row_check` (validate.problem_flag): evaluated while the bulk reader stages the rows, into
    the column named by the result's `flag` (the exact parser leaves it to validation).
    `source`: prepare_source's result for this file and header, made ahead (scan_ahead); it is
    released once read.
    """
    drop_stage(con)
    if exact:
        return _stage_exact(con, path, layout, header, "exact parser requested")
    try:
        return _stage_fast(con, path, layout, header, row_check, source)
    except _FastPathRefused as refused:
        reason = str(refused)
    log.info("exact CSV parser for %s: %s", path.name, reason)
    drop_stage(con)
    return _stage_exact(con, path, layout, header, reason)


def drop_stage(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(f"DROP VIEW IF EXISTS temp.{ROWS_VIEW}")
    for table in (STAGE_TABLE, _LINED_TABLE, _GAPS_TABLE, _REJECT_ERRORS, _REJECT_SCANS):
        con.execute(f"DROP TABLE IF EXISTS temp.{table}")


# --- fast path ----------------------------------------------------------------------------------


def _stage_fast(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    layout: CsvLayout,
    header: HeaderInfo,
    row_check: RowCheck | None,
    source: CsvSource | None = None,
) -> StagedCsv:
    if source is None or source.header != header:
        if source is not None:
            source.release()
        source = prepare_source(path, layout, header)
        assert source is not None
    try:
        _bulk_read(con, source.path, header.width, row_check)
    finally:
        source.release()
    flagged = source.flagged
    duck_rejects = _duckdb_rejects(con, layout, header, flagged)
    rows = con.execute(f"SELECT count(*) FROM temp.{STAGE_TABLE}").fetchall()[0][0]
    if rows + len(duck_rejects) != flagged.expected_records:
        raise _FastPathRefused(
            f"DuckDB returned {rows} rows and {len(duck_rejects)} rejects, "
            f"the layout holds {flagged.expected_records} records"
        )
    excluded = flagged.excluded | {r.line for r in duck_rejects}
    _create_rows_view(con, excluded)
    _verify_multi_line_records(con, header.width, flagged, {r.line for r in duck_rejects})
    return StagedCsv(
        relation=ROWS_VIEW,
        records=flagged.expected_records + len(flagged.rejects),
        structural_rejects=sorted(flagged.rejects + duck_rejects, key=lambda r: r.line),
        parser="duckdb+copy" if flagged.needs_copy else "duckdb",
        flag=_BAD if row_check is not None else None,
    )


def _bulk_read(
    con: duckdb.DuckDBPyConnection, source: Path, width: int, row_check: RowCheck | None
) -> None:
    """Read the file into the stage table: c0.., `_nl` (the row holds a line break in a value)
    and, with a row check, `_bad` (the row has a problem).

    Both are found while the values pass by anyway; the multi-line check and validation's first
    pass then read one boolean column instead of every value again.
    """
    names = [stage_column(i) for i in range(width)]
    columns = ", ".join(f"'{name}': 'VARCHAR'" for name in names)
    has_break = " OR ".join(f"contains({name}, chr(10))" for name in names)
    select = [*names, f"coalesce({has_break}, false) AS {_NL}"]
    check_values = ""
    if row_check is not None:
        select.append(f"{row_check.has_problem} AS {_BAD}")
        check_values = ", " + ", ".join(row_check.values)
    literal = str(source).replace("'", "''")
    sql = (
        f"CREATE TEMP TABLE {STAGE_TABLE} AS SELECT {', '.join(select)} "
        f"FROM (SELECT *{check_values} FROM read_csv('{literal}', "
        "delim=',', quote='\"', escape='\"', header=true, auto_detect=false, "
        f"columns={{{columns}}}, strict_mode=true, encoding='utf-8', buffer_size={_READ_BUFFER_BYTES}, "
        "store_rejects=true, "
        f"rejects_table='{_REJECT_ERRORS}', rejects_scan='{_REJECT_SCANS}'))"
    )
    # Row order is how rows get their line numbers: the scan must keep the file's order.
    try:
        with _insertion_order_kept(con):
            con.execute(sql)
    except duckdb.Error as exc:
        raise _FastPathRefused(f"DuckDB could not read the file: {type(exc).__name__}") from None


@contextmanager
def _insertion_order_kept(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    ((ordered,),) = con.execute("SELECT current_setting('preserve_insertion_order')").fetchall()
    try:
        if not ordered:
            con.execute("SET preserve_insertion_order = true")
        yield
    finally:
        if not ordered:
            con.execute("SET preserve_insertion_order = false")


def _duckdb_rejects(
    con: duckdb.DuckDBPyConnection, layout: CsvLayout, header: HeaderInfo, flagged: FlaggedLines
) -> list[StructuralReject]:
    found = con.execute(
        f"SELECT line, list(DISTINCT error_type), any_value(csv_line) "
        f"FROM temp.{_REJECT_ERRORS} GROUP BY line ORDER BY line"
    ).fetchall()
    if not found:
        return []
    excluded = np.array(sorted(flagged.excluded), dtype=np.int64)
    rejects = []
    for record_line, error_types, csv_line in found:
        if "INVALID UNICODE" in error_types:
            raise _FastPathRefused("the file holds invalid UTF-8")
        # DuckDB's `line` counts records (header = 1); map the record to its physical line.
        physical = _kth_kept_line(int(record_line) - 2, excluded)
        if physical in flagged.multi_line:
            raise _FastPathRefused(f"DuckDB rejected the multi-line record at line {physical}")
        reject = classify_line(
            csv_line or "",
            header,
            line=physical,
            unterminated_last_line=layout.is_unterminated_last_line(physical),
        )
        if reject is None:
            raise _FastPathRefused(f"DuckDB rejected line {physical}, the record rules do not")
        rejects.append(reject)
    return rejects


def _kth_kept_line(k: int, excluded: np.ndarray) -> int:
    """Physical line of the k-th (0-based) data line that is not excluded."""
    line = k + 2
    while True:
        candidate = k + 2 + int(np.searchsorted(excluded, line, side="right"))
        if candidate == line:
            return line
        line = candidate


def _create_rows_view(con: duckdb.DuckDBPyConnection, excluded: set[int]) -> None:
    if not excluded:
        con.execute(
            f"CREATE TEMP VIEW {ROWS_VIEW} AS "
            f"SELECT *, rowid AS _k, rowid + 2 AS _line FROM temp.{STAGE_TABLE}"
        )
        return
    # Row k starts on line k + 2 + (excluded lines before it). With x_j the sorted excluded
    # lines, h_j = x_j - 2 - j rows come before x_j; an as-of join finds the count for each row.
    lines = np.array(sorted(excluded), dtype=np.int64)
    h = lines - 2 - np.arange(lines.size, dtype=np.int64)
    last_of_run = np.r_[h[1:] != h[:-1], True]
    h, cnt = h[last_of_run], (np.arange(lines.size) + 1)[last_of_run]
    if h.size <= _MAX_CASE_GAPS:  # a few gaps: a CASE chain is cheaper than a join
        case = " ".join(
            f"WHEN rowid >= {int(a)} THEN {int(b)}" for a, b in zip(h[::-1], cnt[::-1], strict=True)
        )
        con.execute(
            f"CREATE TEMP VIEW {ROWS_VIEW} AS "
            f"SELECT *, rowid AS _k, rowid + 2 + CASE {case} ELSE 0 END AS _line "
            f"FROM temp.{STAGE_TABLE}"
        )
        return
    con.execute(
        f"CREATE TEMP TABLE {_GAPS_TABLE} AS "
        "SELECT unnest(CAST(? AS BIGINT[])) AS h, unnest(CAST(? AS BIGINT[])) AS cnt",
        [h.tolist(), cnt.tolist()],
    )
    # Many gaps: the lines are computed once, by an as-of join, into a copy of the stage in file
    # order (a join does not keep row order, and the load keeps the stage's order).
    with _insertion_order_kept(con):
        con.execute(
            f"CREATE TEMP TABLE {_LINED_TABLE} AS "
            f"SELECT s.* EXCLUDE (_k), s._k + 2 + coalesce(g.cnt, 0) AS _line "
            f"FROM (SELECT rowid AS _k, * FROM temp.{STAGE_TABLE}) s "
            f"ASOF LEFT JOIN temp.{_GAPS_TABLE} g ON s._k >= g.h ORDER BY s._k"
        )
    con.execute(f"DROP TABLE temp.{STAGE_TABLE}")
    con.execute(f"ALTER TABLE temp.{_LINED_TABLE} RENAME TO {STAGE_TABLE}")
    con.execute(f"CREATE TEMP VIEW {ROWS_VIEW} AS SELECT *, rowid AS _k FROM temp.{STAGE_TABLE}")


def _verify_multi_line_records(
    con: duckdb.DuckDBPyConnection, width: int, flagged: FlaggedLines, rejected: set[int]
) -> None:
    """Rows holding line breaks must be exactly the multi-line records, at the same lines."""
    cols = [stage_column(i) for i in range(width)]
    breaks = " + ".join(
        f"coalesce(length({c}) - length(replace({c}, chr(10), '')), 0)" for c in cols
    )
    found = dict(
        con.execute(f"SELECT _line, {breaks} FROM temp.{ROWS_VIEW} WHERE {_NL}").fetchall()
    )
    expected = {start: n - 1 for start, n in flagged.multi_line.items() if start not in rejected}
    if found != expected:
        raise _FastPathRefused("line breaks inside values do not match the layout")


def _copy_without(path: Path, spans: list[tuple[int, int]], dest: Path, size: int) -> None:
    with path.open("rb") as src, dest.open("wb") as out:
        position = 0
        for start, end in [*spans, (size, size)]:
            _copy_range(src, out, position, start - position)
            position = end


def _copy_range(src: BinaryIO, out: BinaryIO, offset: int, length: int) -> None:
    """Append `length` bytes of `src` from `offset` to `out` (in the kernel where it can)."""
    out.flush()
    while length > 0:
        try:
            copied = os.copy_file_range(src.fileno(), out.fileno(), length, offset)
        except OSError:  # e.g. across file systems on older kernels: copy through user space
            break
        if copied == 0:
            break
        offset += copied
        length -= copied
    if length > 0:
        out.seek(0, os.SEEK_END)
        src.seek(offset)
        while length > 0:
            block = src.read(min(length, 1 << 24))
            if not block:
                raise OSError(f"{src.name} ended while copying it")
            out.write(block)
            length -= len(block)


# --- exact fallback -----------------------------------------------------------------------------


def _stage_exact(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    layout: CsvLayout,
    header: HeaderInfo,
    reason: str,
) -> StagedCsv:
    width = header.width
    cols = [stage_column(i) for i in range(width)]
    definition = ", ".join(f"{c} VARCHAR" for c in cols)
    con.execute(f"CREATE TEMP TABLE {STAGE_TABLE} ({definition}, _line BIGINT)")
    rejects: list[StructuralReject] = []
    records = 0
    batch: list[ParsedRecord] = []
    assert layout.header is not None
    for item in parse_exact(
        path, header, layout.header.end, layout.physical_lines, layout.ends_with_newline
    ):
        records += 1
        if isinstance(item, StructuralReject):
            rejects.append(item)
            continue
        batch.append(item)
        if len(batch) >= _BATCH_ROWS:
            _insert_batch(con, cols, batch)
            batch = []
    if batch:
        _insert_batch(con, cols, batch)
    con.execute(f"CREATE TEMP VIEW {ROWS_VIEW} AS SELECT *, rowid AS _k FROM temp.{STAGE_TABLE}")
    return StagedCsv(ROWS_VIEW, records, rejects, "python", fallback_reason=reason)


def _insert_batch(con: duckdb.DuckDBPyConnection, cols: list[str], batch: list[ParsedRecord]):
    data = {c: pa.array([r.fields[i] for r in batch], pa.string()) for i, c in enumerate(cols)}
    data["_line"] = pa.array([r.line for r in batch], pa.int64())
    con.register("_ingest_batch_arrow", pa.table(data))
    try:
        con.execute(f"INSERT INTO temp.{STAGE_TABLE} SELECT * FROM _ingest_batch_arrow")
    finally:
        con.unregister("_ingest_batch_arrow")
