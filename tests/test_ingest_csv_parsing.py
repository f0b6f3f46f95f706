"""The fast CSV path (DuckDB, verified) and the exact parser must read every file identically.

Files full of the defects real extracts have (broken quotes, values with line breaks, wrong value
counts, blank lines, stray quotes, CRLF, a cut-off last line) are staged both ways; rows, their
physical lines and the structural rejects must match, and must match what the file holds.
"""

from __future__ import annotations

import random
from pathlib import Path

import duckdb
import pytest

from dagster_project.ingest.csv_layout import scan_layout
from dagster_project.ingest.csv_records import HeaderInfo
from dagster_project.ingest.csv_stage import _stage_exact, drop_stage, read_csv_header, stage_csv

HEADER = ["id", "name", "amount", "note"]


def _write_defective_file(path: Path, seed: int, n: int = 1500) -> tuple[dict, dict]:
    """Write a CSV with planted defects; return expected {line: id} rows and {line: rule}."""
    rng = random.Random(seed)
    newline = "\r\n" if seed % 2 else "\n"
    out = [",".join(HEADER) + newline]
    good: dict[int, str] = {}
    bad: dict[int, str] = {}
    line = 2
    for i in range(n):
        rid = f"R{i}"
        roll = rng.random()
        if roll < 0.02:
            text, kind = f'{rid},"Broken name,12.5,x{newline}', "broken_quoting"
        elif roll < 0.04:
            text, kind = f'{rid},"Multi{newline}line, ""quoted""{newline}end",1,y{newline}', "multi"
        elif roll < 0.05:
            text, kind = f"{rid},Too,many,values,here{newline}", "column_count"
        elif roll < 0.06:
            text, kind = f"{rid},Too few{newline}", "column_count"
        elif roll < 0.07:
            text, kind = newline, "blank"
        elif roll < 0.08:
            text, kind = f'{rid},Fo"o literal,3,z{newline}', "ok"
        elif roll < 0.12:
            text, kind = f'{rid},"Quoted, with comma",4,"a ""b"""{newline}', "ok"
        else:
            text, kind = f"{rid},Name {i} Ääkköset,{i}.5,{newline}", "ok"
        out.append(text)
        if kind in ("ok", "multi"):
            good[line] = rid
        elif kind != "blank":
            bad[line] = kind
        line += text.count("\n")
    # a cut-off last line
    out.append("RLAST,Cut")
    bad[line] = "column_count"
    path.write_text("".join(out), encoding="utf-8", newline="")
    return good, bad


def _stage(con, path: Path, *, exact: bool):
    layout = scan_layout(path)
    header = HeaderInfo(read_csv_header(path, layout), [0], frozenset())
    drop_stage(con)
    staged = (
        _stage_exact(con, path, layout, header, "test")
        if exact
        else stage_csv(con, path, layout, header)
    )
    got_rows = dict(con.execute(f"SELECT _line, c0 FROM {staged.relation}").fetchall())
    got_rejects = {r.line: r.rule for r in staged.structural_rejects}
    return staged, got_rows, got_rejects


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_fast_path_and_exact_parser_agree_on_defective_files(tmp_path, seed):
    path = tmp_path / "f.csv"
    good, bad = _write_defective_file(path, seed)
    con = duckdb.connect()
    fast, fast_rows, fast_rejects = _stage(con, path, exact=False)
    exact, exact_rows, exact_rejects = _stage(con, path, exact=True)
    assert fast.parser.startswith("duckdb"), fast.fallback_reason
    assert fast_rows == exact_rows == good
    assert fast_rejects == exact_rejects == bad
    assert fast.records == exact.records == len(good) + len(bad)


def test_values_with_line_breaks_are_identical_both_ways(tmp_path):
    path = tmp_path / "f.csv"
    path.write_text(
        'id,name,amount,note\nR1,"a\nb ""q""",1,\nR2,"x, y",2,"\n"\n', encoding="utf-8", newline=""
    )
    con = duckdb.connect()
    fast, *_ = _stage(con, path, exact=False)
    fast_values = con.execute(f"SELECT c1, c3 FROM {fast.relation} ORDER BY _line").fetchall()
    _stage(con, path, exact=True)
    exact_values = con.execute(
        "SELECT c1, nullif(c3, '') FROM _ingest_rows ORDER BY _line"
    ).fetchall()
    assert fast_values == exact_values == [('a\nb "q"', None), ("x, y", "\n")]


def test_unverifiable_fast_path_falls_back_to_the_exact_parser(tmp_path):
    # A stray quote inside a value, then a quoted value spanning two lines: the rules accept it,
    # DuckDB's strict reader does not, so the fast path cannot be verified.
    path = tmp_path / "f.csv"
    path.write_text(
        'id,name,amount,note\nR1,ab"c,"multi\nline",x\nR2,ok,2,\n', encoding="utf-8", newline=""
    )
    con = duckdb.connect()
    staged, got_rows, got_rejects = _stage(con, path, exact=False)
    assert staged.parser == "python" and staged.fallback_reason
    assert got_rows == {2: "R1", 4: "R2"}
    assert got_rejects == {}


@pytest.mark.parametrize("seed", range(8))
def test_sparse_and_dense_byte_scans_agree(tmp_path, monkeypatch, seed):
    # The layout scan takes a bytes.find path where quotes are rare and a numpy path where they
    # are dense; both must describe every file identically, whatever the chunking.
    import dagster_project.ingest.csv_layout as csv_layout

    rng = random.Random(seed)
    alphabet = ["a", "b", ",", '"', "\n", "\r", "\r\n", "\n\n", "Ä"]
    weights = [30, 10, 8, 3, 6, 1, 2, 1, 1]
    text = "".join(rng.choices(alphabet, weights, k=rng.randint(0, 5000)))
    if seed % 3 == 0:
        text = "\n" + text  # a blank header line
    path = tmp_path / "f.csv"
    path.write_bytes(text.encode("utf-8"))
    layouts = []
    for sparse_limit in (-1, 10**9):
        monkeypatch.setattr(csv_layout, "_SPARSE_QUOTES", sparse_limit)
        for chunk_size in (7, 64, 1 << 24):
            layouts.append(scan_layout(path, chunk_size=chunk_size))
    assert all(layout == layouts[0] for layout in layouts)
    assert layouts[0].physical_lines == text.count("\n") + (not text.endswith("\n") and text != "")


def test_copy_without_lines_is_exact_with_and_without_kernel_copy(tmp_path, monkeypatch):
    from dagster_project.ingest import csv_stage

    data = bytes(range(256)) * 5000
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    spans = [(10, 20), (1000, 1001), (300_000, 700_000), (len(data) - 5, len(data))]
    expected = data[:10] + data[20:1000] + data[1001:300_000] + data[700_000 : len(data) - 5]
    csv_stage._copy_without(src, spans, tmp_path / "a.bin", len(data))
    assert (tmp_path / "a.bin").read_bytes() == expected

    def unsupported(*args):
        raise OSError("copy_file_range not supported")

    monkeypatch.setattr(csv_stage.os, "copy_file_range", unsupported)
    csv_stage._copy_without(src, spans, tmp_path / "b.bin", len(data))
    assert (tmp_path / "b.bin").read_bytes() == expected
