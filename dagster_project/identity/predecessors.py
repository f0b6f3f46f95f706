"""Records a merger left behind: the absorbed company's CRM account and ERP customer live on
under its old name and its own (old) VAT id, so neither the name model nor the VAT id can join
them to the company that absorbed it. What ties them to the survivor is where it is and who
points at it: the same address (street, and postal code or city), and either the survivor's web
domain on the old account (the old site redirects) or a CRM parent link between the two.
"The same address" is strict: street and postal code (or city, where a postal code is missing).

Both together, never one alone: one address holds unrelated tenants, one domain holds a whole
group, and a parent link is how CRM models groups too. Only whole clusters are linked (the
clusters the ordinary evidence made), once per pair of clusters; config/identity.yml
(`predecessors`) switches the rule and chooses which pointing evidence counts.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from dagster_project.identity.settings import PredecessorSettings

ADDRESS_KEY = ["country_code", "street_norm"]


def _cluster_pairs(frame: pd.DataFrame, key: list[str]) -> pd.DataFrame:
    """Record pairs (cluster_a, cluster_b, pos_a, pos_b) with equal `key` from two clusters
    (cluster_a < cluster_b)."""
    keyed = frame.dropna(subset=key)
    # The self-join on one integer per key value instead of the text columns: half the time.
    keyed = pd.DataFrame(
        {
            "key": keyed.groupby(key, sort=False).ngroup().to_numpy(),
            "cluster": keyed["cluster"].to_numpy(),
            "pos": keyed["pos"].to_numpy(),
        }
    )
    pairs = keyed.merge(keyed, on="key", suffixes=("_a", "_b"))
    pairs = pairs[pairs["cluster_a"] < pairs["cluster_b"]]
    return pairs[["cluster_a", "cluster_b", "pos_a", "pos_b"]]


def _same_address(records: pd.DataFrame) -> pd.DataFrame:
    """Cluster pairs with a record each at one address: the same street and postal code, or
    the same street and city where a postal code is missing (a different postal code on the
    same street name is another address)."""
    pairs = _cluster_pairs(records, ADDRESS_KEY)
    postal = records["postal_code_norm"].to_numpy()
    city = records["city_norm"].to_numpy()
    a, b = pairs["pos_a"].to_numpy(), pairs["pos_b"].to_numpy()
    same_postal = pd.notna(postal[a]) & (postal[a] == postal[b])
    postal_unknown = pd.isna(postal[a]) | pd.isna(postal[b])
    same_city = pd.notna(city[a]) & (city[a] == city[b])
    pairs = pairs[same_postal | (postal_unknown & same_city)]
    return pairs.sort_values(["cluster_a", "cluster_b", "pos_a", "pos_b"]).drop_duplicates(
        ["cluster_a", "cluster_b"]
    )


def _shared_domain(records: pd.DataFrame) -> set[tuple[int, int]]:
    pairs = _cluster_pairs(records, ["domain"])
    return set(zip(pairs["cluster_a"], pairs["cluster_b"], strict=True))


def _parent_links(records: pd.DataFrame) -> set[tuple[int, int]]:
    """Cluster pairs where a CRM account of one names a CRM account of the other as parent."""
    crm_cluster = pd.Series(
        records["cluster"].to_numpy(),
        index=records["source_system"] + ":" + records["source_id"],
    )
    children = records.dropna(subset=["parent_account_id"])
    parent_cluster = ("crm:" + children["parent_account_id"]).map(crm_cluster)
    found = parent_cluster.notna()
    child, parent = children["cluster"][found].to_numpy(), parent_cluster[found].astype(int)
    return {(min(c, p), max(c, p)) for c, p in zip(child, parent.to_numpy(), strict=True) if c != p}


def predecessor_links(
    records: pd.DataFrame, clusters: np.ndarray, settings: PredecessorSettings
) -> pd.DataFrame:
    """Links (a, b record positions, method 'predecessor', match_probability 1.0, evidence)
    between clusters that share an address and a pointing evidence named in `settings`."""
    empty = pd.DataFrame(columns=["a", "b", "method", "match_probability", "evidence"])
    if not settings.enabled or records.empty:
        return empty
    # Only the columns the rules read: copying every column of every record cost more than the
    # rules themselves.
    frame = records[
        ["pos", "source_system", "source_id", "parent_account_id", "domain"]
        + [*ADDRESS_KEY, "postal_code_norm", "city_norm"]
    ].assign(cluster=clusters)
    address = _same_address(frame)
    if address.empty:
        return empty
    evidence: dict[str, set[tuple[int, int]]] = {}
    if "web_domain" in settings.evidence:
        evidence["shared web domain"] = _shared_domain(frame)
    if "crm_parent_account" in settings.evidence:
        evidence["CRM parent link"] = _parent_links(frame)
    keys = list(zip(address["cluster_a"], address["cluster_b"], strict=True))
    reasons = [", ".join(name for name, pairs in evidence.items() if key in pairs) for key in keys]
    address = address.assign(evidence=reasons)
    address = address[address["evidence"] != ""]
    return pd.DataFrame(
        {
            "a": address["pos_a"].to_numpy(dtype=int),
            "b": address["pos_b"].to_numpy(dtype=int),
            "method": "predecessor",
            "match_probability": 1.0,
            "evidence": ("same address, " + address["evidence"]).to_numpy(),
        }
    )
