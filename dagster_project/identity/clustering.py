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


_NO_VAT: frozenset[str] = frozenset()


class _GuardedUnionFind:
    def __init__(self, vats: list[str | None], max_size: int, refuse_distinct_vats: bool):
        n = len(vats)
        self.parent = list(range(n))
        self.size = [1] * n
        # VAT ids and steward non-matches per cluster root. Records without either share one
        # empty set: a new set per record made Python's garbage collector the main cost.
        self.vats: list[frozenset[str]] = [frozenset((v,)) if v else _NO_VAT for v in vats]
        self.forbidden: dict[int, set[int]] = {}
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
        self.forbidden.setdefault(a, set()).add(b)
        self.forbidden.setdefault(b, set()).add(a)

    def _forbidden_between(self, ra: int, rb: int) -> bool:
        fa, fb = self.forbidden.get(ra), self.forbidden.get(rb)
        if not fa or not fb:
            return False
        small, other = (fa, rb) if len(fa) <= len(fb) else (fb, ra)
        return any(self.find(x) == other for x in small)

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
        if self.vats[rb]:
            self.vats[ra] = self.vats[ra] | self.vats[rb]
        if rb in self.forbidden:
            self.forbidden.setdefault(ra, set()).update(self.forbidden.pop(rb))
        return None


class GuardedClustering:
    """Clusters that grow as links are applied, guarded as described above.

    `apply` may be called more than once: links applied in a later call act on the clusters the
    earlier calls made. When every link of a later call ranks below every link of the earlier
    ones (predecessor links after the ordinary evidence), the result is the same as applying
    all links in one call, without deciding the earlier links again.
    """

    def __init__(
        self,
        vats: list[str | None],
        non_matches: list[tuple[int, int]],
        max_cluster_size: int,
        refuse_distinct_vat_ids: bool,
        vat_exempt_methods: frozenset[str] = frozenset({"steward"}),
    ):
        """vats: per record position. non_matches: position pairs that must never end up in one
        cluster. vat_exempt_methods: methods whose links may join two different VAT ids."""
        self._uf = _GuardedUnionFind(vats, max_cluster_size, refuse_distinct_vat_ids)
        for a, b in non_matches:
            self._uf.forbid(a, b)
        self._vat_exempt = vat_exempt_methods

    def apply(self, links: pd.DataFrame) -> pd.DataFrame:
        """Decide links (a, b record positions, method (METHOD_RANK keys), match_probability)
        strongest first; returns them in their own order with `accepted` and `refused_because`."""
        ordered = links.assign(_rank=links["method"].map(METHOD_RANK)).sort_values(
            ["_rank", "match_probability", "a", "b"], ascending=[True, False, True, True]
        )
        union, exempt = self._uf.union, self._vat_exempt
        reasons = [
            union(int(a), int(b), exempt_vat=m in exempt, exempt_size=m == "steward")
            for a, b, m in zip(ordered["a"], ordered["b"], ordered["method"], strict=True)
        ]
        decided = ordered.drop(columns="_rank").assign(refused_because=reasons)
        decided["accepted"] = decided["refused_because"].isna()
        return decided.sort_index()

    def labels(self) -> np.ndarray:
        """Cluster label per record position (0..clusters-1)."""
        roots = np.array([self._uf.find(i) for i in range(len(self._uf.parent))])
        _, labels = np.unique(roots, return_inverse=True)
        return labels


def guarded_clusters(
    vats: list[str | None],
    links: pd.DataFrame,
    non_matches: list[tuple[int, int]],
    max_cluster_size: int,
    refuse_distinct_vat_ids: bool,
    vat_exempt_methods: frozenset[str] = frozenset({"steward"}),
) -> tuple[np.ndarray, pd.DataFrame]:
    """Cluster label per record, and every link with `accepted` and `refused_because`
    (GuardedClustering with all links applied at once)."""
    clustering = GuardedClustering(
        vats, non_matches, max_cluster_size, refuse_distinct_vat_ids, vat_exempt_methods
    )
    decided = clustering.apply(links)
    return clustering.labels(), decided
