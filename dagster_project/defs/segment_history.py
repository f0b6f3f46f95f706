"""Segment history as monthly as-of partitions (backfillable), and the migration matrix and
segment stability rebuilt from the whole history (dagster_project/segmentation/history.py).

A partition's as-of is its month end, capped at the data-through date (the as-of of the latest
run). The partition of the current as-of takes the assignment the run just made
(segments.customer_segments); an older month re-runs the assignment rules on the data as of that
month: the as-of-dependent dbt models are rebuilt for it in a scratch database
(transform/as_of_replay.py) and segmentation/assign.py's run_segmentation runs there.
`segments run` materialises the unpartitioned graph, then the partition of its as-of
(segment_history_job, which also publishes).
"""


import datetime as dt
import warnings
from collections.abc import Iterator

import duckdb
import pandas as pd
from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetSpec,
    BackfillPolicy,
    BetaWarning,
    Failure,
    MaterializeResult,
    MonthlyPartitionsDefinition,
    asset,
    multi_asset,
)

from dagster_project.as_of import resolve_as_of
from dagster_project.defs.segmentation import customer_segmentation
from dagster_project.resources import WarehouseResource
from dagster_project.run_context import as_of_for_run
from dagster_project.segmentation.assign import run_segmentation
from dagster_project.segmentation.history import (
    HISTORY_TABLE,
    MIGRATION_TABLE,
    STABILITY_TABLE,
    record_snapshot,
    write_migration_and_stability,
)
from dagster_project.segmentation.settings import segmentation_settings
from dagster_project.transform.as_of_replay import discard_replay, open_replay, replay_as_of
from dagster_project.transform.project import dbt_project

# backfill_policy is beta in Dagster 1.13: known, and not worth a warning on every run
warnings.filterwarnings("ignore", message=".*backfill_policy.*", category=BetaWarning)

HISTORY_KEY = AssetKey(HISTORY_TABLE.split("."))
CUSTOMER_SEGMENTS_KEY = AssetKey(["segments", "customer_segments"])
# What the assignment reads: a replay rebuilds the as-of-dependent ones among these.
ASSIGNMENT_INPUTS = sorted(customer_segmentation.dependency_keys, key=lambda k: k.path)

MONTHLY_AS_OF = MonthlyPartitionsDefinition(
    start_date=segmentation_settings().history.first_month.isoformat(),
    # the month in progress is a partition too: a run's data may reach into it
    end_offset=1,
)


def month_end(month: dt.date) -> dt.date:
    return (pd.Timestamp(month) + pd.offsets.MonthEnd(0)).date()


def partition_key_for(as_of: dt.date) -> str:
    """The monthly partition holding `as_of` (the run's snapshot)."""
    key = MONTHLY_AS_OF.get_partition_key_for_timestamp(
        pd.Timestamp(as_of).tz_localize("UTC").timestamp()
    )
    if not MONTHLY_AS_OF.has_partition_key(key) or dt.date.fromisoformat(key) > as_of:
        first = MONTHLY_AS_OF.get_first_partition_key()
        raise ValueError(f"as-of {as_of} is before the first history month {first} "
                         "(config/segmentation.yml history.first_month)")
    return key


def _scalar(con: duckdb.DuckDBPyConnection, sql: str):
    try:
        return con.execute(sql).fetchall()[0][0]
    except duckdb.CatalogException:
        return None


def _customer_segments(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    return con.execute("select * from segments.customer_segments order by customer_id").df()


def _replayed_segments(warehouse: WarehouseResource, as_of: dt.date,
                       context: AssetExecutionContext) -> pd.DataFrame:
    """The assignment rules re-run on the data as of `as_of` (the warehouse stays untouched)."""
    needed = [(k.path[0], k.path[-1]) for k in ASSIGNMENT_INPUTS]
    scratch, models = replay_as_of(warehouse.paths, as_of, needed, dbt_project().manifest_path)
    context.log.info(f"as of {as_of}: rebuilt {', '.join(models)} in {scratch}")
    try:
        with open_replay(scratch, warehouse.paths.warehouse) as con:
            segmentation = run_segmentation(con, as_of, segmentation_settings())
    finally:
        discard_replay(scratch)
    return segmentation.tables["customer_segments"]


@asset(
    key=HISTORY_KEY,
    group_name="segmentation",
    partitions_def=MONTHLY_AS_OF,
    # a backfill is one run that walks the months in order (and one writer on the warehouse)
    backfill_policy=BackfillPolicy.single_run(),
    deps=[CUSTOMER_SEGMENTS_KEY, *ASSIGNMENT_INPUTS],
    kinds={"duckdb", "python"},
    description="Monthly snapshots of every customer's segments (as of the month end, capped at "
    "the data-through date): assigned and held values with hysteresis and the reason; kept "
    "across runs, keyed by customer_id + as_of.",
)
def customer_segment_history(
    context: AssetExecutionContext, warehouse: WarehouseResource
) -> MaterializeResult:
    settings = segmentation_settings()
    months = sorted(dt.date.fromisoformat(k) for k in context.partition_keys)
    with warehouse.connect() as con:
        data_through = as_of_for_run(con, context.run_id) or resolve_as_of(con, None)
        first_order = _scalar(con, "select min(order_date) from marts.fct_order_lines")
        current_as_of = _scalar(con, "select max(as_of) from segments.customer_segments")
    if data_through is None:
        raise Failure("no as-of date: no events have been landed yet")
    too_late = [m for m in months if m > data_through]
    if too_late:
        raise Failure(f"the data reaches {data_through}: no snapshot for {too_late[0]:%Y-%m} "
                      "or later yet")

    summary = []
    for i, month in enumerate(months):
        as_of = min(month_end(month), data_through)
        if first_order is None or as_of < first_order:
            segments, source = pd.DataFrame(columns=["customer_id"]), "before the first order"
        elif as_of == current_as_of:
            with warehouse.connect() as con:
                segments, source = _customer_segments(con), "this run's assignment"
        else:
            segments, source = _replayed_segments(warehouse, as_of, context), "replayed"
        with warehouse.connect() as con:
            written = record_snapshot(con, segments, month, settings.history,
                                      rethread_later=i == len(months) - 1)
        context.log.info(f"{month:%Y-%m} as of {as_of} ({source}): {written.rows} customers, "
                         f"held back {written.held_back}")
        summary.append((month, as_of, source, written))

    last_month, last_as_of, last_source, last = summary[-1]
    return MaterializeResult(
        metadata={
            "months": ", ".join(f"{m:%Y-%m}" for m, *_ in summary),
            "as_of": str(last_as_of),
            "source": last_source,
            "rows": last.rows,
            **{f"held_back.{name}": n for name, n in last.held_back.items()},
            "later_months_rethreaded": len(last.rethreaded_months),
        }
    )


MIGRATION_KEY = AssetKey(MIGRATION_TABLE.split("."))
STABILITY_KEY = AssetKey(STABILITY_TABLE.split("."))


@multi_asset(
    name="segment_migration_and_stability",
    group_name="segmentation",
    specs=[
        AssetSpec(MIGRATION_KEY, deps=[HISTORY_KEY], kinds={"duckdb"},
                  description="Customers per (dimension, from value, to value) between "
                  "consecutive history snapshots, on the held (hysteresis) values. Empty until "
                  "two snapshots exist: the next month's run, or a backfill of an earlier month."),
        AssetSpec(STABILITY_KEY, deps=[HISTORY_KEY], kinds={"duckdb"},
                  description="Per dimension, value and pair of consecutive snapshots: the share "
                  "of customers that keep their value (and how many moved or left). Empty until two "
                  "snapshots exist."),
    ],
)
def segment_migration_and_stability(
    warehouse: WarehouseResource,
) -> Iterator[MaterializeResult]:
    with warehouse.connect() as con:
        counts = write_migration_and_stability(con, segmentation_settings().history)
        snapshots = _scalar(con, f"select count(distinct as_of) from {HISTORY_TABLE}")
    for key, table in ((MIGRATION_KEY, MIGRATION_TABLE), (STABILITY_KEY, STABILITY_TABLE)):
        yield MaterializeResult(
            asset_key=key, metadata={"rows": counts[table], "snapshots": snapshots}
        )
