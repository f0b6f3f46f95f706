"""First identity slice: link records only where a deterministic key says so.

Evidence (strongest first): the CRM account's `erp_customer_number` pointing at an existing ERP
customer (`erp_link`), and an equal normalised VAT id (`vat`). Records linked by either, directly
or through each other, form one cluster (connected components). Everything else is a cluster of
its own (`singleton`). Probabilistic matching (issue 3) adds edges to the same graph later.
"""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from dagster_project.identity.customer_ids import REGISTRY_DDL, assign_customer_ids

# Minimum length of a normalised VAT id (country prefix + digits) to count as evidence.
MIN_VAT_LENGTH = 8

SOURCE_RECORDS_SQL = """
select 'crm' as source_system, account_id as source_id, vat_id as vat,
       erp_customer_number as erp_link
from staging.stg_crm__accounts
union all
select 'erp', customer_number, vat_id, null
from staging.stg_erp__customers
"""

# Edges as pairs of record positions; method says which evidence made the link.
EDGES_SQL = f"""
with records as (select row_number() over () - 1 as pos, * from source_records),
erp_link as (
    select c.pos as a, e.pos as b, 'erp_link' as method
    from records c join records e
      on c.source_system = 'crm' and e.source_system = 'erp' and c.erp_link = e.source_id
),
vat as (
    select pos as a, min(pos) over (partition by vat) as b, 'vat' as method
    from records where length(vat) >= {MIN_VAT_LENGTH}
)
select * from erp_link union all select * from vat where a <> b
"""


def link_records(con: duckdb.DuckDBPyConnection, run_id: str) -> pd.DataFrame:
    """Compute clusters and stable ids; write identity.customer_source_map; return it."""
    con.execute("create schema if not exists identity")
    con.execute(REGISTRY_DDL)
    con.execute(f"create or replace temp table source_records as {SOURCE_RECORDS_SQL}")
    # Keep the order stable: positions are row numbers of this ordered table.
    con.execute(
        "create or replace temp table source_records as "
        "select * from source_records order by source_system, source_id"
    )
    records = con.execute("select source_system, source_id from source_records").df()
    edges = con.execute(EDGES_SQL).df()

    n = len(records)
    graph = coo_matrix(
        (np.ones(len(edges), dtype=np.int8), (edges["a"].to_numpy(), edges["b"].to_numpy())),
        shape=(n, n),
    )
    _, labels = connected_components(graph, directed=False)
    records["cluster"] = labels

    # Per record: the strongest evidence that tied it to its cluster.
    method_rank = {"erp_link": 0, "vat": 1}
    touched = pd.concat(
        [
            edges[["a", "method"]].rename(columns={"a": "pos"}),
            edges[["b", "method"]].rename(columns={"b": "pos"}),
        ]
    )
    touched["rank"] = touched["method"].map(method_rank)
    best = touched.sort_values("rank").drop_duplicates("pos").set_index("pos")["method"]
    records["match_method"] = pd.Series(records.index.map(best), index=records.index).fillna(
        "singleton"
    )
    records["match_probability"] = 1.0  # deterministic evidence (singletons: certain of themselves)

    registry = con.execute(
        "select source_system, source_id, customer_id from identity.customer_id_registry"
    ).df()
    records["customer_id"] = assign_customer_ids(records, registry)
    anchors = (
        records.assign(system_rank=(records["source_system"] != "erp").astype(int))
        .sort_values(["cluster", "system_rank", "source_id"])
        .drop_duplicates("cluster")
    )
    records["is_anchor"] = records.index.isin(anchors.index)

    result = records[
        [
            "source_system",
            "source_id",
            "customer_id",
            "match_method",
            "match_probability",
            "is_anchor",
        ]
    ]
    con.register("linked_records", result)
    con.execute(
        "create or replace table identity.customer_source_map as select * from linked_records"
    )
    con.execute(
        """insert into identity.customer_id_registry
           select source_system, source_id, customer_id, ? from linked_records
           on conflict (source_system, source_id) do update set customer_id = excluded.customer_id""",
        [run_id],
    )
    con.unregister("linked_records")
    return result
