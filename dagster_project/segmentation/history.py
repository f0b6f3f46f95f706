"""Segment history: one snapshot of every customer's segments per monthly as-of date, with
hysteresis, and the migration matrix and segment stability between consecutive snapshots
(DESIGN.md "Segments": "a customer does not flip segment on a one-off change").

A snapshot records, per dimension (industry = segment + sub-segment, value profile, service
tier), the value the rules assigned as of that date (`assigned_*`) and the value the customer
holds (the plain column names). A changed assignment replaces the held value only when it is
backed by enough confidence or was assigned in N consecutive snapshots (config/segmentation.yml
`history.dimensions`); `<dimension>_decision` says which rule decided.

The table is kept across runs and keyed by customer_id + as_of (one as-of per snapshot month).
Writing a month replaces that snapshot and re-threads the held values of every later snapshot
from their stored assignments, so the table depends only on the set of assignments, never on
the order in which months were (back)filled.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import duckdb
import numpy as np
import pandas as pd

from dagster_project.segmentation.explain import inputs_json
from dagster_project.segmentation.settings import HistorySettings, HysteresisRule

SCHEMA = "segments"
HISTORY_TABLE = f"{SCHEMA}.customer_segment_history"
MIGRATION_TABLE = f"{SCHEMA}.segment_migration"
STABILITY_TABLE = f"{SCHEMA}.segment_stability"

# Decisions per dimension and snapshot (the reason recorded beside the held value).
NEW = "NEW"  # first snapshot of the customer
NEW_SCHEME = "NEW_SCHEME"  # the scheme version changed: old values mean something else
KEPT = "KEPT"  # assigned = held
SWITCHED_IMMEDIATE = "SWITCHED_IMMEDIATE"  # decided by an immediate source (steward override)
SWITCHED_FROM_PROVISIONAL = "SWITCHED_FROM_PROVISIONAL"  # the held value was provisional
SWITCHED_EVIDENCE = "SWITCHED_EVIDENCE"  # confidence >= min_confidence
SWITCHED_PERSISTED = "SWITCHED_PERSISTED"  # assigned in persist_snapshots snapshots in a row
HELD = "HELD"  # a change not (yet) backed: the customer keeps its value

_COMMON_COLUMNS = {
    "customer_id": "varchar",
    "snapshot_month": "date",
    "as_of": "date",
    "scheme_version": "varchar",
    "is_provisional": "boolean",
}


def _value_columns(settings: HistorySettings) -> list[str]:
    return [c for rule in settings.dimensions.values() for c in rule.columns]


def history_columns(settings: HistorySettings) -> dict[str, str]:
    """The table's columns and DuckDB types (the dimensions come from config)."""
    columns = dict(_COMMON_COLUMNS)
    for column in _value_columns(settings):
        columns[column] = "varchar"
    for name, rule in settings.dimensions.items():
        for column in rule.columns:
            columns[f"assigned_{column}"] = "varchar"
        columns[f"{name}_confidence"] = "double"
        if rule.source_column:
            columns[f"{name}_source"] = "varchar"
        columns[f"{name}_streak"] = "integer"
        columns[f"{name}_decision"] = "varchar"
        columns[f"{name}_held_since"] = "date"
        columns[f"{name}_held_provisional"] = "boolean"
    columns["hysteresis_reasons"] = "varchar"
    return columns


def assignments_for_history(
    segments: pd.DataFrame, settings: HistorySettings, snapshot_month: dt.date
) -> pd.DataFrame:
    """customer_segments rows (one as-of) -> the assignment part of a history snapshot."""
    out = pd.DataFrame(
        {
            "customer_id": segments["customer_id"].astype(str),
            "snapshot_month": snapshot_month,
            "as_of": pd.to_datetime(segments["as_of"]).dt.date,
            "scheme_version": segments["scheme_version"].astype(str),
            "is_provisional": segments["is_provisional"].fillna(False).astype(bool),
        }
    )
    for name, rule in settings.dimensions.items():
        for column in rule.columns:
            out[f"assigned_{column}"] = _text(segments[column])
        out[f"{name}_confidence"] = pd.to_numeric(
            segments[rule.confidence_column], errors="coerce"
        ).astype(float)
        if rule.source_column:
            out[f"{name}_source"] = _text(segments[rule.source_column])
    return out.sort_values("customer_id", kind="stable").reset_index(drop=True)


def _text(values: pd.Series) -> pd.Series:
    return values.astype(object).where(values.notna(), None)


def _same(left: pd.DataFrame, right: pd.DataFrame) -> np.ndarray:
    """Row-wise equality of two frames of the same shape, a missing value equal to a missing one."""
    same = np.ones(len(left), dtype=bool)
    for a, b in zip(left.columns, right.columns, strict=True):
        x, y = left[a], right[b]
        same &= ((x == y) | (x.isna() & y.isna())).to_numpy(dtype=bool)
    return same


def apply_hysteresis(
    assigned: pd.DataFrame, previous: pd.DataFrame | None, settings: HistorySettings
) -> pd.DataFrame:
    """One snapshot: `assigned` (assignments_for_history rows of one as-of) against `previous`
    (the customers' rows of the snapshot before, or None) -> history rows."""
    snapshot = assigned.sort_values("customer_id", kind="stable").reset_index(drop=True)
    for column in ("snapshot_month", "as_of"):
        snapshot[column] = pd.to_datetime(snapshot[column]).dt.date
    if previous is None or previous.empty:
        prev = pd.DataFrame(index=snapshot.index, columns=list(history_columns(settings)))
        found = np.zeros(len(snapshot), dtype=bool)
    else:
        state_columns = [c for c in history_columns(settings) if c in previous.columns]
        prev = snapshot[["customer_id"]].merge(
            previous[state_columns], on="customer_id", how="left", validate="one_to_one"
        )
        found = prev["as_of"].notna().to_numpy()
    same_scheme = found & (prev["scheme_version"] == snapshot["scheme_version"]).to_numpy()
    as_of = snapshot["as_of"]
    reasons: list[dict[str, str]] = [{} for _ in range(len(snapshot))]

    for name, rule in settings.dimensions.items():
        assigned_cols = [f"assigned_{c}" for c in rule.columns]
        now = snapshot[assigned_cols]
        streak_before = pd.to_numeric(prev[f"{name}_streak"], errors="coerce").fillna(0)
        repeated = same_scheme & _same(now, prev[assigned_cols])
        streak = np.where(repeated, streak_before.to_numpy() + 1, 1).astype(int)
        kept = same_scheme & _same(now, prev[rule.columns])
        changed = same_scheme & ~kept
        immediate = changed & _from_immediate_source(snapshot, name, rule)
        from_provisional = (
            changed
            & settings.provisional_gives_way
            & prev[f"{name}_held_provisional"].eq(True).to_numpy()
        )
        confidence = snapshot[f"{name}_confidence"].fillna(0.0).to_numpy()
        evidence = changed & (confidence >= rule.min_confidence)
        persisted = changed & (streak >= rule.persist_snapshots)
        decision = np.select(
            [~found, ~same_scheme, kept, immediate, from_provisional, evidence, persisted],
            [NEW, NEW_SCHEME, KEPT, SWITCHED_IMMEDIATE, SWITCHED_FROM_PROVISIONAL,
             SWITCHED_EVIDENCE, SWITCHED_PERSISTED],
            default=HELD,
        )
        hold = decision == HELD
        for column in rule.columns:
            snapshot[column] = np.where(hold, prev[column], snapshot[f"assigned_{column}"])
            snapshot[column] = _text(snapshot[column])
        snapshot[f"{name}_streak"] = streak
        snapshot[f"{name}_decision"] = decision
        # a kept value has been held since it was adopted; a switched one since this as-of
        since_before = pd.to_datetime(prev[f"{name}_held_since"]).dt.date
        snapshot[f"{name}_held_since"] = np.where(kept | hold, since_before, as_of)
        snapshot[f"{name}_held_provisional"] = np.where(
            hold, prev[f"{name}_held_provisional"], snapshot["is_provisional"]
        ).astype(bool)
        for i in np.flatnonzero(hold):
            reasons[i][name] = (
                f"{HELD}: {_describe(now.iloc[i])} assigned in {streak[i]} of "
                f"{rule.persist_snapshots} snapshots, confidence {confidence[i]:.2f} < "
                f"{rule.min_confidence:g}; keeps {_describe(prev[rule.columns].iloc[i])}"
            )
    snapshot["hysteresis_reasons"] = [inputs_json(r) if r else None for r in reasons]
    return snapshot[list(history_columns(settings))]


def _from_immediate_source(snapshot: pd.DataFrame, name: str, rule: HysteresisRule) -> np.ndarray:
    if not rule.source_column or not rule.immediate_sources:
        return np.zeros(len(snapshot), dtype=bool)
    return snapshot[f"{name}_source"].isin(rule.immediate_sources).to_numpy()


def _describe(values: pd.Series) -> str:
    return "/".join("-" if pd.isna(v) else str(v) for v in values)


def assignment_part(history_rows: pd.DataFrame, settings: HistorySettings) -> pd.DataFrame:
    """The stored assignment columns of history rows (what apply_hysteresis takes)."""
    keep = list(_COMMON_COLUMNS)
    for name, rule in settings.dimensions.items():
        keep += [f"assigned_{c}" for c in rule.columns] + [f"{name}_confidence"]
        if rule.source_column:
            keep.append(f"{name}_source")
    return history_rows[keep]


# --- the warehouse table --------------------------------------------------------------------


@dataclass(frozen=True)
class SnapshotWritten:
    snapshot_month: dt.date
    as_of: dt.date | None
    rows: int
    held_back: dict[str, int]  # dimension -> customers whose changed assignment was held
    rethreaded_months: list[dt.date]


def ensure_history_table(con: duckdb.DuckDBPyConnection, settings: HistorySettings) -> None:
    """Create the table, or add the columns a new dimension in config needs."""
    con.execute(f"create schema if not exists {SCHEMA}")
    columns = history_columns(settings)
    body = ", ".join(f"{name} {kind}" for name, kind in columns.items())
    con.execute(f"create table if not exists {HISTORY_TABLE} ({body})")
    existing = {
        row[0]
        for row in con.execute(
            "select column_name from information_schema.columns "
            "where table_schema = ? and table_name = ?",
            HISTORY_TABLE.split("."),
        ).fetchall()
    }
    for name, kind in columns.items():
        if name not in existing:
            con.execute(f"alter table {HISTORY_TABLE} add column {name} {kind}")


def _read(con: duckdb.DuckDBPyConnection, where: str, params: list) -> pd.DataFrame:
    return con.execute(
        f"select * from {HISTORY_TABLE} where {where} order by customer_id", params
    ).df()


def _replace(con: duckdb.DuckDBPyConnection, month: dt.date, rows: pd.DataFrame,
             settings: HistorySettings) -> None:
    columns = history_columns(settings)
    con.execute(f"delete from {HISTORY_TABLE} where snapshot_month = ?", [month])
    if rows.empty:
        return
    con.register("history_rows", rows)
    try:
        select = ", ".join(f"cast({name} as {kind}) as {name}" for name, kind in columns.items())
        con.execute(f"insert into {HISTORY_TABLE} by name select {select} from history_rows")
    finally:
        con.unregister("history_rows")


def record_snapshot(
    con: duckdb.DuckDBPyConnection,
    segments: pd.DataFrame,
    snapshot_month: dt.date,
    settings: HistorySettings,
    rethread_later: bool = True,
) -> SnapshotWritten:
    """Replace the snapshot of `snapshot_month` with `segments` (customer_segments rows of one
    as-of; empty = no snapshot) and re-thread the held values of every later snapshot (a
    backfill walking months in order does that once, after its last month)."""
    ensure_history_table(con, settings)
    con.execute("begin transaction")
    try:
        month_before = con.execute(
            f"select max(snapshot_month) from {HISTORY_TABLE} where snapshot_month < ?",
            [snapshot_month],
        ).fetchall()[0][0]
        previous = _read(con, "snapshot_month = ?", [month_before]) if month_before else None
        later = [
            r[0]
            for r in con.execute(
                f"select distinct snapshot_month from {HISTORY_TABLE} where snapshot_month > ? "
                "order by 1",
                [snapshot_month],
            ).fetchall()
        ] if rethread_later else []
        assigned = assignments_for_history(segments, settings, snapshot_month)
        rows = apply_hysteresis(assigned, previous, settings) if len(assigned) else assigned
        _replace(con, snapshot_month, rows, settings)
        written = rows
        state = rows if len(rows) else previous
        for month in later:
            stored = _read(con, "snapshot_month = ?", [month])
            state = apply_hysteresis(assignment_part(stored, settings), state, settings)
            _replace(con, month, state, settings)
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    held = {
        name: int((written[f"{name}_decision"] == HELD).sum()) if len(written) else 0
        for name in settings.dimensions
    }
    as_of = written["as_of"].iloc[0] if len(written) else None
    return SnapshotWritten(snapshot_month, as_of, len(written), held, later)


# --- migration and stability -----------------------------------------------------------------


def migration_sql(settings: HistorySettings) -> str:
    """Customers per (dimension, from value, to value) between consecutive snapshots, on the
    held values; customers entering or leaving get the configured labels."""
    labels = settings.migration_labels
    parts = []
    for column in _value_columns(settings):
        parts.append(
            f"""
            select
                '{column}' as dimension,
                pairs.from_month, pairs.from_as_of, pairs.to_month, pairs.to_as_of,
                case when before.customer_id is null then '{labels.new}'
                    else coalesce(before.{column}, '{labels.none}') end as from_value,
                case when after.customer_id is null then '{labels.gone}'
                    else coalesce(after.{column}, '{labels.none}') end as to_value,
                count(*) as customers
            from numbered as before
            full join numbered as after
                on after.customer_id = before.customer_id and after.i = before.i + 1
            inner join pairs on pairs.i = coalesce(after.i, before.i + 1)
            group by all"""
        )
    return f"""
        with snapshots as (
            select snapshot_month, as_of, row_number() over (order by snapshot_month) as i
            from (select distinct snapshot_month, as_of from {HISTORY_TABLE})
        ),
        pairs as (
            select * from (
                select
                    i,
                    lag(snapshot_month) over (order by i) as from_month,
                    lag(as_of) over (order by i) as from_as_of,
                    snapshot_month as to_month,
                    as_of as to_as_of
                from snapshots
            ) where from_month is not null
        ),
        numbered as (
            select history.*, snapshots.i
            from {HISTORY_TABLE} as history
            inner join snapshots using (snapshot_month)
        )
        {' union all '.join(parts)}
        order by dimension, to_month, from_value, to_value
    """


def stability_sql(settings: HistorySettings) -> str:
    """Per dimension, value and pair of consecutive snapshots: of the customers holding the value
    in the first snapshot and present in the second, the share that still holds it."""
    labels = settings.migration_labels
    return f"""
        select
            dimension, from_month, from_as_of, to_month, to_as_of,
            from_value as value,
            sum(customers) filter (where to_value <> '{labels.gone}') as customers,
            coalesce(sum(customers) filter (where to_value = from_value), 0) as customers_kept,
            coalesce(sum(customers) filter (
                where to_value <> from_value and to_value <> '{labels.gone}'), 0)
                as customers_moved,
            coalesce(sum(customers) filter (where to_value = '{labels.gone}'), 0)
                as customers_gone,
            round(coalesce(sum(customers) filter (where to_value = from_value), 0)
                / nullif(sum(customers) filter (where to_value <> '{labels.gone}'), 0), 4)
                as stability
        from {MIGRATION_TABLE}
        where from_value <> '{labels.new}'
        group by all
        order by dimension, to_month, value
    """


def write_migration_and_stability(
    con: duckdb.DuckDBPyConnection, settings: HistorySettings
) -> dict[str, int]:
    """Rebuild both tables from the whole history (a backfill changes pairs on both sides)."""
    ensure_history_table(con, settings)
    con.execute(f"create or replace table {MIGRATION_TABLE} as {migration_sql(settings)}")
    con.execute(f"create or replace table {STABILITY_TABLE} as {stability_sql(settings)}")
    return {
        table: con.execute(f"select count(*) from {table}").fetchall()[0][0]
        for table in (MIGRATION_TABLE, STABILITY_TABLE)
    }
