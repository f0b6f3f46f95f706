"""The publication's fact-table work, started while segmentation runs instead of after it.

Once the fact store's tables (dagster_project/fact_store.py: the 20M order lines) have passed
their blocking checks, nothing later in a run writes the store. The part of publication that
depends on it alone, the byte copy that starts the new file and the Parquet export of the facts
(~24 CPU-s at 100k), then runs in a thread of this process beside segmentation and the small
steps after it, which leave one of the two cores mostly idle. The publish step takes the new
file as soon as the copy is done (`claim`) and writes the small tables into it while the export
may still run; it takes the facts' Parquet last. When there is nothing to take (publication
materialised alone, steps in other processes, a fact store rebuilt since), it does everything
itself.

The export reads a second copy of its own (`.source.duckdb`, removed when it ends): publish
writes the first one meanwhile, and a DuckDB file is opened by one database instance at a time.

Write-audit-publish is unchanged for readers: the thread writes only pending files in
published/ (`.prestaged.<run>.*`), which no reader opens, and publish takes them over only if
the fact store is still the one they were made from. Pending files nobody claims are removed:
by the gate step that blocks (the thread is stopped first), at the exit of the process (atexit),
or, if the process ended without that (killed; `segments run` leaves with os._exit), by the
quality gate steps of the next run in the home. Files publish claimed are its to remove: it
stops the export and removes what it did not move into the publication (Prestaged.discard).
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
from dagster import AssetKey, get_dagster_logger

from dagster_project.fact_store import copy_open_database, fact_store_asset_keys, fact_store_path
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
    """The new publication's first file, complete: a byte copy of the fact store, constraints
    dropped like publish does. The facts' Parquet export may still be running (`parquet`)."""

    database: Path
    tables: frozenset[str]  # the published tables it holds
    source: tuple[int, int, int]  # _fingerprint of the fact store it was copied from
    _export: _Prestage = field(repr=False, compare=False)

    def matches(self, fact_store: Path, tables: set[str]) -> bool:
        """True if made from the fact store as it is now, holding exactly `tables`."""
        return self.tables == tables and _fingerprint(fact_store) == self.source

    def parquet(self) -> dict[str, Path]:
        """Wait for the facts' Parquet export: table name -> its finished file. Empty if the
        export failed (said in the log): the caller then writes them itself."""
        export = self._export
        export.thread.join()
        if export.error is not None:
            get_dagster_logger().warning(
                f"publication's background Parquet export failed, publish does it: {export.error!r}"
            )
            return {}
        return dict(export.parquet)

    def discard(self) -> None:
        """Stop the export and remove every file not moved into the publication."""
        self._export.stop()


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
        Path(f"{path}.wal").unlink(missing_ok=True)


class _StoppedError(RuntimeError):
    pass


class _Prestage:
    """One background export of a home's fact store (its thread owns its pending files until
    publish claims the database)."""

    def __init__(self, paths: HomePaths, run_id: str):
        self.store = fact_store_path(paths.warehouse)
        self.database = paths.published / f"{PENDING_PREFIX}{run_id}.duckdb"
        self.export_source = paths.published / f"{PENDING_PREFIX}{run_id}.source.duckdb"
        self.parquet_dir = paths.published / f"{PENDING_PREFIX}{run_id}.parquet"
        self.handover: Prestaged | None = None  # set once `database` is complete
        self.handover_decided = threading.Event()  # handover set, or the export failed first
        self.parquet: dict[str, Path] = {}  # published table name -> its finished Parquet file
        self.error: BaseException | None = None
        self._con: duckdb.DuckDBPyConnection | None = None
        self._stopped = False
        self._lock = threading.Lock()
        # daemon: never holds up the interpreter's exit; stop_all() (atexit, and `segments` before its os._exit) ends it first
        self.thread = threading.Thread(target=self._run, name="publish-prestage", daemon=True)

    def owns(self, path: Path) -> bool:
        return path in (
            self.database,
            Path(f"{self.database}.wal"),
            self.export_source,
            Path(f"{self.export_source}.wal"),
            self.parquet_dir,
        )

    def _run(self) -> None:
        if sys.platform == "linux":
            # Lowest CPU priority for this thread and the DuckDB threads it starts (Linux keeps
            # a nice value per thread, inherited): the export takes only the CPU the steps leave
            # idle instead of slowing them down, publish's own work included.
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
        try:
            self._export()
        except BaseException as exc:  # publish then does the rest itself and says why
            self.error = exc
            self.parquet = {}
            if self.handover is None:
                _remove(self.database)
            _remove(self.parquet_dir)
        finally:
            _remove(self.export_source)
            self.handover_decided.set()

    def _checked(self) -> duckdb.DuckDBPyConnection:
        """The export's connection, or _StoppedError once stop() was called."""
        with self._lock:
            if self._stopped or self._con is None:
                raise _StoppedError("stopped")
            return self._con

    def _export(self) -> None:
        from dagster_project.publish.write_audit_publish import drop_not_null, write_parquet
        from dagster_project.warehouse import duckdb_config

        if Path(f"{self.store}.wal").exists():
            raise RuntimeError("the fact store has a WAL: its file alone is not the whole store")
        source = _fingerprint(self.store)
        self.database.parent.mkdir(parents=True, exist_ok=True)
        copy_open_database(self.store, self.database)
        if _fingerprint(self.store) != source:
            raise RuntimeError("the fact store changed while it was copied")
        # A connection of its own, on the copies only: the warehouse stays free for the steps.
        con = duckdb.connect(config=duckdb_config())
        with self._lock:
            if self._stopped:
                con.close()
                raise _StoppedError("stopped")
            self._con = con
        try:
            self._checked().execute(f"attach '{self.database}' as pub")
            tables = {
                name
                for (name,) in con.execute(
                    "select table_name from duckdb_tables() "
                    "where database_name = 'pub' and schema_name = 'main'"
                ).fetchall()
            }
            drop_not_null(self._checked(), "pub", tables)
            # detach writes everything into the file: it alone is then the whole database
            self._checked().execute("detach pub")
            shutil.copyfile(self.database, self.export_source)
            self.handover = Prestaged(self.database, frozenset(tables), source, self)
            self.handover_decided.set()

            self._checked().execute(f"attach '{self.export_source}' as facts (read_only)")
            self.parquet_dir.mkdir()
            for table in sorted(tables):
                target = self.parquet_dir / f"{table}.parquet"
                write_parquet(self._checked(), "facts", table, target)
                self.parquet[table] = target
            con.execute("detach facts")
        finally:
            with self._lock:
                self._con = None
            con.close()

    def stop(self) -> None:
        """Stop the export before its next statement, wait for the thread, remove its files
        (the database too, unless publish moved it away).

        The statement running is left to finish (at most the facts' Parquet export, ~20 s at
        100k companies), not interrupted: an interrupted Parquet COPY once left the export
        waiting forever in DuckDB's TaskExecutor::DrainTasks (DuckDB 2.0, tests/test_prestage.py
        hung in the test suite), and with it the step that stopped it."""
        with self._lock:
            self._stopped = True
        self.thread.join()
        for path in (self.database, self.export_source, self.parquet_dir):
            _remove(path)


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
    """The publish step's join: wait until the home's prestage has its database complete and
    hand it over (the caller moves it into the publication, takes the Parquet files with
    `Prestaged.parquet` and must end with `Prestaged.discard`), or None if there is none or it
    failed (then said in the log). Stale pending files of the home are removed either way."""
    with _registry_lock:
        prestage = _prestages.pop(paths.published.resolve(), None)
        discard_pending(paths, keep=prestage)
    if prestage is None:
        return None
    prestage.handover_decided.wait()
    if prestage.handover is None:
        prestage.stop()
        get_dagster_logger().warning(
            f"publication's background fact export failed, publish does it: {prestage.error!r}"
        )
    return prestage.handover


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
