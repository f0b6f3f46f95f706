"""Writes landing files exactly as the source contract says: CSV text per system, or Parquet.

Values arrive typed (numpy or Arrow arrays: strings, numbers, day numbers, second counts,
booleans) and are rendered with Arrow compute kernels, chunk by chunk, into RFC 4180 lines:
a field is quoted only when it holds a comma, a quote or a line break, quotes are doubled,
null is an empty field. Dates follow the system (CRM YYYY-MM-DD; ERP YYYYMMDD, 00000000 for
null), timestamps are ISO 8601 with the record's UTC offset, booleans true/false (CRM) or
X/empty (ERP). Rows go to a temporary file first; `CsvSink.finish` then writes the final file
once, inserting the planted malformed lines where the defects module asks.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from dagster_project.generate.world import EntityContract

NULL = np.iinfo(np.int64).min  # null marker in day-number and second-count columns
BOM = b"\xef\xbb\xbf"
CHUNK_ROWS = 400_000
_LUT_FIRST_DAY = int(np.datetime64("1990-01-01", "D").astype(np.int64))
_LUT_LAST_DAY = int(np.datetime64("2045-12-31", "D").astype(np.int64))


def _date_lut(fmt: str) -> pa.Array:
    days = np.arange(_LUT_FIRST_DAY, _LUT_LAST_DAY + 1).astype("datetime64[D]")
    iso = np.datetime_as_string(days, unit="D")
    return pa.array(iso if fmt == "iso" else np.char.replace(iso, "-", ""))


_LUTS: dict[str, pa.Array] = {}


def _lut(name: str) -> pa.Array:
    if name not in _LUTS:
        if name == "clock":
            secs = np.arange(86_400)
            _LUTS[name] = pa.array(
                [f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}" for s in secs.tolist()])
        else:
            _LUTS[name] = _date_lut(name)
    return _LUTS[name]


def _as_arrow(values) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        return values.combine_chunks()
    if isinstance(values, pa.Array):
        return values
    return pa.array(values, from_pandas=True)


def render_str(values) -> pa.Array:
    text = _as_arrow(values).cast(pa.string())
    needs_quotes = pc.match_substring_regex(text, '[",\r\n]')
    quoted = pc.binary_join_element_wise('"', pc.replace_substring(text, '"', '""'), '"', "")
    return pc.fill_null(pc.if_else(needs_quotes, quoted, text), "")


def render_int(values) -> pa.Array:
    array = np.asarray(values)
    if array.dtype.kind == "f":
        mask = np.isnan(array)
        array = pa.array(np.where(mask, 0, array).astype(np.int64), mask=mask)
    return pc.fill_null(_as_arrow(array).cast(pa.string()), "")


def render_dec(values, scale: int) -> pa.Array:
    array = np.asarray(values, dtype=np.float64)
    mask = np.isnan(array)
    scaled = np.round(np.where(mask, 0.0, array) * 10**scale).astype(np.int64)
    negative = scaled < 0
    magnitude = np.abs(scaled)
    whole = pa.array(magnitude // 10**scale).cast(pa.string())
    sign = pc.if_else(pa.array(negative), "-", "")
    if scale:
        frac = pc.utf8_lpad(pa.array(magnitude % 10**scale).cast(pa.string()), scale, "0")
        text = pc.binary_join_element_wise(sign, whole, ".", frac, "")
    else:
        text = pc.binary_join_element_wise(sign, whole, "")
    return pc.if_else(pa.array(mask), "", text)


def _days_to_text(days: np.ndarray, lut: pa.Array) -> tuple[pa.Array, np.ndarray]:
    days = np.asarray(days, dtype=np.int64)
    mask = days == NULL
    index = np.where(mask, 0, days - _LUT_FIRST_DAY)
    if len(index) and (index.min() < 0 or index.max() >= len(lut)):
        raise ValueError("a date is outside the writer's calendar (1990-2045)")
    return lut.take(pa.array(index)), mask


def render_date(days, system: str) -> pa.Array:
    text, mask = _days_to_text(days, _lut("iso" if system == "crm" else "compact"))
    return pc.if_else(pa.array(mask), "" if system == "crm" else "00000000", text)


def render_ts(seconds, tz) -> pa.Array:
    seconds = np.asarray(seconds, dtype=np.int64)
    mask = seconds == NULL
    safe = np.where(mask, 0, seconds)
    day_text, _ = _days_to_text(np.where(mask, _LUT_FIRST_DAY, safe // 86_400), _lut("iso"))
    clock = _lut("clock").take(pa.array(safe % 86_400))
    offset = tz if isinstance(tz, str) else _as_arrow(tz)
    text = pc.binary_join_element_wise(day_text, "T", clock, offset, "")
    return pc.if_else(pa.array(mask), "", text)


def render_bool(values, system: str) -> pa.Array:
    array = np.asarray(values)
    if array.dtype == object:  # None = null (CRM only)
        mask = np.array([v is None for v in array])
        flags = np.array([bool(v) if v is not None else False for v in array])
    else:
        mask, flags = np.zeros(len(array), dtype=bool), array.astype(bool)
    if system == "crm":
        text = pc.if_else(pa.array(flags), "true", "false")
        return pc.if_else(pa.array(mask), "", text)
    return pc.if_else(pa.array(flags & ~mask), "X", "")


@dataclass
class _Chunk:
    start_byte: int
    offsets: np.ndarray  # int64 row start offsets within the chunk, length rows + 1
    line_counts: np.ndarray | None  # physical lines per row when some row spans several


@dataclass
class CsvSink:
    """One landing CSV file: append typed columns chunk by chunk, then `finish` it."""

    root: Path
    rel_path: str
    contract: EntityContract
    column_order: list[str]
    bom: bool = False
    decimals: Mapping[str, int] = field(default_factory=dict)
    rows: int = 0
    _chunks: list[_Chunk] = field(default_factory=list)
    _bytes: int = 0

    def __post_init__(self) -> None:
        if sorted(self.column_order) != sorted(self.contract.column_names):
            raise ValueError(f"{self.rel_path}: columns must be exactly the contract's")
        self.path = self.root / self.rel_path
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp_path = self.path.with_name(self.path.name + ".part")
        self._tmp = self._tmp_path.open("wb")

    @property
    def header(self) -> bytes:
        return (",".join(self.column_order) + "\n").encode("utf-8")

    def append(self, data: Mapping[str, object], tz: object = "+00:00") -> None:
        """Render and write rows; `data` maps every contract column to an array of values."""
        n = len(next(iter(data.values())))
        for lo in range(0, n, CHUNK_ROWS):
            hi = min(n, lo + CHUNK_ROWS)
            part = {k: v[lo:hi] for k, v in data.items()}
            part_tz = tz if isinstance(tz, str) else tz[lo:hi]
            self._write_chunk(part, part_tz, hi - lo)

    def _render(self, name: str, values, tz, system: str) -> pa.Array:
        kind = self.contract.column(name).type
        if kind == "str":
            return render_str(values)
        if kind == "int":
            return render_int(values)
        if kind == "dec":
            return render_dec(values, self.decimals.get(name, 2))
        if kind == "date":
            return render_date(values, system)
        if kind == "ts":
            return render_ts(values, tz)
        return render_bool(values, system)

    def _write_chunk(self, data: Mapping[str, object], tz, n: int) -> None:
        if n == 0:
            return
        system = self.contract.system
        cells = [self._render(c, data[c], tz, system) for c in self.column_order]
        cells[-1] = pc.binary_join_element_wise(cells[-1], "\n", "")
        lines = pc.binary_join_element_wise(*cells, ",") if len(cells) > 1 else cells[0]
        offsets = np.frombuffer(lines.buffers()[1], dtype=np.int32)[
            lines.offset : lines.offset + n + 1].astype(np.int64)
        data_buffer = lines.buffers()[2]
        payload = memoryview(data_buffer)[offsets[0] : offsets[-1]]
        counts = pc.count_substring(lines, "\n").to_numpy()
        multi = counts.max() > 1
        self._chunks.append(_Chunk(self._bytes, offsets - offsets[0],
                                   counts.astype(np.int64) if multi else None))
        self._tmp.write(payload)
        self._bytes += len(payload)
        self.rows += n

    # --- reading back rows, for the defects module ---------------------------------------
    def _locate(self, row: int) -> tuple[_Chunk, int]:
        for chunk in self._chunks:
            count = len(chunk.offsets) - 1
            if row < count:
                return chunk, row
            row -= count
        raise IndexError(row)

    def read_row(self, row: int) -> bytes:
        """The rendered bytes of one data row (with its line ending)."""
        self._tmp.flush()
        chunk, local = self._locate(row)
        start = chunk.start_byte + int(chunk.offsets[local])
        end = chunk.start_byte + int(chunk.offsets[local + 1])
        with self._tmp_path.open("rb") as handle:
            handle.seek(start)
            return handle.read(end - start)

    def lines_through(self, row: int) -> int:
        """Physical lines taken by data rows 0..row (inclusive)."""
        total = 0
        for chunk in self._chunks:
            count = len(chunk.offsets) - 1
            take = min(count, row + 1)
            total += int(chunk.line_counts[:take].sum()) if chunk.line_counts is not None else take
            row -= count
            if row < 0:
                break
        return total

    def _row_end_byte(self, row: int) -> int:
        chunk, local = self._locate(row)
        return chunk.start_byte + int(chunk.offsets[local + 1])

    def finish(self, insertions: list[tuple[int, bytes]], tail: bytes | None = None) -> int:
        """Write the final file: header, rows, each insertion after its row, then `tail`.

        Returns the bytes written. Insertions are (after_row, line bytes with line ending).
        """
        self._tmp.close()
        written = 0
        with self.path.open("wb") as out, self._tmp_path.open("rb") as src:
            head = (BOM if self.bom else b"") + self.header
            out.write(head)
            written += len(head)
            position = 0
            for after_row, line in sorted(insertions, key=lambda item: item[0]):
                end = self._row_end_byte(after_row)
                written += _copy(src, out, position, end)
                position = end
                out.write(line)
                written += len(line)
            written += _copy(src, out, position, self._bytes)
            if tail is not None:
                out.write(tail)
                written += len(tail)
        os.remove(self._tmp_path)
        return written

    def discard(self) -> None:
        self._tmp.close()
        if self._tmp_path.exists():
            os.remove(self._tmp_path)


def _copy(src, out, start: int, end: int, block: int = 16 << 20) -> int:
    src.seek(start)
    remaining = end - start
    while remaining > 0:
        data = src.read(min(block, remaining))
        if not data:
            break
        out.write(data)
        remaining -= len(data)
    return end - start


def parquet_table(contract: EntityContract, data: Mapping[str, object], order: list[str]) -> pa.Table:
    """Typed Arrow columns per the contract: DATE, DOUBLE (dec), BIGINT, BOOLEAN, VARCHAR."""
    arrays = []
    for name in order:
        kind = contract.column(name).type
        values = data[name]
        if kind == "date":
            days = np.asarray(values, dtype=np.int64)
            mask = days == NULL
            arrays.append(pa.array(np.where(mask, 0, days).astype(np.int32), type=pa.date32(),
                                   mask=mask))
        elif kind == "dec":
            arrays.append(pa.array(np.asarray(values, dtype=np.float64), from_pandas=True))
        elif kind == "int":
            arrays.append(pa.array(values, type=pa.int64(), from_pandas=True))
        elif kind == "bool":
            arrays.append(pa.array(values, type=pa.bool_()))
        else:
            arrays.append(_as_arrow(values).cast(pa.string()))
    return pa.table(arrays, names=order)


def write_parquet(path: Path, table: pa.Table) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, compression="snappy")
    return path.stat().st_size
