"""A byte-level pass over a CSV file: its physical lines, and the few that need a closer look.

Physical lines end at '\\n' (the header is line 1). In RFC 4180 every quote inside a quoted field
is doubled, so a line holding an odd number of quote characters is one where a quoted field opens
or closes across a line break: the start or end of a record with an embedded newline, or a broken
quote. Lines with an even count are complete records (or DuckDB will say otherwise, which the
reader's reconciliation catches). Blank lines carry no data.

The pass works on large chunks, vectorised with numpy. A chunk with few quotes and no blank line
(the usual case) is only counted, and its quoted lines looked at one by one; other chunks have
every line located. Either way it costs about as much as reading the file.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

_NEWLINE, _QUOTE, _CR = 10, 34, 13


class _Digest(Protocol):
    def update(self, data: memoryview, /) -> None: ...


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


def scan_layout(path: Path, chunk_size: int = 1 << 24, digest: _Digest | None = None) -> CsvLayout:
    """Scan the file; `digest` (e.g. hashlib.sha256()), if given, is fed the file's bytes.

    The digest is updated in a helper thread while the scan goes on (hashlib releases the GIL),
    so hashing and scanning share one read of the file and run side by side.
    """
    layout = CsvLayout()
    base = 0  # file offset of carry[0]
    carry = b""
    buffers = [bytearray(chunk_size), bytearray(chunk_size)]
    hashing: list[Future | None] = [None, None]  # per buffer: its digest update, while running
    with (
        path.open("rb", buffering=0) as handle,
        ThreadPoolExecutor(max_workers=1) if digest is not None else nullcontext() as pool,
    ):
        turn = 0
        while True:
            turn ^= 1
            if (pending := hashing[turn]) is not None:
                pending.result()  # the buffer is about to be overwritten
                hashing[turn] = None
            if len(buffers[turn]) < len(carry) + chunk_size:
                buffers[turn] = bytearray(len(carry) + chunk_size)
            buf = buffers[turn]
            buf[: len(carry)] = carry
            view = memoryview(buf)
            read = handle.readinto(view[len(carry) : len(carry) + chunk_size])
            if not read:
                break
            layout.size += read
            if pool is not None:
                chunk = view[len(carry) : len(carry) + read]
                hashing[turn] = pool.submit(digest.update, chunk)  # type: ignore[union-attr]
            length = len(carry) + read
            consumed = _scan_complete_lines(buf, length, base, layout)
            carry = bytes(buf[consumed:length])
            base += consumed
        for pending in hashing:
            if pending is not None:
                pending.result()
    if carry:  # a last line without a line break
        layout.ends_with_newline = False
        _note_line(layout, layout.physical_lines + 1, base, base + len(carry), carry)
        layout.physical_lines += 1
    return layout


# A chunk with at most this many quote characters, no blank line and no carriage return is
# scanned without locating every line: only the lines holding a quote are visited.
_SPARSE_QUOTES = 4096
_TWO_NEWLINES = 0x0A0A  # b"\n\n" read as uint16 (either byte order)


def _scan_complete_lines(buf: bytearray, length: int, base: int, layout: CsvLayout) -> int:
    """Record the complete lines of `buf[:length]`; return how many bytes they span."""
    end = buf.rfind(b"\n", 0, length) + 1
    if end == 0:
        return 0
    data = np.frombuffer(buf, dtype=np.uint8, count=end)
    if not _is_sparse(buf, data, end):
        return _scan_dense(data, base, layout)
    if layout.header is None:
        layout.header = LineSpan(1, base, base + buf.find(b"\n") + 1)
    number, counted_to = layout.physical_lines + 1, 0
    quote = buf.find(b'"', 0, end)
    while quote >= 0:
        start = buf.rfind(b"\n", 0, quote) + 1
        stop = buf.find(b"\n", quote, end)
        number += int(np.count_nonzero(data[counted_to:start] == _NEWLINE))
        counted_to = start
        if number > 1 and buf.count(b'"', start, stop) & 1:
            layout.odd_quote_lines.append(LineSpan(number, base + start, base + stop + 1))
        quote = buf.find(b'"', stop + 1, end)
    layout.physical_lines += int(np.count_nonzero(data == _NEWLINE))
    return end


def _is_sparse(buf: bytearray, data: np.ndarray, end: int) -> bool:
    """Few quotes, no carriage return and no blank line in the complete lines of `buf`."""
    if buf.find(b"\r", 0, end) >= 0 or buf.startswith(b"\n"):
        return False
    if np.count_nonzero(data == _QUOTE) > _SPARSE_QUOTES:
        return False
    for offset in (0, 1):  # b"\n\n" at an even or an odd offset
        pairs = np.frombuffer(buf, dtype=np.uint16, count=(end - offset) // 2, offset=offset)
        if np.any(pairs == _TWO_NEWLINES):
            return False
    return True


def _scan_dense(data: np.ndarray, base: int, layout: CsvLayout) -> int:
    """Locate every line of `data` (complete lines, vectorised): quote parity, blank lines."""
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
