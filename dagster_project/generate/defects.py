"""Malformed rows planted into the landing CSVs, and the record of where they are.

Each planted defect is a damaged copy of a generated row, inserted right after it, so every
generated record still loads and the ground truth stays consistent. The kinds and how they
look (notes/common.md):

- unparseable_date: a date or ts field holds '2024-13-45', '31.12.2024', ...
- text_in_numeric: an int or dec field holds text ('n/a', '12,5 EUR' quoted, ...)
- missing_required: a required field is empty
- broken_quoting: a string field opens a quote that is never closed on that line
- truncated_last_line: the file's last line is cut inside a field that is not the last column,
  with no trailing newline (the cut row is a copy of a generated row too)

Only rows that fit on one physical line are damaged, and files with multi-line rows get no
broken quoting (an unclosed quote there could not be told apart from a real line break).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

import numpy as np

from dagster_project.generate.difficulty import Difficulty
from dagster_project.generate.writer import CsvSink

_BAD_DATES = {
    "crm": ("2024-13-45", "31.12.2024", "2024-02-30"),
    "erp": ("20241345", "31.12.2024", "20240230"),
}
_BAD_TS = ("2024-13-45T08:00:00+01:00", "31.12.2024 08:15", "2024-02-30T10:00:00+02:00")
_BAD_NUMBERS = ("n/a", "12,5 EUR", "approx. 40", "1.234,56", "TBD", "#N/A")


@dataclass(frozen=True)
class PlantedDefect:
    file: str  # relative to the landing folder
    line: int  # physical line, header = 1
    column: str
    kind: str


def _fields(line: bytes) -> list[str]:
    return next(csv.reader(io.StringIO(line.decode("utf-8"))))


def _cell(value: str) -> str:
    """RFC 4180 minimal quoting of one field (empty stays empty: null)."""
    if any(ch in value for ch in ',"\r\n'):
        return '"' + value.replace('"', '""') + '"'
    return value


def _render(fields: list[str]) -> str:
    return ",".join(_cell(f) for f in fields) + "\n"


def _single_line(raw: bytes) -> bool:
    return raw.count(b"\n") == 1


def _columns_for(sink: CsvSink, kind: str) -> list[int]:
    columns = [sink.contract.column(c) for c in sink.column_order]
    if kind == "unparseable_date":
        return [i for i, c in enumerate(columns) if c.type in ("date", "ts")]
    if kind == "text_in_numeric":
        return [i for i, c in enumerate(columns) if c.type in ("int", "dec")]
    if kind == "missing_required":
        return [i for i, c in enumerate(columns) if c.required]
    if kind == "broken_quoting":
        return [i for i, c in enumerate(columns) if c.type == "str"]
    raise ValueError(kind)


def _damage(sink: CsvSink, fields: list[str], column: int, kind: str,
            rng: np.random.Generator) -> str:
    spec = sink.contract.column(sink.column_order[column])
    damaged = list(fields)
    if kind == "unparseable_date":
        choices = _BAD_TS if spec.type == "ts" else _BAD_DATES[sink.contract.system]
        damaged[column] = choices[int(rng.integers(0, len(choices)))]
    elif kind == "text_in_numeric":
        damaged[column] = _BAD_NUMBERS[int(rng.integers(0, len(_BAD_NUMBERS)))]
    elif kind == "missing_required":
        damaged[column] = ""
    elif kind == "broken_quoting":
        # Render the row normally, then open the target field's quote and never close it.
        cells = [_cell(f) for f in damaged]
        value = damaged[column] or "n"
        cells[column] = '"' + value.replace('"', '""')
        return ",".join(cells) + "\n"
    return _render(damaged)


def _defect_count(rows: int, diff: Difficulty) -> int:
    if rows < diff.defect_min_rows:
        return 0
    return int(min(diff.defect_max_per_file, max(1, round(rows * diff.defect_rate))))


def plant(sink: CsvSink, rng: np.random.Generator, diff: Difficulty,
          truncate: bool) -> tuple[list[PlantedDefect], int]:
    """Choose, damage and insert the malformed rows of one file, then write it.

    Returns the planted defects (with their physical lines) and the bytes written.
    """
    has_multiline = any(chunk.line_counts is not None for chunk in sink._chunks)
    kinds = [(k, w) for k, w in diff.defect_kind_weights
             if _columns_for(sink, k) and not (k == "broken_quoting" and has_multiline)]
    count = _defect_count(sink.rows, diff) if kinds else 0
    chosen: dict[int, tuple[bytes, str, str]] = {}
    attempts = 0
    while len(chosen) < count and attempts < count * 20:
        attempts += 1
        row = int(rng.integers(0, sink.rows))
        if row in chosen:
            continue
        raw = sink.read_row(row)
        if not _single_line(raw):
            continue
        weights = np.array([w for _, w in kinds])
        kind = kinds[int(rng.choice(len(kinds), p=weights / weights.sum()))][0]
        columns = _columns_for(sink, kind)
        fields = _fields(raw)
        if kind == "broken_quoting":  # prefer a field that has text to cut open
            filled = [c for c in columns if fields[c]]
            columns = filled or columns
        column = columns[int(rng.integers(0, len(columns)))]
        line = _damage(sink, fields, column, kind, rng)
        chosen[row] = (line.encode("utf-8"), sink.column_order[column], kind)

    planted: list[PlantedDefect] = []
    insertions: list[tuple[int, bytes]] = []
    for rank, row in enumerate(sorted(chosen)):
        line, column, kind = chosen[row]
        insertions.append((row, line))
        planted.append(PlantedDefect(sink.rel_path, 1 + sink.lines_through(row) + rank + 1,
                                     column, kind))

    tail = None
    if truncate and sink.rows:
        tail, column = _truncated_copy(sink, rng)
        if tail is not None:
            last_line = 1 + sink.lines_through(sink.rows - 1) + len(insertions) + 1
            planted.append(PlantedDefect(sink.rel_path, last_line, column, "truncated_last_line"))
    written = sink.finish(insertions, tail)
    return planted, written


def _truncated_copy(sink: CsvSink, rng: np.random.Generator) -> tuple[bytes | None, str]:
    """A copy of a row cut inside an unquoted, non-last field, without a line ending."""
    for _ in range(200):
        raw = sink.read_row(int(rng.integers(0, sink.rows)))
        if not _single_line(raw):
            continue
        fields = _fields(raw)
        cells = [_cell(f) for f in fields]
        cuttable = [i for i in range(len(fields) - 1)
                    if len(fields[i]) >= 2 and cells[i] == fields[i]]
        if not cuttable:
            continue
        column = cuttable[int(rng.integers(0, len(cuttable)))]
        cut = int(rng.integers(1, len(fields[column])))
        text = ",".join(cells[:column] + [fields[column][:cut]])
        return text.encode("utf-8"), sink.column_order[column]
    return None, ""
