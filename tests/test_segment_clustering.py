"""Post-hoc clustering of behavioural features against the rule-based service tiers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import yaml

from dagster_project.segmentation.clustering import cluster_customers, crosstab_against_tiers
from dagster_project.segmentation.settings import SEGMENTATION_FILE, ClusteringSettings

SETTINGS = ClusteringSettings.model_validate(
    yaml.safe_load(SEGMENTATION_FILE.read_text())["clustering"]
).model_copy(update={"k": 3})
TIERS = ["High-touch", "Medium-touch", "Low-touch"]


def _customers() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Three behaviours (60 demanding, 40 middling, 20 self-service customers); the rules call
    the demanding group High-touch for 45 of them and Medium-touch for 15."""
    rng = np.random.default_rng(3)
    groups = [(60, 2.0), (40, 0.0), (20, -2.0)]
    rows, tiers = [], []
    for g, (size, level) in enumerate(groups):
        for i in range(size):
            customer = f"g{g}-{i:03d}"
            rows.append({"customer_id": customer, "order_count": 10,
                         **{f: level + rng.normal(0, 0.2) for f in SETTINGS.features}})
            tier = TIERS[g] if not (g == 0 and i >= 45) else "Medium-touch"
            tiers.append({"customer_id": customer, "service_tier": tier})
    features = pd.DataFrame(rows)
    features.loc[0, SETTINGS.features[0]] = None  # a missing feature counts as typical
    few_orders = {"customer_id": "z-new", "order_count": 1, **dict.fromkeys(SETTINGS.features, 9)}
    features = pd.concat([features, pd.DataFrame([few_orders])], ignore_index=True)
    return features, pd.DataFrame(tiers)


def _crosstab(features, tiers, settings=SETTINGS):
    return crosstab_against_tiers(cluster_customers(features, settings), tiers, TIERS, settings,
                                  None, "v1")


def test_crosstab_counts_and_notes_where_rules_disagree():
    features, tiers = _customers()
    crosstab, ari = _crosstab(features, tiers)
    counts = {(r.cluster, r.service_tier): r.customers for r in crosstab.itertuples()}
    # clusters named by size; customers with too few orders are left out
    assert counts[("C1", "High-touch")] == 45 and counts[("C1", "Medium-touch")] == 15
    assert counts[("C2", "Medium-touch")] == 40 and counts[("C3", "Low-touch")] == 20
    assert crosstab["customers"].sum() == 120
    notes = crosstab.drop_duplicates("cluster").set_index("cluster")
    assert not notes.loc["C1", "agrees_with_rules"]
    assert "75% High-touch" in notes.loc["C1", "note"]
    assert "25% Medium-touch" in notes.loc["C1", "note"]
    assert notes.loc["C3", "agrees_with_rules"]
    assert "low " in notes.loc["C3", "note"]  # the self-service group stands out by low values
    assert 0 < ari < 1


def test_rerun_is_identical_and_method_is_config():
    features, tiers = _customers()
    first, _ = _crosstab(features, tiers)
    shuffled = features.sample(frac=1, random_state=1)
    pd.testing.assert_frame_equal(first, _crosstab(shuffled, tiers)[0])
    mixture = SETTINGS.model_copy(update={"method": "gaussian_mixture"})
    crosstab, _ = _crosstab(features, tiers, mixture)
    assert set(crosstab["method"]) == {"gaussian_mixture"}
    assert crosstab.groupby("cluster")["customers"].sum().sort_values().tolist() == [20, 40, 60]


def test_too_few_customers_give_an_empty_crosstab():
    features, tiers = _customers()
    crosstab, ari = _crosstab(features.head(2), tiers)
    assert crosstab.empty and ari is None
