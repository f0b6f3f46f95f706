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

from dataclasses import dataclass

import numpy as np
import pandas as pd

from dagster_project.identity.settings import PredecessorSettings

ADDRESS_KEY = ["country_code", "street_norm"]
# Rule columns: the address, and the pointing evidence (web domain, CRM parent link).
RULE_COLUMNS = [
    "pos",
    "source_system",
    "source_id",
    "parent_account_id",
    "domain",
    *ADDRESS_KEY,
    "postal_code_norm",
    "city_norm",
]


@dataclass(frozen=True)
class PredecessorCandidates:
    """Record pairs (positions a < b) the rule may link, found before any clustering: which
    records share an address or point at each other does not depend on the clusters, so this
    (the costly part, self-joins over every record) runs while the model trains.

    address: pairs at one address. pointing: per kind of evidence (its wording in the link's
    evidence), the pairs that carry it."""

    address: tuple[np.ndarray, np.ndarray]
    pointing: dict[str, tuple[np.ndarray, np.ndarray]]


def _record_pairs(frame: pd.DataFrame, key: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Positions (a, b), a < b, of the record pairs with equal `key` (missing never equal)."""
    keyed = frame.dropna(subset=key)
    # The self-join on one integer per key value instead of the text columns: half the time.
    keyed = pd.DataFrame(
        {
            "key": keyed.groupby(key, sort=False).ngroup().to_numpy(),
            "pos": keyed["pos"].to_numpy(),
        }
    )
    pairs = keyed.merge(keyed, on="key", suffixes=("_a", "_b"))
    a, b = pairs["pos_a"].to_numpy(dtype=np.int64), pairs["pos_b"].to_numpy(dtype=np.int64)
    return a[a < b], b[a < b]


def _same_address(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Record pairs at one address: the same street and postal code, or the same street and
    city where a postal code is missing (a different postal code on the same street name is
    another address)."""
    a, b = _record_pairs(frame, ADDRESS_KEY)
    postal = frame["postal_code_norm"].to_numpy()
    city = frame["city_norm"].to_numpy()
    same_postal = pd.notna(postal[a]) & (postal[a] == postal[b])
    postal_unknown = pd.isna(postal[a]) | pd.isna(postal[b])
    same_city = pd.notna(city[a]) & (city[a] == city[b])
    keep = same_postal | (postal_unknown & same_city)
    return a[keep], b[keep]


def _parent_links(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Record pairs where a CRM account names the other (a CRM account) as its parent."""
    crm_pos = pd.Series(
        frame["pos"].to_numpy(), index=frame["source_system"] + ":" + frame["source_id"]
    )
    children = frame.dropna(subset=["parent_account_id"])
    parent = ("crm:" + children["parent_account_id"]).map(crm_pos)
    found = parent.notna().to_numpy()
    child = children["pos"].to_numpy(dtype=np.int64)[found]
    parent = parent.to_numpy()[found].astype(np.int64)
    return np.minimum(child, parent), np.maximum(child, parent)


def predecessor_candidates(
    records: pd.DataFrame, settings: PredecessorSettings
) -> PredecessorCandidates | None:
    """The record pairs `predecessor_links_between` decides on; None when the rule is off."""
    if not settings.enabled or records.empty:
        return None
    # Only the columns the rules read: copying every column of every record cost more than the
    # rules themselves.
    frame = records[RULE_COLUMNS]
    pointing = {}
    if "web_domain" in settings.evidence:
        pointing["shared web domain"] = _record_pairs(frame, ["domain"])
    if "crm_parent_account" in settings.evidence:
        pointing["CRM parent link"] = _parent_links(frame)
    return PredecessorCandidates(_same_address(frame), pointing)


def _cluster_pairs(
    pairs: tuple[np.ndarray, np.ndarray], clusters: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(cluster_a, cluster_b, pos_a, pos_b) of the record pairs from two clusters, each turned
    so that cluster_a < cluster_b."""
    a, b = pairs
    ca, cb = clusters[a], clusters[b]
    turn = ca > cb
    apart = ca != cb
    return (
        np.where(turn, cb, ca)[apart],
        np.where(turn, ca, cb)[apart],
        np.where(turn, b, a)[apart],
        np.where(turn, a, b)[apart],
    )


def predecessor_links_between(
    candidates: PredecessorCandidates | None, clusters: np.ndarray
) -> pd.DataFrame:
    """Links (a, b record positions, method 'predecessor', match_probability 1.0, evidence)
    between clusters that share an address and a pointing evidence: one link per pair of
    clusters, between its first pair of records at that address."""
    empty = pd.DataFrame(columns=["a", "b", "method", "match_probability", "evidence"])
    if candidates is None:
        return empty
    cluster_a, cluster_b, pos_a, pos_b = _cluster_pairs(candidates.address, clusters)
    address = pd.DataFrame(
        {"cluster_a": cluster_a, "cluster_b": cluster_b, "pos_a": pos_a, "pos_b": pos_b}
    )
    address = address.sort_values(["cluster_a", "cluster_b", "pos_a", "pos_b"]).drop_duplicates(
        ["cluster_a", "cluster_b"]
    )
    if address.empty:
        return empty
    evidence = {}
    for name, pairs in candidates.pointing.items():
        pointing_a, pointing_b, _, _ = _cluster_pairs(pairs, clusters)
        evidence[name] = set(zip(pointing_a.tolist(), pointing_b.tolist(), strict=True))
    keys = zip(address["cluster_a"].tolist(), address["cluster_b"].tolist(), strict=True)
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


def predecessor_links(
    records: pd.DataFrame, clusters: np.ndarray, settings: PredecessorSettings
) -> pd.DataFrame:
    """predecessor_links_between on the candidates of `records` (both steps at once)."""
    return predecessor_links_between(predecessor_candidates(records, settings), clusters)
