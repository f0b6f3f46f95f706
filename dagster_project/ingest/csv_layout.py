"""A byte-level pass over a CSV file: its physical lines, and the few that need a closer look.

Physical lines end at '\\n' (the header is line 1). In RFC 4180 every quote inside a quoted field
is doubled, so a line holding an odd number of quote characters is one where a quoted field opens
or closes across a line break: the start or end of a record with an embedded newline, or a broken
quote. Lines with an even count are complete records (or DuckDB will say otherwise, which the
reader's reconciliation catches). Blank lines carry no data.

The pass is vectorised with numpy over large chunks, so it costs about as much as reading the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

_NEWLINE, _QUOTE, _CR = 10, 34, 13


@dataclass(frozen=True)
class LineSpan:
    number: int  # physical line number, header = 1
    start: int  # byte offset of the first byte
    end: int  # byte offset after the line terminator (or end of file)


@dataclass
class CsvLayout:
    size: int = 0
    physical_lines: int = 0
    ends_with_newline: bool = True
    header: LineSpan | None = None
    odd_quote_lines: list[LineSpan] = field(default_factory=list)  # data lines only
    blank_lines: list[LineSpan] = field(default_factory=list)  # data lines only

    @property
    def data_lines(self) -> int:
        return max(self.physical_lines - 1, 0)

    def is_unterminated_last_line(self, number: int) -> bool:
        return number == self.physical_lines and not self.ends_with_newline


def scan_layout(path: Path, chunk_size: int = 1 << 24) -> CsvLayout:
    layout = CsvLayout()
    base = 0  # file offset of carry[0]
    carry = b""
    with path.open("rb") as handle:
        while chunk := handle.read(chunk_size):
            layout.size += len(chunk)
            buf = carry + chunk if carry else chunk
            consumed = _scan_complete_lines(buf, base, layout)
            carry = buf[consumed:]
            base += consumed
    if carry:  # a last line without a line break
        layout.ends_with_newline = False
        _note_line(layout, layout.physical_lines + 1, base, base + len(carry), carry)
        layout.physical_lines += 1
    return layout


def _scan_complete_lines(buf: bytes, base: int, layout: CsvLayout) -> int:
    """Record the complete lines of `buf`; return how many bytes they span."""
    data = np.frombuffer(buf, dtype=np.uint8)
    newlines = np.flatnonzero(data == _NEWLINE)
    if newlines.size == 0:
        return 0
    starts = np.empty_like(newlines)
    starts[0] = 0
    starts[1:] = newlines[:-1] + 1
    first_number = layout.physical_lines + 1
    if layout.header is None:
        layout.header = LineSpan(1, base, base + int(newlines[0]) + 1)

    quotes = np.flatnonzero(data[: newlines[-1] + 1] == _QUOTE)
    if quotes.size:
        per_line = np.searchsorted(quotes, newlines) - np.searchsorted(quotes, starts)
        for i in np.flatnonzero(per_line & 1):
            number = first_number + int(i)
            if number > 1:
                layout.odd_quote_lines.append(
                    LineSpan(number, base + int(starts[i]), base + int(newlines[i]) + 1)
                )
    lengths = newlines - starts
    blank = (lengths == 0) | ((lengths == 1) & (data[starts] == _CR))
    for i in np.flatnonzero(blank):
        number = first_number + int(i)
        if number > 1:
            layout.blank_lines.append(
                LineSpan(number, base + int(starts[i]), base + int(newlines[i]) + 1)
            )
    layout.physical_lines += int(newlines.size)
    return int(newlines[-1]) + 1


def _note_line(layout: CsvLayout, number: int, start: int, end: int, raw: bytes) -> None:
    span = LineSpan(number, start, end)
    if number == 1:
        layout.header = span
        return
    if raw.count(b'"') % 2:
        layout.odd_quote_lines.append(span)
    if raw in (b"", b"\r"):
        layout.blank_lines.append(span)


def read_span(path: Path, span: LineSpan) -> bytes:
    with path.open("rb") as handle:
        handle.seek(span.start)
        return handle.read(span.end - span.start)
