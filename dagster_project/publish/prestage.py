"""The publication's fact-table work, started while segmentation runs instead of after it.

Once the fact store's tables (dagster_project/fact_store.py: the 20M order lines) have passed
their blocking checks, nothing later in a run writes the store. The part of publication that
depends on it alone, the byte copy that starts the new file and the Parquet export of the facts
(~24 CPU-s at 100k), then runs in a thread of this process beside segmentation and the small
steps after it, which leave one of the two cores mostly idle. The publish step takes the result
(`claim`) and does the rest as before (small tables, audit, swap); when there is nothing to take
(publication materialised alone, steps in other processes, a fact store rebuilt since), it does
everything itself.

Write-audit-publish is unchanged for readers: the thread writes only pending files in
published/ (`.prestaged.<run>.*`), which no reader opens, and publish takes them over only if
the fact store is still the one they were made from. Pending files nobody claims are removed:
by the gate step that blocks (the thread is stopped first), at the exit of the process (atexit),
or, if the process ended without that (killed; `segments run` leaves with os._exit), by the
quality gate steps of the next run in the home.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import duckdb
from dagster import AssetKey, get_dagster_logger

from dagster_project.fact_store import fact_store_asset_keys, fact_store_path
from dagster_project.paths import HomePaths

PENDING_PREFIX = ".prestaged."
# Executors that run every step in this process: the job's own (definitions.py) and the one
# Dagster substitutes for it in execute_in_process (`segments run`, tests).
IN_PROCESS_EXECUTORS = {"in_process", "execute_in_process_executor"}


def _fingerprint(path: Path) -> tuple[int, int, int]:
    """Identifies one state of the fact store file: DuckDB leaves an unchanged file untouched
    (attach, checkpoint and close write nothing), and a rebuild deletes and recreates it."""
    stat = path.stat()
    return stat.st_ino, stat.st_size, stat.st_mtime_ns


@dataclass(frozen=True)
class Prestaged:
    """A finished prestage: the new publication's first file and the facts' Parquet files."""

    database: Path  # byte copy of the fact store, constraints dropped like publish does
    parquet: dict[str, Path]  # published table name -> its Parquet file
    source: tuple[int, int, int]  # _fingerprint of the fact store it was copied from

    def matches(self, fact_store: Path, tables: set[str]) -> bool:
        """True if made from the fact store as it is now, holding exactly `tables`."""
        return set(self.parquet) == tables and _fingerprint(fact_store) == self.source

    def discard(self) -> None:
        _remove(self.database)
        if self.parquet:
            _remove(next(iter(self.parquet.values())).parent)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
        Path(f"{path}.wal").unlink(missing_ok=True)


class _Prestage:
    """One background export of a home's fact store (its thread owns its pending files)."""

    def __init__(self, paths: HomePaths, run_id: str):
        self.store = fact_store_path(paths.warehouse)
        self.database = paths.published / f"{PENDING_PREFIX}{run_id}.duckdb"
        self.parquet_dir = paths.published / f"{PENDING_PREFIX}{run_id}.parquet"
        self.result: Prestaged | None = None
        self.error: BaseException | None = None
        self._con: duckdb.DuckDBPyConnection | None = None
        self._stopped = False
        self._lock = threading.Lock()
        # daemon: never holds up the interpreter's exit; stop_all() (atexit, and `segments` before its os._exit) ends it first
        self.thread = threading.Thread(target=self._run, name="publish-prestage", daemon=True)

    def owns(self, path: Path) -> bool:
        return path in (self.database, self.parquet_dir, Path(f"{self.database}.wal"))

    def _run(self) -> None:
        if sys.platform == "linux":
            # Lowest CPU priority for this thread and the DuckDB threads it starts (Linux keeps
            # a nice value per thread, inherited): the export takes only the CPU the steps leave
            # idle instead of slowing them down; what is left is done while publish waits.
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
        try:
            self.result = self._export()
        except BaseException as exc:  # publish then does the export itself and says why
            self.error = exc
            _remove(self.database)
            _remove(self.parquet_dir)

    def _export(self) -> Prestaged:
        from dagster_project.publish.write_audit_publish import drop_not_null, write_parquet
        from dagster_project.warehouse import duckdb_config

        if Path(f"{self.store}.wal").exists():
            raise RuntimeError("the fact store has a WAL: its file alone is not the whole store")
        source = _fingerprint(self.store)
        self.database.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.store, self.database)
        if _fingerprint(self.store) != source:
            raise RuntimeError("the fact store changed while it was copied")
        # A connection of its own, on the copy only: the warehouse stays free for the steps.
        con = duckdb.connect(config=duckdb_config())
        with self._lock:
            if self._stopped:
                con.close()
                raise RuntimeError("stopped")
            self._con = con
        try:
            con.execute(f"attach '{self.database}' as pub")
            tables = {
                name
                for (name,) in con.execute(
                    "select table_name from duckdb_tables() "
                    "where database_name = 'pub' and schema_name = 'main'"
                ).fetchall()
            }
            drop_not_null(con, "pub", tables)
            self.parquet_dir.mkdir()
            parquet = {}
            for table in sorted(tables):
                parquet[table] = self.parquet_dir / f"{table}.parquet"
                write_parquet(con, "pub", table, parquet[table])
            con.execute("detach pub")
        finally:
            with self._lock:
                self._con = None
            con.close()
        return Prestaged(self.database, parquet, source)

    def stop(self) -> None:
        """Interrupt the export (a query stops at once), wait for the thread, remove its files."""
        with self._lock:
            self._stopped = True
            if self._con is not None:
                self._con.interrupt()
        self.thread.join()
        if self.result is not None:
            self.result.discard()


_prestages: dict[Path, _Prestage] = {}  # by published folder: one a home
_registry_lock = threading.Lock()


def after_quality_gate(context, paths: HomePaths, checked: Iterable[AssetKey], blocked: bool):
    """Called by every quality gate step with the assets it checked and whether a blocking
    check failed. Blocked: nothing is published in this run, the home's prestage is dropped.
    Else, once the checked assets include every fact-store asset, the prestage starts; with the
    in-process executor only (the publish step then runs in this process, later in this run or
    in the history run `segments run` starts next). Any other gate step removes pending files
    left by a killed process (the raw gate runs early in every run)."""
    from dagster_project.transform.project import dbt_project

    if blocked:
        stop(paths)
        return
    stored = {AssetKey(list(key)) for key in fact_store_asset_keys(dbt_project().manifest_path)}
    executor = context.op_execution_context.job_def.executor_def.name
    if stored and stored <= set(checked) and executor in IN_PROCESS_EXECUTORS:
        start(paths, context.run.run_id)
        get_dagster_logger().info(
            "publication's fact exports started in the background (publish/prestage.py)"
        )
    else:
        with _registry_lock:
            discard_pending(paths)


def start(paths: HomePaths, run_id: str) -> None:
    """Start the prestage of `paths`' home (one a home: a previous one is stopped first)."""
    key = paths.published.resolve()
    with _registry_lock:
        previous = _prestages.pop(key, None)
        if previous is not None:
            previous.stop()
        discard_pending(paths)
        prestage = _Prestage(paths, run_id)
        _prestages[key] = prestage
        prestage.thread.start()


def stop(paths: HomePaths) -> None:
    """Stop the prestage of `paths`' home, if any, and remove its files."""
    with _registry_lock:
        prestage = _prestages.pop(paths.published.resolve(), None)
        if prestage is not None:
            prestage.stop()
        discard_pending(paths)


def claim(paths: HomePaths) -> Prestaged | None:
    """The publish step's join: wait for the home's prestage and hand over its files (the
    caller moves them into the publication or discards them), or None if there is none or it
    failed (then said in the log). Stale pending files of the home are removed either way."""
    with _registry_lock:
        prestage = _prestages.pop(paths.published.resolve(), None)
        discard_pending(paths, keep=prestage)
    if prestage is None:
        return None
    prestage.thread.join()
    if prestage.error is not None:
        get_dagster_logger().warning(
            f"publication's background fact export failed, publish does it: {prestage.error!r}"
        )
    return prestage.result


def discard_pending(paths: HomePaths, keep: _Prestage | None = None) -> None:
    """Remove pending files in the home's published/ no running prestage (or `keep`) owns:
    left by a prestage nobody claimed in a process that was killed."""
    if not paths.published.is_dir():
        return
    live = [p for p in (*_prestages.values(), keep) if p is not None]
    for path in paths.published.glob(f"{PENDING_PREFIX}*"):
        if not any(p.owns(path) for p in live):
            _remove(path)


@atexit.register
def stop_all() -> None:
    """No export outlives the process, and nothing unclaimed stays behind (runs before the
    interpreter freezes daemon threads)."""
    with _registry_lock:
        prestages = list(_prestages.values())
        _prestages.clear()
    for prestage in prestages:
        prestage.stop()
