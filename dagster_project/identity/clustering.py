"""Transitive clusters from pairwise links, guarded against chaining.

Plain connected components let one bad link join two unrelated companies, and through them
everything either is linked to. The guard is a constrained union-find:

1. Links are applied strongest first: steward-confirmed matches, equal VAT id, a model-confirmed
   ERP link, equal web domain, then model links by falling probability, and last the links of
   a merger's predecessor records to their survivor (identity/predecessors.py).
2. A link that would join two clusters is refused when the joined cluster would
   - hold a pair a steward declared a non-match (always), or
   - hold two different valid VAT ids (a VAT id identifies one legal entity; a company keeps
     its own VAT id across CRM and ERP, so two ids mean two companies), or
   - exceed `max_cluster_size` records (no real company has that many duplicates; a huge
     cluster is the signature of chaining).
   Steward-confirmed matches are exempt from the last two rules (a steward may merge an
   absorbed company whose old VAT id differs), but never from a steward non-match. Predecessor
   links are exempt from the VAT rule when configured (`vat_ids_change_on_mergers`): the
   absorbed company's VAT id is its own, so two ids are expected there.
3. Refused model links are returned so that they can be queued for stewards.

Because strong evidence is applied first, a weak link cannot pull a record out of the cluster
its strong evidence put it in; it can only be refused.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

# Strength order of the evidence (lower = applied first).
METHOD_RANK = {
    "steward": 0,
    "vat": 1,
    "erp_link": 2,
    "domain": 3,
    "probabilistic": 4,
    "predecessor": 5,
}


class _GuardedUnionFind:
    def __init__(self, vats: list[str | None], max_size: int, refuse_distinct_vats: bool):
        n = len(vats)
        self.parent = list(range(n))
        self.size = [1] * n
        self.vats: list[set[str]] = [{v} if v else set() for v in vats]
        self.forbidden: list[set[int]] = [set() for _ in range(n)]
        self.max_size = max_size
        self.refuse_distinct_vats = refuse_distinct_vats

    def find(self, x: int) -> int:
        root = x
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[x] != root:
            self.parent[x], x = root, self.parent[x]
        return root

    def forbid(self, a: int, b: int) -> None:
        self.forbidden[a].add(b)
        self.forbidden[b].add(a)

    def _forbidden_between(self, ra: int, rb: int) -> bool:
        small, other = (ra, rb) if len(self.forbidden[ra]) <= len(self.forbidden[rb]) else (rb, ra)
        return any(self.find(x) == other for x in self.forbidden[small])

    def union(self, a: int, b: int, exempt_vat: bool, exempt_size: bool) -> str | None:
        """Join the clusters of a and b; returns None, or why the link was refused."""
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return None
        if self._forbidden_between(ra, rb):
            return "steward_non_match"
        if (
            not exempt_vat
            and self.refuse_distinct_vats
            and self.vats[ra]
            and self.vats[rb]
            and (self.vats[ra] != self.vats[rb])
        ):
            return "distinct_vat_ids"
        if not exempt_size and self.size[ra] + self.size[rb] > self.max_size:
            return "max_cluster_size"
        if self.size[ra] < self.size[rb]:
            ra, rb = rb, ra
        self.parent[rb] = ra
        self.size[ra] += self.size[rb]
        self.vats[ra] |= self.vats[rb]
        self.forbidden[ra] |= self.forbidden[rb]
        return None


def guarded_clusters(
    vats: list[str | None],
    links: pd.DataFrame,
    non_matches: list[tuple[int, int]],
    max_cluster_size: int,
    refuse_distinct_vat_ids: bool,
    vat_exempt_methods: frozenset[str] = frozenset({"steward"}),
) -> tuple[np.ndarray, pd.DataFrame]:
    """Cluster label per record, and every link with `accepted` and `refused_because`.

    links: a, b (record positions), method (METHOD_RANK keys), match_probability.
    non_matches: record position pairs that must never end up in one cluster.
    vat_exempt_methods: methods whose links may join two different VAT ids.
    """
    uf = _GuardedUnionFind(vats, max_cluster_size, refuse_distinct_vat_ids)
    for a, b in non_matches:
        uf.forbid(a, b)
    ordered = links.assign(_rank=links["method"].map(METHOD_RANK)).sort_values(
        ["_rank", "match_probability", "a", "b"], ascending=[True, False, True, True]
    )
    reasons = [
        uf.union(int(a), int(b), exempt_vat=m in vat_exempt_methods, exempt_size=m == "steward")
        for a, b, m in zip(ordered["a"], ordered["b"], ordered["method"], strict=True)
    ]
    decided = ordered.drop(columns="_rank").assign(refused_because=reasons)
    decided["accepted"] = decided["refused_because"].isna()
    roots = np.array([uf.find(i) for i in range(len(vats))])
    _, labels = np.unique(roots, return_inverse=True)
    return labels, decided.sort_index()
