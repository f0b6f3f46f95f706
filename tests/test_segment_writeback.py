"""CRM write-back: picklist values only, one row per live CRM account, and only the rows that
changed since the previously published write-back flagged."""

from __future__ import annotations

import csv
import datetime as dt

import duckdb
import pandas as pd

from dagster_project.segmentation.assign import read_seed
from dagster_project.segmentation.writeback import (
    ALL_ROWS_FILE,
    CHANGED,
    CHANGED_ROWS_FILE,
    FILE_COLUMNS,
    build_writeback,
    picklist_values,
    previously_published,
    write_writeback_files,
)

TAXONOMY = read_seed("segment_taxonomy")
PROFILES = read_seed("value_profiles")
AS_OF = dt.date(2025, 12, 31)
ACCOUNTS = pd.DataFrame(
    {
        "account_id": ["A1", "A2", "A3", "B1"],
        "customer_id": ["c1", "c1", "c2", "c3"],  # A1 and A2 are one company (duplicates)
    }
)


def _held(**changes) -> pd.DataFrame:
    rows = {
        "c1": ("Industry", "Data Centres", "Lifecycle Partner"),
        "c2": ("Power Generation", "Utilities", None),
        "c3": ("Unassigned", "Unassigned", "Volume Reseller"),
    }
    rows.update(changes)
    return pd.DataFrame(
        [(c, *v) for c, v in rows.items()],
        columns=["customer_id", "segment", "sub_segment", "value_profile"],
    )


def _writeback(held: pd.DataFrame, previous: pd.DataFrame | None) -> pd.DataFrame:
    return build_writeback(ACCOUNTS, picklist_values(held, TAXONOMY, PROFILES), previous, AS_OF,
                           "v1")


def test_only_picklist_values_go_to_the_crm():
    rows = _writeback(_held(), None).set_index("account_id")
    assert rows.loc["A2", ["segment", "sub_segment", "value_profile"]].tolist() == [
        "Industry", "Data Centres", "Lifecycle Partner"]
    assert rows.loc["A3", "value_profile"] == ""  # no profile: empty, not "None"
    assert rows.loc["B1", ["segment", "sub_segment"]].tolist() == ["", ""]  # Unassigned
    # a sub-segment under another segment is not a valid picklist pair
    odd = _writeback(_held(c2=("Industry", "Utilities", None)), None).set_index("account_id")
    assert odd.loc["A3", ["segment", "sub_segment"]].tolist() == ["Industry", ""]


def test_second_publication_flags_only_changed_rows(tmp_path):
    first = _writeback(_held(), None)
    assert first[CHANGED].all()  # nothing published before: every account is new

    # the first write-back is published (a DuckDB file like published/analytics.duckdb)
    published = tmp_path / "analytics.duckdb"
    con = duckdb.connect(str(published))
    con.register("first", first)
    con.execute("create table crm_writeback as select * from first")
    con.close()

    warehouse = duckdb.connect()
    previous = previously_published(warehouse, published)
    second = _writeback(_held(c2=("Power Generation", "Utilities", "Trusted Channel")), previous)
    assert second.loc[second[CHANGED], "account_id"].tolist() == ["A3"]

    # unchanged assignments: nothing flagged; a rerun gives the same rows
    again = _writeback(_held(), previously_published(warehouse, published))
    assert not again[CHANGED].any()
    pd.testing.assert_frame_equal(again, _writeback(_held(), previous.copy()))
    assert previously_published(warehouse, tmp_path / "missing.duckdb") is None


def test_import_files_hold_crm_fields_only(tmp_path):
    rows = _writeback(_held(c3=("Industry", "Oil & Gas", None)),
                      _writeback(_held(), None))
    counts = write_writeback_files(rows, tmp_path)
    assert counts == {ALL_ROWS_FILE: 4, CHANGED_ROWS_FILE: 1}
    with open(tmp_path / CHANGED_ROWS_FILE, newline="", encoding="utf-8") as f:
        changed = list(csv.DictReader(f))
    assert list(changed[0]) == FILE_COLUMNS
    assert changed == [{"account_id": "B1", "segment": "Industry", "sub_segment": "Oil & Gas",
                        "value_profile": "", CHANGED: "True"}]
