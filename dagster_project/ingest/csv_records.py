"""Record structure of a CSV file, decided exactly and line-accurately in Python.

The rules (source_contract.md, RFC 4180) in one place, shared by the fast path (which applies them
only to the few lines the byte scan flags) and the exact fallback parser (which applies them to
every line):

- A record that stays on one physical line is structurally fine when it has as many values as the
  header; otherwise it is rejected as `column_count` (too many / too few values; for too few the
  column is the last one present, where the line ended).
- A record that spans several physical lines (a quoted value with an embedded line break) is
  accepted only if it has exactly as many values as the header. Otherwise its first line is
  rejected as `broken_quoting` (column = where the unclosed quote opened) and reading resumes on
  the next physical line, so one broken quote costs exactly one row.
- The file's last line, cut without a line break, is a too-short row (`column_count`) even when the
  cut fell inside a quoted value.
- Lines that are not valid UTF-8 are rejected as `invalid_encoding`.
- Blank lines carry no data and are not records.
"""

from __future__ import annotations

import csv
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from dagster_project.ingest.csv_layout import CsvLayout
from dagster_project.ingest.masking import mask_fields, mask_value

OBSERVED_MAX_CHARS = 500


@dataclass(frozen=True)
class HeaderInfo:
    """The file's header as the contract sees it (positions are 0-based file positions)."""

    names: list[str]  # column names as ingest stores them (contract spelling where matched)
    key_indexes: list[int]
    personal_indexes: frozenset[int]

    @property
    def width(self) -> int:
        return len(self.names)

    def name_at(self, index: int) -> str | None:
        return self.names[index] if 0 <= index < len(self.names) else None


@dataclass(frozen=True)
class StructuralReject:
    line: int
    rule: str  # column_count | broken_quoting | invalid_encoding
    column_name: str | None
    reason: str
    observed_value: str | None  # already masked where personal data could show
    record_key: str | None  # already masked where personal


@dataclass(frozen=True)
class RecordRead:
    fields: list[str] | None
    n_lines: int  # physical lines consumed
    error: str | None


def strip_terminator(text: str) -> str:
    if text.endswith("\r\n"):
        return text[:-2]
    if text.endswith("\n"):
        return text[:-1]
    return text


def is_blank(text: str) -> bool:
    return text in ("", "\n", "\r\n", "\r")


class _CountingLines:
    """Iterator wrapper that counts how many physical lines csv.reader pulled."""

    def __init__(self, lines: Iterator[str]):
        self._lines = lines
        self.pulled = 0

    def __iter__(self) -> _CountingLines:
        return self

    def __next__(self) -> str:
        line = next(self._lines)
        self.pulled += 1
        return line


def read_record(lines: Iterator[str]) -> RecordRead:
    """Parse one RFC 4180 record from physical lines (csv.reader never reads ahead of a record).

    csv's field size limit (128 KiB) bounds how far an unclosed quote can run.
    """
    counting = _CountingLines(lines)
    try:
        fields = next(csv.reader(counting, strict=True))
    except csv.Error as exc:
        return RecordRead(None, counting.pulled, str(exc))
    except StopIteration:
        return RecordRead(None, counting.pulled, "end of file")
    return RecordRead(fields, counting.pulled, None)


@dataclass(frozen=True)
class _LineSplit:
    fields: list[str]
    unclosed_quote_at: int | None  # field index where a quote opened and never closed
    stray_quote_at: int | None  # field index where a closing quote is followed by other text
    quote_start_offset: int | None  # character offset of the unclosed quote


def _split_single_line(text: str) -> _LineSplit:
    """Split one physical line into fields, noting quoting faults (EOL closes everything)."""
    fields: list[str] = []
    current: list[str] = []
    in_quotes = field_started = False
    unclosed_at = stray_at = quote_offset = None
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if in_quotes:
            if ch == '"':
                if i + 1 < n and text[i + 1] == '"':
                    current.append('"')
                    i += 2
                    continue
                in_quotes = False
                i += 1
                if i < n and text[i] != "," and stray_at is None:
                    stray_at = len(fields)
                continue
            current.append(ch)
        elif ch == '"' and not field_started:
            in_quotes = field_started = True
            quote_offset = i
        elif ch == ",":
            fields.append("".join(current))
            current, field_started = [], False
        else:
            current.append(ch)
            field_started = True
        i += 1
    fields.append("".join(current))
    if in_quotes:
        unclosed_at = len(fields) - 1
    return _LineSplit(fields, unclosed_at, stray_at, quote_offset if in_quotes else None)


def classify_line(
    text: str, header: HeaderInfo, *, line: int, unterminated_last_line: bool
) -> StructuralReject | None:
    """Why a single physical line is not an acceptable record, or None if it is one."""
    body = strip_terminator(text)
    split = _split_single_line(body)
    n, width = len(split.fields), header.width
    cut_note = (
        " The file's last line ends without a line break: it was cut off."
        if (unterminated_last_line)
        else ""
    )
    if unterminated_last_line and n < width:
        return _reject(
            header,
            line,
            "column_count",
            n - 1,
            f"The line has {n} of {width} values and ends in column "
            f"'{header.name_at(n - 1)}'.{cut_note}",
            split.fields,
            body,
            key_readable=n - 1,
        )
    if split.unclosed_quote_at is not None:
        at = split.unclosed_quote_at
        return _reject(
            header,
            line,
            "broken_quoting",
            at,
            f"A quote opened in column '{header.name_at(at) or at + 1}' is never closed on this "
            "line; the line was rejected and reading resumed on the next line." + cut_note,
            split.fields,
            body,
            key_readable=at,
            observed=body[split.quote_start_offset or 0 :],
        )
    if split.stray_quote_at is not None:
        at = split.stray_quote_at
        return _reject(
            header,
            line,
            "broken_quoting",
            at,
            f"A quoted value in column '{header.name_at(at) or at + 1}' is followed by other "
            "characters before the next comma.",
            split.fields,
            body,
            key_readable=at,
        )
    if n < width:
        return _reject(
            header,
            line,
            "column_count",
            n - 1,
            f"The line has {n} of {width} values and ends in column "
            f"'{header.name_at(n - 1)}'.{cut_note}",
            split.fields,
            body,
            key_readable=n,
        )
    if n > width:
        return _reject(
            header,
            line,
            "column_count",
            None,
            f"The line has {n} values but the header names {width} columns.",
            split.fields,
            body,
            key_readable=width,
        )
    return None


def encoding_reject(text: str, header: HeaderInfo, *, line: int) -> StructuralReject:
    """A line that is not valid UTF-8 (decoded with replacement characters)."""
    split = _split_single_line(strip_terminator(text))
    at = next((i for i, f in enumerate(split.fields) if "\ufffd" in f), None)
    column = header.name_at(at) if at is not None else None
    return _reject(
        header,
        line,
        "invalid_encoding",
        at,
        f"The line is not valid UTF-8{f' (in column {column!r})' if column else ''}.",
        split.fields,
        strip_terminator(text),
        key_readable=at if at is not None else 0,
    )


def _reject(
    header: HeaderInfo,
    line: int,
    rule: str,
    column_index: int | None,
    reason: str,
    fields: list[str],
    body: str,
    *,
    key_readable: int,
    observed: str | None = None,
) -> StructuralReject:
    if header.personal_indexes:
        # Fields of a broken line are not reliably aligned: any of them may hold personal data.
        shown = mask_fields(fields if observed is None else [observed])
    else:
        shown = body if observed is None else observed
    if len(shown) > OBSERVED_MAX_CHARS:
        shown = shown[:OBSERVED_MAX_CHARS] + "…"
    key_parts = []
    for index in header.key_indexes:
        if index >= min(key_readable, len(fields)):
            key_parts = []
            break
        value = fields[index]
        key_parts.append(mask_value(value) if index in header.personal_indexes else value)
    return StructuralReject(
        line=line,
        rule=rule,
        column_name=header.name_at(column_index) if column_index is not None else None,
        reason=reason,
        observed_value=shown,
        record_key="|".join(key_parts) if key_parts else None,
    )


# --- the exact parser: every line, record by record -------------------------------------------


@dataclass(frozen=True)
class _PhysicalLine:
    number: int
    text: str
    bad_encoding: bool


class _LineSource:
    """Decoded physical lines of a file, numbered, with push-back for resynchronising."""

    def __init__(self, handle, first_number: int):
        self._handle = handle
        self._pending: deque[_PhysicalLine] = deque()
        self._next_number = first_number

    def pull(self) -> _PhysicalLine | None:
        if self._pending:
            return self._pending.popleft()
        raw = self._handle.readline()
        if not raw:
            return None
        try:
            text, bad = raw.decode("utf-8"), False
        except UnicodeDecodeError:
            text, bad = raw.decode("utf-8", errors="replace"), True
        line = _PhysicalLine(self._next_number, text, bad)
        self._next_number += 1
        return line

    def push_back(self, lines: list[_PhysicalLine]) -> None:
        self._pending.extendleft(reversed(lines))


@dataclass(frozen=True)
class ParsedRecord:
    line: int
    fields: list[str]


def parse_exact(
    path: Path, header: HeaderInfo, header_end: int, physical_lines: int, ends_with_newline: bool
) -> Iterator[ParsedRecord | StructuralReject]:
    """Every record of the file after the header (which ends at byte `header_end`), in order."""
    width = header.width
    last_unterminated = physical_lines if not ends_with_newline else -1
    with path.open("rb") as handle:
        handle.seek(header_end)
        source = _LineSource(handle, first_number=2)
        while (first := source.pull()) is not None:
            if is_blank(first.text):
                continue
            if '"' not in first.text:  # the common case: no quoting at all
                fields = strip_terminator(first.text).split(",")
                if first.bad_encoding:
                    yield encoding_reject(first.text, header, line=first.number)
                elif len(fields) == width:
                    yield ParsedRecord(first.number, fields)
                else:
                    yield _classified(first, header, last_unterminated)
                continue
            consumed = [first]

            def lines(consumed: list[_PhysicalLine] = consumed) -> Iterator[str]:
                yield consumed[0].text
                while (more := source.pull()) is not None:
                    consumed.append(more)
                    yield more.text

            record = read_record(lines())
            multi_line = len(consumed) > 1
            if record.error is None and (len(record.fields) == width or not multi_line):
                if any(c.bad_encoding for c in consumed):
                    yield encoding_reject(first.text, header, line=first.number)
                elif len(record.fields) == width:
                    yield ParsedRecord(first.number, record.fields)
                else:
                    yield _classified(first, header, last_unterminated)
                continue
            # A broken record: reject its first line, re-read the others as new records.
            source.push_back(consumed[1:])
            yield _classified(first, header, last_unterminated, broken=True)


def _classified(
    line: _PhysicalLine, header: HeaderInfo, last_unterminated: int, *, broken: bool = False
) -> StructuralReject:
    if line.bad_encoding:
        return encoding_reject(line.text, header, line=line.number)
    reject = classify_line(
        line.text,
        header,
        line=line.number,
        unterminated_last_line=line.number == last_unterminated,
    )
    if reject is None:  # fine on its own, yet it opened a record that did not close properly
        reject = (
            StructuralReject(
                line=line.number,
                rule="broken_quoting",
                column_name=None,
                reason="The line's quoting does not form a valid record.",
                observed_value=None,
                record_key=None,
            )
            if broken
            else StructuralReject(
                line=line.number,
                rule="column_count",
                column_name=None,
                reason="The line does not form a valid record.",
                observed_value=None,
                record_key=None,
            )
        )
    return reject


# --- the fast path's share: only the lines the byte scan flagged --------------------------------


@dataclass
class FlaggedLines:
    """What the flagged (odd-quote and blank) lines turned out to be."""

    multi_line: dict[int, int]  # first physical line -> number of physical lines of the record
    rejects: list[StructuralReject]
    excluded: set[int]  # data lines that start no record: continuations, rejected, blank
    dropped: list[tuple[int, int]]  # byte spans a DuckDB-readable copy must leave out
    needs_copy: bool  # whether the bulk reader must read a copy without the dropped lines
    expected_records: int  # records a reader must return (rows + structural rejects)


def _lines_from(handle: BinaryIO, offset: int) -> Iterator[str]:
    handle.seek(offset)
    while raw := handle.readline():
        yield raw.decode("utf-8", errors="replace")


def resolve_flagged_lines(path: Path, layout: CsvLayout, header: HeaderInfo) -> FlaggedLines:
    """Apply the record rules to the lines with an odd number of quotes, and to blank lines.

    Lines with an even quote count are left to the bulk reader; the caller checks that it returned exactly `expected_records` records.
    """
    multi_line: dict[int, int] = {}
    rejects: list[StructuralReject] = []
    continuation: set[int] = set()
    dropped_lines: dict[int, tuple[int, int]] = {}
    covered_until = 1
    with path.open("rb") as handle:
        for span in layout.odd_quote_lines:
            if span.number <= covered_until:
                continue
            record = read_record(_lines_from(handle, span.start))
            if record.error is None and record.n_lines == 1:
                continue  # a literal quote inside a value (3/4" pipe): an ordinary record
            if record.error is None and len(record.fields) == header.width:
                multi_line[span.number] = record.n_lines
                covered_until = span.number + record.n_lines - 1
                continuation.update(range(span.number + 1, covered_until + 1))
                continue
            handle.seek(span.start)
            text = handle.read(span.end - span.start).decode("utf-8", errors="replace")
            line = _PhysicalLine(span.number, text, bad_encoding=False)
            unterminated = span.number if layout.is_unterminated_last_line(span.number) else -1
            rejects.append(_classified(line, header, unterminated, broken=True))
            dropped_lines[span.number] = (span.start, span.end)
    for span in layout.blank_lines:
        if span.number not in continuation:
            dropped_lines[span.number] = (span.start, span.end)
    excluded = continuation | set(dropped_lines)
    last_record = layout.physical_lines
    while last_record > 1 and last_record in excluded:
        last_record -= 1
    return FlaggedLines(
        multi_line=multi_line,
        rejects=rejects,
        excluded=excluded,
        dropped=[dropped_lines[n] for n in sorted(dropped_lines)],
        # Trailing blank lines are harmless; rejected lines and blank lines between records
        # would desynchronise the bulk reader's record numbering.
        needs_copy=bool(rejects) or any(n < last_record for n in dropped_lines),
        expected_records=layout.data_lines - len(excluded),
    )
