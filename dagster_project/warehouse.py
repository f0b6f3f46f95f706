"""One way to open the working warehouse: explicit memory/thread limits, and a run lock.

DuckDB allows one writing process per file; the run lock turns "another run holds the
warehouse" into a clear exit code (75) instead of a DuckDB IO error halfway through a run.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

import duckdb

from dagster_project.fact_store import attach_fact_store
from dagster_project.settings import settings


def duckdb_config() -> dict[str, str | int]:
    s = settings().duckdb
    return {
        "memory_limit": os.environ.get("SEGMENTS_DUCKDB_MEMORY_LIMIT", s.memory_limit),
        "threads": int(os.environ.get("SEGMENTS_DUCKDB_THREADS", s.threads)),
    }


def connect(path: Path | str, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """A connection to the warehouse with the configured limits applied, its fact store
    attached (dagster_project/fact_store.py: marts.fct_order_lines is a view over it)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(path), read_only=read_only, config=duckdb_config())
    try:
        attach_fact_store(con, path, read_only=read_only)
    except BaseException:
        con.close()
        raise
    return con


class WarehouseBusy(RuntimeError):
    """Another run holds the warehouse."""


@contextlib.contextmanager
def run_lock(home: Path) -> Iterator[None]:
    """Hold an exclusive, non-blocking lock for the duration of one pipeline run."""
    home.mkdir(parents=True, exist_ok=True)
    lock_path = home / ".run.lock"
    with open(lock_path, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise WarehouseBusy(f"another run holds {lock_path}") from exc
        try:
            handle.write(str(os.getpid()))
            handle.flush()
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
