"""A data-driven check on the service-tier rules (DESIGN.md "Segments", 5): cluster customers on
their standardised behavioural features (scikit-learn, fixed random state) and cross-tabulate
the clusters against the rule-based tiers, with a note per cluster on where they disagree.

Features, k, the method and the agreement threshold are config (segmentation.yml `clustering`).
Clusters are named C1..Ck by size (largest first), so names are stable for stable data.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from dagster_project.segmentation.settings import ClusteringSettings

CROSSTAB_TABLE = "segments.segment_cluster_crosstab"
# KMeans restarts: more than one so the fixed random state does not pick a poor local optimum.
_KMEANS_RESTARTS = 10
_NOTE_FEATURES = 3  # features named per cluster note, strongest first


@dataclass(frozen=True)
class Clustering:
    labels: pd.DataFrame  # customer_id, cluster
    centres_sd: pd.DataFrame  # cluster x feature, in standard deviations from the mean


def cluster_customers(features: pd.DataFrame, settings: ClusteringSettings) -> Clustering:
    """Cluster the customers with at least `min_orders` orders (too little behaviour else)."""
    from sklearn.cluster import KMeans
    from sklearn.mixture import GaussianMixture
    from sklearn.preprocessing import StandardScaler

    eligible = features[pd.to_numeric(features["order_count"], errors="coerce").fillna(0)
                        >= settings.min_orders]
    eligible = eligible.sort_values("customer_id", kind="stable").reset_index(drop=True)
    empty = Clustering(pd.DataFrame(columns=["customer_id", "cluster"]),
                       pd.DataFrame(columns=settings.features))
    if len(eligible) < settings.k:
        return empty
    values = eligible[settings.features].apply(pd.to_numeric, errors="coerce").astype(float)
    # a missing feature (e.g. ordering regularity with fewer than two gaps) counts as typical
    values = values.fillna(values.median()).fillna(0.0)
    scaled = StandardScaler().fit_transform(values.to_numpy())
    if settings.method == "kmeans":
        model = KMeans(n_clusters=settings.k, random_state=settings.random_state,
                       n_init=_KMEANS_RESTARTS)
        raw = model.fit_predict(scaled)
    else:
        model = GaussianMixture(n_components=settings.k, random_state=settings.random_state)
        raw = model.fit(scaled).predict(scaled)

    centres = pd.DataFrame(scaled, columns=settings.features).groupby(raw).mean()
    sizes = pd.Series(raw).value_counts()
    # C1 = largest; ties broken by the centre, so the naming never depends on label numbers
    order = sorted(centres.index, key=lambda c: (-sizes[c], tuple(np.round(centres.loc[c], 9))))
    names = {c: f"C{i + 1}" for i, c in enumerate(order)}
    labels = pd.DataFrame(
        {"customer_id": eligible["customer_id"], "cluster": [names[c] for c in raw]}
    )
    centres = centres.rename(index=names).loc[[names[c] for c in order]]
    return Clustering(labels, centres)


def crosstab_against_tiers(
    clustering: Clustering,
    tiers: pd.DataFrame,
    tier_order: list[str],
    settings: ClusteringSettings,
    as_of: dt.date | None,
    scheme_version: str,
) -> tuple[pd.DataFrame, float | None]:
    """Customers per (cluster, rule-based service tier) with a note per cluster; and the
    adjusted Rand index of clusters vs tiers (1 = the same split, about 0 = unrelated)."""
    from sklearn.metrics import adjusted_rand_score

    columns = ["cluster", "cluster_customers", "service_tier", "customers", "share_of_cluster",
               "majority_tier", "majority_share", "agrees_with_rules", "note", "method", "k",
               "features", "as_of", "scheme_version"]
    joined = clustering.labels.merge(tiers[["customer_id", "service_tier"]], on="customer_id")
    if joined.empty:
        return pd.DataFrame(columns=columns), None
    ari = float(adjusted_rand_score(joined["service_tier"], joined["cluster"]))
    counts = pd.crosstab(joined["cluster"], joined["service_tier"])
    counts = counts.reindex(columns=[t for t in tier_order if t in counts.columns]
                            + sorted(set(counts.columns) - set(tier_order)), fill_value=0)
    counts = counts.loc[list(clustering.centres_sd.index.intersection(counts.index))]
    majority = counts.idxmax(axis=1)
    rows = []
    for cluster, row in counts.iterrows():
        size = int(row.sum())
        shares = row / size
        note = _note(cluster, size, shares, majority, clustering.centres_sd.loc[cluster],
                     settings)
        for tier, n in row.items():
            rows.append({
                "cluster": cluster, "cluster_customers": size, "service_tier": tier,
                "customers": int(n), "share_of_cluster": round(float(shares[tier]), 4),
                "majority_tier": majority[cluster],
                "majority_share": round(float(shares.max()), 4),
                "agrees_with_rules": bool(shares.max() >= settings.agreement_share),
                "note": note, "method": settings.method, "k": settings.k,
                "features": ",".join(settings.features), "as_of": as_of,
                "scheme_version": scheme_version,
            })
    return pd.DataFrame(rows, columns=columns), round(ari, 4)


def _note(cluster: str, size: int, shares: pd.Series, majority: pd.Series, centre: pd.Series,
          settings: ClusteringSettings) -> str:
    top = shares.idxmax()
    text = f"{cluster}: {size} customers, {shares.max():.0%} {top}"
    if shares.max() >= settings.agreement_share:
        text += "; agrees with the rules"
    else:
        others = ", ".join(f"{share:.0%} {tier}" for tier, share in
                           shares.drop(top).sort_values(ascending=False).items() if share > 0)
        text += f"; the rules split it ({others})"
    twins = [c for c in majority.index if c != cluster and majority[c] == top]
    if twins:
        text += f"; its majority tier is also that of {', '.join(twins)}"
    notable = centre[centre.abs() >= settings.notable_sd]
    notable = notable.reindex(notable.abs().sort_values(ascending=False).index)[:_NOTE_FEATURES]
    if len(notable):
        text += "; stands out by " + ", ".join(
            f"{'high' if z > 0 else 'low'} {feature} ({z:+.1f} sd)" for feature, z in notable.items()
        )
    return text
