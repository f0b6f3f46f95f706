"""The Dagster instance of a home folder (`<home>/dagster`, DAGSTER_HOME): its dagster.yaml and
how its SQLite run history is written.

A pipeline run writes ~900 Dagster events (a planned and an evaluated event per asset and per
check, step starts and outputs). With Dagster's default per-run SQLite shards, each event opened
two databases and waited for an fsync: ~80 ms an event on these machines, a minute of a two-minute
demo. These choices make that cheap without giving up the run history `make ui` shows:

- one consolidated SQLite event log for the home (one database, one commit per event), written
  through one SQLAlchemy engine (SegmentsEventLogStorage) instead of a new engine per event;
- SQLite `synchronous=NORMAL` on Dagster's WAL-mode databases: a commit no longer waits for the
  disk; an application crash loses nothing, a power cut may lose the last events of run history
  (never warehouse or published data, which live in DuckDB files of their own);
- while `segments run` writes, one idle connection to each history database stays open
  (history_kept_open): Dagster opens and closes a connection per event, and the close of the last
  connection to a WAL database checkpoints it, syncs it and deletes its WAL, once per event.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path

from dagster._core.storage.event_log import ConsolidatedSqliteEventLogStorage
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.pool import NullPool

# dagster.yaml files that start with this line are ours to rewrite when the settings change.
MANAGED_HEADER = "# Dagster instance of this home folder (written by segments; edit freely, then"
INSTANCE_YAML = f"""{MANAGED_HEADER}
# delete this header line so segments keeps your version).
# Run history, schedules and asset status live in SQLite files beside this one.
event_log_storage:
  module: dagster_project.dagster_instance
  class: SegmentsEventLogStorage
  config:
    base_dir: {{event_log_dir}}
telemetry:
  enabled: false
"""


class SegmentsEventLogStorage(ConsolidatedSqliteEventLogStorage):
    """Dagster's consolidated SQLite event log, with one SQLAlchemy engine for the storage's
    lifetime. Dagster's own class builds a new engine for every connection, i.e. for every event:
    SQLAlchemy's statement cache lives in the engine, so each event compiled its INSERTs again
    (half the CPU of writing an event: ~0.6 of 1.2 ms, ~1,200 writes a run). Connections are
    still opened and closed per use (NullPool), as before. The database, its schema and what is
    written are Dagster's. Guarded by tests/test_dagster_instance.py (`_connect` is private)."""

    @cached_property
    def _shared_engine(self) -> Engine:
        # what Dagster's _connect builds per call
        return create_engine(
            self._conn_string,
            poolclass=NullPool,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS},
        )

    @contextlib.contextmanager
    def _connect(self):
        with self._shared_engine.connect() as conn, conn.begin():
            yield conn


def write_instance_config(dagster_home: Path) -> Path:
    """Write `<dagster_home>/dagster.yaml` unless a user has taken it over (header removed)."""
    config = dagster_home / "dagster.yaml"
    wanted = INSTANCE_YAML.format(event_log_dir=dagster_home / "history")
    if config.exists():
        current = config.read_text()
        if current == wanted or not current.startswith(MANAGED_HEADER):
            return config
    config.write_text(wanted)
    return config


def _is_dagster_sqlite(dbapi_connection) -> bool:
    if not isinstance(dbapi_connection, sqlite3.Connection):
        return False
    row = dbapi_connection.execute("pragma database_list").fetchone()
    return row is not None and row[2].endswith(".db")


@event.listens_for(Engine, "connect")
def _commit_without_fsync(dbapi_connection, _record) -> None:
    # Dagster opens its SQLite storages in WAL mode; NORMAL is SQLite's recommended pairing.
    if _is_dagster_sqlite(dbapi_connection):
        dbapi_connection.execute("pragma synchronous=NORMAL")


@contextlib.contextmanager
def history_kept_open(dagster_home: Path) -> Iterator[None]:
    """Keep one idle connection to each SQLite database of the run history open for the block.

    While it is open, Dagster's per-event connections are never the last one to close, so SQLite
    checkpoints the WAL when it has grown (every ~1000 pages) instead of on every event (~2.5x
    less CPU and no disk syncs per event). The connection never holds a transaction: readers such
    as `make ui` and the WAL checkpoints are not held up. Its own close, last, checkpoints once."""
    held: list[sqlite3.Connection] = []
    try:
        for database in sorted((dagster_home / "history").glob("*.db")):
            connection = sqlite3.connect(database)
            # sqlite3 opens the file on first use; a read leaves no transaction behind
            connection.execute("select count(*) from sqlite_master").fetchall()
            held.append(connection)
        yield
    finally:
        for connection in held:
            connection.close()
