"""CRM write-back: per CRM account, the segment, sub-segment and value-profile picklist values to
import, so that the segmentation is encoded in the operating system (DESIGN.md "Interfaces").

Values come from the customer's held (hysteresis) assignment of the newest history snapshot, so
a one-off change never reaches the CRM. Only picklist values go out: anything outside the
taxonomy and value-profile seeds (`Unassigned`, no profile) is written empty. Each row says
whether it changed since the previously published write-back, so an import can take only those.
No personal data: account ids and picklist values only.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import duckdb
import pandas as pd

from dagster_project.publish.write_audit_publish import published_name
from dagster_project.segmentation.history import HISTORY_TABLE

WRITEBACK_TABLE = "segments.crm_writeback"
# CRM field names of crm/accounts (../shared/source_contract.md)
ACCOUNT_ID = "account_id"
PICKLIST_FIELDS = ["segment", "sub_segment", "value_profile"]
CHANGED = "changed_since_last_publication"
FILE_COLUMNS = [ACCOUNT_ID, *PICKLIST_FIELDS, CHANGED]
ALL_ROWS_FILE = "crm_account_segments.csv"
CHANGED_ROWS_FILE = "crm_account_segments_changed.csv"


def picklist_values(
    held: pd.DataFrame, taxonomy: pd.DataFrame, value_profiles: pd.DataFrame
) -> pd.DataFrame:
    """customer_id + the three picklist fields; values outside the seeds become empty."""
    out = held[["customer_id"]].copy()
    pairs = set(zip(taxonomy["segment"], taxonomy["sub_segment"], strict=True))
    valid_pair = [(s, b) in pairs for s, b in zip(held["segment"], held["sub_segment"],
                                                    strict=True)]
    out["segment"] = held["segment"].where(held["segment"].isin(taxonomy["segment"]), "")
    out["sub_segment"] = held["sub_segment"].where(valid_pair, "")
    profile_ok = held["value_profile"].isin(value_profiles["value_profile"])
    out["value_profile"] = held["value_profile"].where(profile_ok, "")
    return out


def build_writeback(
    accounts: pd.DataFrame,
    picklists: pd.DataFrame,
    previous: pd.DataFrame | None,
    as_of: dt.date | None,
    scheme_version: str | None,
) -> pd.DataFrame:
    """One row per CRM account (`accounts`: account_id, customer_id) with its customer's
    picklist values and whether they differ from the `previous` published write-back (every row
    is new when nothing was published before)."""
    rows = accounts[[ACCOUNT_ID, "customer_id"]].merge(picklists, on="customer_id", how="inner")
    rows = rows.sort_values(ACCOUNT_ID, kind="stable").reset_index(drop=True)
    rows[PICKLIST_FIELDS] = rows[PICKLIST_FIELDS].fillna("")
    if previous is None or previous.empty:
        rows[CHANGED] = True
    else:
        before = rows[[ACCOUNT_ID]].merge(
            previous[[ACCOUNT_ID, *PICKLIST_FIELDS]].fillna(""), on=ACCOUNT_ID, how="left",
            validate="one_to_one",
        )
        unchanged = before[PICKLIST_FIELDS].eq(rows[PICKLIST_FIELDS]).all(axis=1)
        rows[CHANGED] = ~unchanged.to_numpy()
    rows["as_of"] = pd.Timestamp(as_of).date() if as_of is not None else None
    rows["scheme_version"] = scheme_version
    return rows[[ACCOUNT_ID, *PICKLIST_FIELDS, CHANGED, "customer_id", "as_of", "scheme_version"]]


# --- the warehouse and the published file ------------------------------------------------------


def crm_accounts(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Live CRM accounts and their unified customer (deleted accounts cannot be imported into)."""
    return con.execute(
        """
        select identity_map.source_id as account_id, identity_map.customer_id
        from staging.stg_identity__customer_source_map as identity_map
        inner join staging.stg_crm__accounts as accounts
            on accounts.account_id = identity_map.source_id
        where identity_map.source_system = 'crm'
            and identity_map.customer_id is not null
            and not coalesce(accounts.is_deleted, false)
        order by 1
        """
    ).df()


def newest_held_values(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    return con.execute(
        f"""
        select customer_id, as_of, scheme_version, {", ".join(PICKLIST_FIELDS)}
        from {HISTORY_TABLE}
        where snapshot_month = (select max(snapshot_month) from {HISTORY_TABLE})
        order by customer_id
        """
    ).df()


def previously_published(con: duckdb.DuckDBPyConnection, published_db: Path) -> pd.DataFrame | None:
    """The write-back of the last publication (None before the first one)."""
    if not published_db.exists():
        return None
    table = published_name(WRITEBACK_TABLE)
    con.execute(f"attach '{published_db}' as previous_publication (read_only)")
    try:
        found = con.execute(
            "select count(*) from information_schema.tables "
            "where table_catalog = 'previous_publication' and table_name = ?", [table]
        ).fetchall()[0][0]
        if not found:
            return None
        return con.execute(
            f"select {ACCOUNT_ID}, {', '.join(PICKLIST_FIELDS)} "
            f"from previous_publication.main.{table}"
        ).df()
    finally:
        con.execute("detach previous_publication")


def write_writeback_table(con: duckdb.DuckDBPyConnection, rows: pd.DataFrame) -> int:
    con.execute("create schema if not exists segments")
    con.register("writeback_rows", rows)
    try:
        con.execute(f"create or replace table {WRITEBACK_TABLE} as select * from writeback_rows")
    finally:
        con.unregister("writeback_rows")
    return len(rows)


def write_writeback_files(rows: pd.DataFrame, folder: Path) -> dict[str, int]:
    """The import files: every account, and only the changed ones (each replaced atomically)."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {ALL_ROWS_FILE: rows, CHANGED_ROWS_FILE: rows[rows[CHANGED].astype(bool)]}
    for name, frame in files.items():
        tmp = folder / f".{name}.tmp"
        frame[FILE_COLUMNS].to_csv(tmp, index=False, lineterminator="\n")
        os.replace(tmp, folder / name)
    return {name: len(frame) for name, frame in files.items()}
