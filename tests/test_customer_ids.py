"""customer_id stability: the promise that overrides, history and write-back rely on."""

from __future__ import annotations

import pandas as pd

from dagster_project.identity.customer_ids import anchor_customer_id, assign_customer_ids

EMPTY = pd.DataFrame(columns=["source_system", "source_id", "customer_id"])


def _records(rows):
    return pd.DataFrame(rows, columns=["source_system", "source_id", "cluster"])


def test_new_cluster_gets_id_of_its_erp_anchor():
    records = _records([("crm", "A1", 0), ("erp", "0000000002", 0), ("erp", "0000000001", 0)])
    ids = assign_customer_ids(records, EMPTY)
    assert set(ids) == {anchor_customer_id("erp", "0000000001")}


def test_cluster_keeps_its_id_when_a_new_record_joins():
    first = _records([("crm", "A1", 0)])
    registry = first.assign(customer_id=assign_customer_ids(first, EMPTY))[
        ["source_system", "source_id", "customer_id"]
    ]
    # Next run: an ERP record (which would be the anchor) joins the cluster.
    second = _records([("crm", "A1", 0), ("erp", "0000000001", 0)])
    ids = assign_customer_ids(second, registry)
    assert set(ids) == {anchor_customer_id("crm", "A1")}


def test_split_cluster_gives_old_id_to_the_larger_part_and_keeps_ids_unique():
    registry = pd.DataFrame(
        [("crm", "A1", "CU-X"), ("crm", "A2", "CU-X"), ("erp", "E1", "CU-X")],
        columns=["source_system", "source_id", "customer_id"],
    )
    records = _records([("crm", "A1", 0), ("erp", "E1", 0), ("crm", "A2", 1)])
    ids = assign_customer_ids(records, registry)
    assert list(ids[:2]) == ["CU-X", "CU-X"]
    assert ids[2] != "CU-X"


def test_ids_do_not_depend_on_row_order():
    records = _records([("crm", "B", 1), ("crm", "A", 0), ("erp", "E", 1)])
    ids = assign_customer_ids(records, EMPTY)
    shuffled = records.iloc[[2, 0, 1]]
    assert assign_customer_ids(shuffled, EMPTY).sort_index().equals(ids.sort_index())
