"""Identity resolution end to end: every CRM account and ERP customer -> one stable customer_id.

Order of evidence (identity/clustering.py applies it strongest first, guarded against chaining):
steward-confirmed matches (seeds), equal valid VAT id, then pairs the Fellegi-Sunter model
(identity/probabilistic.py) confirms: `erp_link` when the CRM's ERP link names the pair, `domain`
when both share a web domain, `probabilistic` otherwise. The ERP link and the domain are not
trusted alone (stale links; unrelated companies share short domains): they make sure the pair is
scored, and the model decides. Last, the records a merger left behind join their survivor
(`predecessor`, identity/predecessors.py: same address and a shared web domain or CRM parent
link). Pairs in the configured uncertainty band, and model links the guard refused, are not
merged: they go to the steward queue as `uncertain_match`.

Writes identity.customer_source_map (one row per record, with match method, probability and
evidence), identity.candidate_links (every link and what was decided) and
steward.findings__identity.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from dagster_project.identity.clustering import METHOD_RANK, GuardedClustering
from dagster_project.identity.customer_ids import (
    REGISTRY_DDL,
    anchor_records,
    assign_customer_ids,
)
from dagster_project.identity.predecessors import (
    predecessor_candidates,
    predecessor_links_between,
)
from dagster_project.identity.probabilistic import score_candidate_pairs
from dagster_project.identity.records import load_source_records, records_frame
from dagster_project.identity.settings import IdentitySettings, identity_settings
from dagster_project.identity.steward_decisions import load_steward_decisions
from dagster_project.steward.queue import create_findings_table

MAP_COLUMNS = [
    "source_system",
    "source_id",
    "customer_id",
    "match_method",
    "match_probability",
    "match_evidence",
    "is_anchor",
]


@dataclass
class ResolutionResult:
    source_map: pd.DataFrame
    links: pd.DataFrame
    uncertain: pd.DataFrame
    scored: pd.DataFrame = field(default_factory=pd.DataFrame)
    timings: dict[str, float] = field(default_factory=dict)


def _key_links(records: pd.DataFrame, column: str, method: str) -> pd.DataFrame:
    """Star links from each record to the first record sharing its key (VAT id)."""
    keyed = records[records[column].notna()]
    first = keyed.groupby(column)["pos"].transform("min")
    links = pd.DataFrame({"a": first.to_numpy(), "b": keyed["pos"].to_numpy()})
    links = links[links["a"] != links["b"]]
    return links.assign(method=method, match_probability=1.0)


def _pair_positions(pairs: pd.DataFrame, pos_of: pd.Series) -> pd.DataFrame:
    """uid_l/uid_r -> a/b positions; pairs naming unknown records are dropped."""
    a = pairs["uid_l"].map(pos_of)
    b = pairs["uid_r"].map(pos_of)
    known = a.notna() & b.notna()
    return pairs[known].assign(a=a[known].astype(int), b=b[known].astype(int))


def _score_pairs(
    records: pd.DataFrame | pa.Table, settings: IdentitySettings
) -> tuple[pd.DataFrame, float]:
    """The model's scored pairs (score_candidate_pairs), and the seconds it took."""
    start = time.perf_counter()
    scored, _summary = score_candidate_pairs(
        records, settings.model, settings.decision.review_threshold
    )
    return scored, time.perf_counter() - start


def resolve_identities(
    records: pd.DataFrame | pa.Table,
    settings: IdentitySettings,
    matches: pd.DataFrame,
    non_matches: pd.DataFrame,
) -> ResolutionResult:
    """Pure resolution on normalised records (identity/records.py, as a frame or as the Arrow
    table load_source_records gives): clusters, methods, queue."""
    timings: dict[str, float] = {}
    # The model runs on DuckDB's threads, mostly without the GIL, and leaves most of a core idle
    # (its u sampling is one thread): this thread meanwhile makes the frame and prepares all
    # evidence that does not depend on the scores. Nothing here changes what the model reads.
    with ThreadPoolExecutor(max_workers=1) as model_thread:
        model = model_thread.submit(_score_pairs, records, settings)
        if isinstance(records, pa.Table):
            records = records_frame(records)
        records = records.reset_index(drop=True).assign(pos=lambda d: np.arange(len(d)))
        pos_of = pd.Series(records["pos"].to_numpy(), index=records["uid"])
        steward_links = _pair_positions(matches, pos_of)[["a", "b"]].assign(
            method="steward", match_probability=1.0
        )
        forbidden = _pair_positions(non_matches, pos_of)
        forbidden_pairs = list(zip(forbidden["a"], forbidden["b"], strict=True))
        vat_links = _key_links(records, "vat", "vat")
        vat_exempt = {"steward"}
        if settings.predecessors.vat_ids_change_on_mergers:
            vat_exempt.add("predecessor")
        clustering = GuardedClustering(
            records["vat"].tolist(),
            forbidden_pairs,
            settings.clustering.max_cluster_size,
            settings.clustering.refuse_distinct_vat_ids,
            frozenset(vat_exempt),
        )
        predecessor_pairs = predecessor_candidates(records, settings.predecessors)
        scored, timings["model_seconds"] = model.result()
    scored = _pair_positions(scored, pos_of)

    decided = settings.decision
    confident = scored[scored["match_probability"] >= decided.merge_threshold]
    # The model confirms a pair; the method names the evidence it rests on. A shared web domain
    # is not enough on its own: unrelated companies of one name share short or truncated
    # domains, so the domain only finds candidate pairs (blocking) and labels confirmed ones.
    domain = records["domain"].to_numpy()
    same_domain = pd.notna(domain[confident["a"].to_numpy()]) & (
        domain[confident["a"].to_numpy()] == domain[confident["b"].to_numpy()]
    )
    model_links = confident.assign(
        method=np.select(
            [confident["erp_link_agrees"].to_numpy(dtype=bool), same_domain],
            ["erp_link", "domain"],
            "probabilistic",
        )
    )[["a", "b", "method", "match_probability"]]
    evidence = [steward_links, vat_links, model_links]
    links = pd.concat([e for e in evidence if len(e)] or evidence[:1], ignore_index=True)
    # A steward non-match removes the direct link too, not only the transitive one.
    banned = {frozenset(p) for p in forbidden_pairs}
    if banned:
        direct = [frozenset((a, b)) in banned for a, b in zip(links["a"], links["b"], strict=True)]
        links = links[~np.array(direct, dtype=bool)]

    t0 = time.perf_counter()
    # The ordinary evidence first; a merger's leftovers join whole clusters it made. Predecessor
    # links rank last, so applying them to these clusters equals deciding all links at once.
    links = clustering.apply(links)
    own_clusters = clustering.labels()
    successors = predecessor_links_between(predecessor_pairs, own_clusters)
    if banned and not successors.empty:
        direct = [
            frozenset((a, b)) in banned
            for a, b in zip(successors["a"], successors["b"], strict=True)
        ]
        successors = successors[~np.array(direct, dtype=bool)]
    if successors.empty:
        clusters = own_clusters
    else:
        links = pd.concat([links, clustering.apply(successors)], ignore_index=True)
        clusters = clustering.labels()
    timings["cluster_seconds"] = time.perf_counter() - t0
    records["cluster"] = clusters

    # Per record: the strongest accepted evidence that touches it.
    accepted = links[links["accepted"]]
    touched = pd.concat(
        [
            accepted[["a", "b", "method", "match_probability"]].rename(
                columns={"a": "pos", "b": "other"}
            ),
            accepted[["b", "a", "method", "match_probability"]].rename(
                columns={"b": "pos", "a": "other"}
            ),
        ],
        ignore_index=True,
    )
    touched["rank"] = touched["method"].map(METHOD_RANK)
    best = (
        touched.sort_values(["rank", "match_probability", "other"], ascending=[True, False, True])
        .drop_duplicates("pos")
        .set_index("pos")
    )
    records["match_method"] = records["pos"].map(best["method"]).fillna("singleton")
    records["match_probability"] = records["pos"].map(best["match_probability"]).fillna(1.0)
    other_uid = records["pos"].map(best["other"]).map(records["uid"])
    records["match_evidence"] = np.where(
        other_uid.notna(),
        records["match_method"] + " with " + other_uid.fillna(""),
        "no link found",
    )
    _label_predecessors(records, own_clusters, links)

    # Uncertain: in the review band, or confident but refused by the guard; and still apart.
    refused = links[~links["accepted"] & (links["method"] != "steward")]
    band = scored[scored["match_probability"] < decided.merge_threshold]
    uncertain = pd.concat(
        [
            band[["a", "b", "match_probability"]].assign(reason="probability_in_review_band"),
            refused[["a", "b", "match_probability"]].assign(
                reason="refused_" + refused["refused_because"]
            ),
        ],
        ignore_index=True,
    )
    apart = clusters[uncertain["a"].to_numpy()] != clusters[uncertain["b"].to_numpy()]
    uncertain = uncertain[apart]
    if banned:
        keep = [
            frozenset((a, b)) not in banned
            for a, b in zip(uncertain["a"], uncertain["b"], strict=True)
        ]
        uncertain = uncertain[np.array(keep, dtype=bool)]
    uncertain = uncertain.sort_values("match_probability", ascending=False).drop_duplicates(
        ["a", "b"]
    )
    for side in ("a", "b"):
        for col in ("uid", "name", "source_system", "source_id"):
            uncertain[f"{col}_{side}"] = uncertain[side].map(records[col]).to_numpy()
    return ResolutionResult(records, links, uncertain.reset_index(drop=True), scored, timings)


def _label_predecessors(records: pd.DataFrame, own_clusters: np.ndarray, links: pd.DataFrame):
    """Records that joined their customer through a predecessor link say so: in a customer made
    of several clusters of the ordinary evidence, the survivor is the cluster with the most live
    records (then the larger, then the first); the others are the absorbed companies'."""
    joins = links[links["accepted"] & (links["method"] == "predecessor")]
    if joins.empty:
        return
    parts = pd.DataFrame(
        {
            "pos": records["pos"].to_numpy(),
            "own": own_clusters,
            "cluster": records["cluster"].to_numpy(),
            "live": ~records["is_deleted"].to_numpy(dtype=bool),
        }
    )
    per_part = parts.groupby(["cluster", "own"]).agg(
        live=("live", "sum"), size=("pos", "size"), first=("pos", "min")
    )
    per_part = per_part.reset_index().sort_values(
        ["cluster", "live", "size", "first"], ascending=[True, False, False, True]
    )
    survivor = per_part.drop_duplicates("cluster").set_index("cluster")
    absorbed = parts["own"].to_numpy() != parts["cluster"].map(survivor["own"]).to_numpy()
    if not absorbed.any():
        return
    evidence_of = {}
    for a, b, text in zip(joins["a"], joins["b"], joins["evidence"], strict=True):
        for pos in (a, b):
            evidence_of.setdefault(own_clusters[pos], text)
    survivor_uid = parts["cluster"].map(survivor["first"]).map(records["uid"])
    idx = records.index[absorbed]
    records.loc[idx, "match_method"] = "predecessor"
    records.loc[idx, "match_probability"] = 1.0
    records.loc[idx, "match_evidence"] = [
        f"predecessor of {survivor_uid[i]}: {evidence_of.get(own_clusters[i], 'merger')}"
        for i in idx
    ]


UNCERTAIN_FINDINGS_SQL = """
select 'uncertain_match' as kind, 'warn' as severity,
       u.source_system_a || '+' || u.source_system_b as source_system,
       'customers' as entity, null as source_file, null as line,
       u.uid_a || ' ~ ' || u.uid_b as record_key, 'name' as column_name,
       u.reason as rule,
       coalesce(u.name_a, '?') || ' ~ ' || coalesce(u.name_b, '?') as observed_value,
       2 as customers_affected,
       coalesce(ra.revenue_eur, 0) + coalesce(rb.revenue_eur, 0) as revenue_eur_affected,
       'Possible same company (p=' || round(u.match_probability, 3) || '), not merged: confirm in '
       || 'seeds/identity_confirmed_matches.csv or seeds/identity_confirmed_non_matches.csv'
           as message
from uncertain_pairs u
left join queued_revenue ra on ra.uid = u.uid_a
left join queued_revenue rb on rb.uid = u.uid_b
"""


def _queued_revenue(cursor: duckdb.DuckDBPyConnection, uncertain: pd.DataFrame) -> pa.Table:
    """uid, revenue_eur of the ERP customers in the steward queue (an Arrow table keeps the
    DECIMAL sums exact). Closes `cursor`, which is this thread's own connection."""
    try:
        queued = pd.concat(
            [
                uncertain.loc[uncertain[f"source_system_{s}"] == "erp", f"source_id_{s}"]
                for s in ("a", "b")
            ]
        ).unique()
        exists = cursor.execute(
            "select count(*) from information_schema.tables where table_schema = 'intermediate' "
            "and table_name = 'int_order_lines_converted_to_eur'"
        ).fetchall()[0][0]
        if not exists or not len(queued):
            return cursor.sql(
                "select cast(null as varchar) as uid, cast(null as double) as revenue_eur "
                "where false"
            ).to_arrow_table()
        # The customers as a list value, not a table to semi-join: DuckDB pushes a filter on a
        # constant list into the view, down to the orders, instead of joining every order line
        # first (a third of the CPU).
        return cursor.sql(
            "select 'erp:' || customer_number as uid, sum(revenue_eur) as revenue_eur "
            "from intermediate.int_order_lines_converted_to_eur "
            "where list_contains(?, customer_number) "
            "group by all",
            params=[queued.tolist()],
        ).to_arrow_table()
    finally:
        cursor.close()


def link_records(
    con: duckdb.DuckDBPyConnection,
    run_id: str,
    settings: IdentitySettings | None = None,
    decisions: tuple[pd.DataFrame, pd.DataFrame] | None = None,
) -> ResolutionResult:
    """Resolve identities from the staged records; write the map, links and findings.

    decisions: (confirmed matches, confirmed non-matches) as read by steward_decisions; by
    default the seeds.
    """
    settings = settings or identity_settings()
    con.execute("create schema if not exists identity")
    con.execute(REGISTRY_DDL)
    records = load_source_records(con, settings)
    matches, non_matches = decisions if decisions is not None else load_steward_decisions()
    result = resolve_identities(records, settings, matches, non_matches)
    # The revenue the queued pairs touch is summed over every order line (a second at 100,000
    # companies): DuckDB does that on its own connection while Python assigns the customer ids
    # and writes the map, so the second core is not idle.
    with ThreadPoolExecutor(max_workers=1) as background:
        revenue = background.submit(_queued_revenue, con.cursor(), result.uncertain)
        _write_map_and_links(con, run_id, result)
        con.register("uncertain_pairs", result.uncertain)
        con.register("queued_revenue", revenue.result())
        create_findings_table(con, "identity", UNCERTAIN_FINDINGS_SQL)
        con.unregister("uncertain_pairs")
        con.unregister("queued_revenue")
    return result


def _write_map_and_links(
    con: duckdb.DuckDBPyConnection, run_id: str, result: ResolutionResult
) -> None:
    """Customer ids for the clusters; identity.customer_source_map, the id registry and
    identity.candidate_links. Sets result.source_map to the map as written."""
    records = result.source_map

    registry = con.execute(
        "select source_system, source_id, customer_id from identity.customer_id_registry"
    ).df()
    anchors = anchor_records(records)
    records["customer_id"] = assign_customer_ids(records, registry, anchors)
    records["is_anchor"] = records.index.isin(anchors["record"])
    source_map = records[MAP_COLUMNS]

    con.register("linked_records", source_map)
    con.execute(
        "create or replace table identity.customer_source_map as select * from linked_records"
    )
    con.unregister("linked_records")
    # From the table just written rather than the frame again (DuckDB reads Python strings
    # under the GIL, one thread).
    con.execute(
        """insert into identity.customer_id_registry
           select source_system, source_id, customer_id, ? from identity.customer_source_map
           on conflict (source_system, source_id) do update set customer_id = excluded.customer_id""",
        [run_id],
    )

    links = result.links.assign(
        uid_a=lambda d: d["a"].map(records["uid"]),
        uid_b=lambda d: d["b"].map(records["uid"]),
        # only rule links (predecessor) explain themselves beyond their method
        evidence=lambda d: d.get("evidence"),
    )[["uid_a", "uid_b", "method", "match_probability", "accepted", "refused_because", "evidence"]]
    links["evidence"] = links["evidence"].astype(object).where(links["evidence"].notna(), None)
    con.register("decided_links", links)
    con.execute("create or replace table identity.candidate_links as select * from decided_links")
    con.unregister("decided_links")

    result.source_map = source_map
