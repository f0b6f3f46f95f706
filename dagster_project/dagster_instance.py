"""The Dagster instance of a home folder (`<home>/dagster`, DAGSTER_HOME): its dagster.yaml and
how its SQLite run history is written.

A pipeline run writes ~900 Dagster events (a planned and an evaluated event per asset and per
check, step starts and outputs). With Dagster's default per-run SQLite shards, each event opened
two databases and waited for an fsync: ~80 ms an event on these machines, a minute of a two-minute
demo. Two choices make that cheap without giving up the run history `make ui` shows:

- one consolidated SQLite event log for the home (one database, one commit per event);
- SQLite `synchronous=NORMAL` on Dagster's WAL-mode databases: a commit no longer waits for the
  disk; an application crash loses nothing, a power cut may lose the last events of run history
  (never warehouse or published data, which live in DuckDB files of their own).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.engine import Engine

# dagster.yaml files that start with this line are ours to rewrite when the settings change.
MANAGED_HEADER = "# Dagster instance of this home folder (written by segments; edit freely, then"
INSTANCE_YAML = f"""{MANAGED_HEADER}
# delete this header line so segments keeps your version).
# Run history, schedules and asset status live in SQLite files beside this one.
event_log_storage:
  module: dagster._core.storage.event_log
  class: ConsolidatedSqliteEventLogStorage
  config:
    base_dir: {{event_log_dir}}
telemetry:
  enabled: false
"""


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
