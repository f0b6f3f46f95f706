"""Service model tier (High/Medium/Low-touch) from behavioural features, plus the
"service-draining" and "ignores agreed terms" flags (DESIGN.md "Segments", 3).

The rules are data (config/segmentation.yml `service_tier`): each signal compares one
customer_features column with a threshold (and, where configured, asks for enough events behind
it) and adds points; the points pick the tier. Customers without any order get a provisional tier
from their own, smaller point scale (`without_orders`: what shows before the first order).
Changing a threshold there changes assignments without touching this module.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from dagster_project.segmentation.explain import inputs_json_rows, join_where, stamp
from dagster_project.segmentation.settings import (
    Condition,
    ServiceTierSettings,
    Signal,
    TierRule,
)

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


def signal_met(features: pd.DataFrame, signal: Signal) -> np.ndarray:
    """The signal's own condition and every one of its `also` conditions hold."""
    return all_conditions_met(features, [signal, *signal.also]).to_numpy()


def score_points(
    features: pd.DataFrame, signals: list[Signal], tiers: list[TierRule]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(points, tier, signals met as a (customers, signals) boolean matrix) on one scale."""
    met = (
        np.column_stack([signal_met(features, s) for s in signals])
        if signals
        else np.zeros((len(features), 0), dtype=bool)
    )
    points = (met * np.array([s.points for s in signals], dtype=int)).sum(axis=1).astype(int)
    ordered = sorted(tiers, key=lambda t: t.min_points, reverse=True)
    tier = np.select(
        [points >= t.min_points for t in ordered],
        [t.tier for t in ordered],
        default=ordered[-1].tier,
    ).astype(object)
    return points, tier, met


def _confidence(
    points: np.ndarray, boundaries: list[int], orders: np.ndarray, min_orders: int
) -> np.ndarray:
    inner = [b for b in boundaries if b > 0]
    if inner:
        # distance to the nearest boundary: points >= b is one side, points < b the other
        distance = np.min(
            [np.where(points >= b, points - b + 1, b - points) for b in inner], axis=0
        )
    else:
        distance = np.full(len(points), _FULL_CONFIDENCE_MARGIN)
    rule = 0.5 + 0.5 * np.minimum(distance - 1, _FULL_CONFIDENCE_MARGIN - 1) / max(
        _FULL_CONFIDENCE_MARGIN - 1, 1
    )
    evidence = np.minimum(orders / max(2 * min_orders, 1), 1.0)
    return np.round(rule * evidence, 4)


def _signal_codes(
    rows: np.ndarray, met: np.ndarray, signals: list[Signal]
) -> list[tuple[np.ndarray, str]]:
    """(mask, code) of each signal, limited to `rows`, in the order the rules list them."""
    return [(rows & met[:, j], f"ST.{s.code}") for j, s in enumerate(signals)]


def assign_service_tier(
    features: pd.DataFrame, rules: ServiceTierSettings, scheme_version: str, as_of: dt.date | None
) -> pd.DataFrame:
    """One row per customer of `features` (a customer_features frame) with tier, flags, reasons."""
    features = features.sort_values("customer_id").reset_index(drop=True)
    orders = features["order_count"].fillna(0).to_numpy(dtype=float)
    no_orders = orders <= 0
    provisional = orders < rules.min_orders

    points, tier, met = score_points(features, rules.signals, rules.tiers)
    before_points, before_tier, before_met = score_points(
        features, rules.without_orders.signals, rules.without_orders.tiers
    )
    points = np.where(no_orders, before_points, points)
    tier = np.where(no_orders, before_tier, tier)

    draining = all_conditions_met(features, rules.flags.service_draining).to_numpy()
    ignores_terms = all_conditions_met(features, rules.flags.ignores_agreed_terms).to_numpy()

    reasons = join_where(
        [
            (no_orders, "ST.NO_ORDERS"),
            *_signal_codes(no_orders, before_met, rules.without_orders.signals),
            *_signal_codes(~no_orders, met, rules.signals),
            (~no_orders & provisional, "ST.FEW_ORDERS"),
            (draining, "ST.FLAG_SERVICE_DRAINING"),
            (ignores_terms, "ST.FLAG_IGNORES_AGREED_TERMS"),
        ],
        len(features),
    )

    conditions = [
        *rules.signals,
        *rules.without_orders.signals,
        *rules.flags.service_draining,
        *rules.flags.ignores_agreed_terms,
    ]
    used = sorted(
        {c.feature for c in conditions}
        | {a.feature for s in [*rules.signals, *rules.without_orders.signals] for a in s.also}
        | {"order_count"}
    )
    inputs = inputs_json_rows({column: features[column] for column in used})

    confidence = _confidence(points, [t.min_points for t in rules.tiers], orders, rules.min_orders)
    out = pd.DataFrame(
        {
            "customer_id": features["customer_id"],
            "service_tier": tier,
            "service_points": points,
            "is_provisional": provisional,
            "is_service_draining": draining,
            "ignores_agreed_terms": ignores_terms,
            # without orders there is no behaviour behind the tier: provisional, no confidence
            "confidence": np.where(no_orders, 0.0, confidence),
            "reason_codes": reasons,
            "inputs": inputs,
        }
    )
    return stamp(out, scheme_version, as_of)
