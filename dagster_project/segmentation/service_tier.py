"""Service model tier (High/Medium/Low-touch) from behavioural features, plus the
"service-draining" and "ignores agreed terms" flags (DESIGN.md "Segments", 3).

The rules are data (config/segmentation.yml `service_tier`): each signal compares one
customer_features column with a threshold and adds points; the points pick the tier. Changing a
threshold there changes assignments without touching this module.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from dagster_project.segmentation.explain import inputs_json, reason_text, stamp
from dagster_project.segmentation.settings import Condition, ServiceTierSettings

# Confidence: a customer whose points sit this many points (or more) from the nearest tier
# boundary is assigned with full rule confidence; at the boundary with half of it.
_FULL_CONFIDENCE_MARGIN = 3


def condition_met(features: pd.DataFrame, condition: Condition) -> pd.Series:
    """True where the feature meets the bound(s); a missing feature never meets a condition."""
    values = pd.to_numeric(features[condition.feature], errors="coerce").astype(float)
    met = values.notna()
    if condition.at_least is not None:
        met &= values >= condition.at_least
    if condition.at_most is not None:
        met &= values <= condition.at_most
    return met.fillna(False)


def all_conditions_met(features: pd.DataFrame, conditions: list[Condition]) -> pd.Series:
    met = pd.Series(True, index=features.index)
    for condition in conditions:
        met &= condition_met(features, condition)
    return met


def _confidence(points: np.ndarray, boundaries: list[int], orders: np.ndarray,
                min_orders: int) -> np.ndarray:
    inner = [b for b in boundaries if b > 0]
    if inner:
        # distance to the nearest boundary: points >= b is one side, points < b the other
        distance = np.min([np.where(points >= b, points - b + 1, b - points) for b in inner], axis=0)
    else:
        distance = np.full(len(points), _FULL_CONFIDENCE_MARGIN)
    rule = 0.5 + 0.5 * np.minimum(distance - 1, _FULL_CONFIDENCE_MARGIN - 1) / max(
        _FULL_CONFIDENCE_MARGIN - 1, 1)
    evidence = np.minimum(orders / max(2 * min_orders, 1), 1.0)
    return np.round(rule * evidence, 4)


def assign_service_tier(features: pd.DataFrame, rules: ServiceTierSettings, scheme_version: str,
                        as_of: dt.date | None) -> pd.DataFrame:
    """One row per customer of `features` (a customer_features frame) with tier, flags, reasons."""
    features = features.sort_values("customer_id").reset_index(drop=True)
    orders = features["order_count"].fillna(0).to_numpy(dtype=float)
    points = np.zeros(len(features), dtype=int)
    met_by_signal: dict[str, np.ndarray] = {}
    for signal in rules.signals:
        met = condition_met(features, signal).to_numpy()
        met_by_signal[signal.code] = met
        points += np.where(met, signal.points, 0)

    tiers = sorted(rules.tiers, key=lambda t: t.min_points, reverse=True)
    tier = np.select([points >= t.min_points for t in tiers], [t.tier for t in tiers],
                     default=tiers[-1].tier).astype(object)
    no_orders = orders <= 0
    tier[no_orders] = rules.tier_without_orders
    provisional = orders < rules.min_orders

    draining = all_conditions_met(features, rules.flags.service_draining).to_numpy()
    ignores_terms = all_conditions_met(features, rules.flags.ignores_agreed_terms).to_numpy()

    used = sorted({s.feature for s in rules.signals}
                  | {c.feature for c in rules.flags.service_draining}
                  | {c.feature for c in rules.flags.ignores_agreed_terms} | {"order_count"})
    reasons, inputs = [], []
    records = features[used].to_dict("records")
    for i, record in enumerate(records):
        codes = [f"ST.{s.code}" for s in rules.signals if met_by_signal[s.code][i]]
        if no_orders[i]:
            codes = ["ST.NO_ORDERS"]
        elif provisional[i]:
            codes.append("ST.FEW_ORDERS")
        if draining[i]:
            codes.append("ST.FLAG_SERVICE_DRAINING")
        if ignores_terms[i]:
            codes.append("ST.FLAG_IGNORES_AGREED_TERMS")
        reasons.append(reason_text(codes))
        inputs.append(inputs_json(record))

    confidence = _confidence(points, [t.min_points for t in rules.tiers], orders, rules.min_orders)
    out = pd.DataFrame({
        "customer_id": features["customer_id"],
        "service_tier": tier,
        "service_points": points,
        "is_provisional": provisional,
        "is_service_draining": draining,
        "ignores_agreed_terms": ignores_terms,
        "confidence": np.where(no_orders, 0.0, confidence),
        "reason_codes": reasons,
        "inputs": inputs,
    })
    return stamp(out, scheme_version, as_of)
