"""The consolidated `customer_segments` table: one row per customer with every segment dimension
(industry segment and sub-segment, value profile, service tier, size tier, RFM group and CLV),
a confidence per dimension, the provisional flag and the reasons of each dimension as one JSON
text. Steward overrides of the value profile and service tier (seeds/segment_overrides.csv) are
applied here; the industry overrides were applied by industry.py.

Column list agreed with the history / write-back work: /work/notes/customer_segments_schema.md.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

import pandas as pd

from dagster_project.segmentation.industry import OVERRIDE, UNASSIGNED
from dagster_project.segmentation.settings import SegmentationSettings

COLUMNS = [
    "customer_id", "as_of", "scheme_version",
    "segment", "sub_segment", "segment_source", "sub_segment_source", "segment_confidence",
    "value_profile", "value_profile_confidence",
    "service_tier", "service_tier_confidence",
    "size_tier", "rfm_group", "clv_365d_eur", "customer_value_confidence",
    "is_provisional", "provisional_reason", "reasons",
]


@dataclass(frozen=True)
class Consolidated:
    table: pd.DataFrame
    findings: pd.DataFrame  # overrides that could not be applied (FINDING_COLUMNS but severity)


def _dimension(codes: object, inputs: object, **extra: object) -> dict:
    parsed = json.loads(inputs) if isinstance(inputs, str) else None
    listed = [c for c in codes.split(";") if c] if isinstance(codes, str) else []
    return {**extra, "codes": listed, "inputs": parsed}


def _dimension_overrides(overrides: pd.DataFrame, column: str, allowed: set[str],
                         customers: set[str]) -> tuple[dict[str, pd.Series], list[dict]]:
    """Valid overrides of one dimension (last row per customer wins) and findings for the rest."""
    applied: dict[str, pd.Series] = {}
    findings = []
    if column not in overrides:
        return applied, findings
    for row in overrides[overrides[column].notna()].itertuples(index=False):
        value = getattr(row, column)
        problem = ("unknown_customer" if row.customer_id not in customers
                   else None if value in allowed else f"unknown_{column}")
        if problem is None:
            applied[row.customer_id] = pd.Series(row._asdict())
            continue
        findings.append({
            "kind": "invalid_override", "source_system": "seeds", "entity": "segment_overrides",
            "source_file": None, "line": None, "record_key": str(row.customer_id),
            "column_name": column, "rule": problem, "observed_value": str(value),
            "customers_affected": 1, "revenue_eur_affected": 0.0,
            "message": f"Override of {row.customer_id} ({column} = {value}) not applied "
                       f"({problem.replace('_', ' ')})",
        })
    return applied, findings


def consolidate(features: pd.DataFrame, industry: pd.DataFrame, value_profiles: pd.DataFrame,
                service_tiers: pd.DataFrame, customer_value: pd.DataFrame,
                overrides: pd.DataFrame, profile_seed: pd.DataFrame,
                settings: SegmentationSettings, as_of: dt.date | None) -> Consolidated:
    """One row per customer of `features` (customer_features), sorted by customer_id."""
    frame = features[["customer_id", "order_count"]].sort_values("customer_id")
    frame = frame.merge(industry.drop(columns=["as_of", "scheme_version"]), on="customer_id",
                        how="left")
    for prefix, other in (("vp_", value_profiles), ("st_", service_tiers),
                          ("cv_", customer_value)):
        other = other.drop(columns=["as_of", "scheme_version"]).rename(
            columns=lambda c, p=prefix: c if c == "customer_id" else p + c)
        frame = frame.merge(other, on="customer_id", how="left")
    frame = frame.reset_index(drop=True)

    customers = set(frame["customer_id"])
    profile_overrides, findings = _dimension_overrides(
        overrides, "value_profile", set(profile_seed["value_profile"]), customers)
    tier_overrides, tier_findings = _dimension_overrides(
        overrides, "service_tier", {t.tier for t in settings.service_tier.tiers}, customers)
    findings += tier_findings

    rules = settings.industry
    rows = []
    for row in frame.itertuples(index=False):
        value_profile = row.vp_value_profile if isinstance(row.vp_value_profile, str) else None
        profile_confidence = None if value_profile is None else float(row.vp_confidence)
        profile_reason = _dimension(row.vp_reason_codes, row.vp_inputs)
        if row.customer_id in profile_overrides:
            override = profile_overrides[row.customer_id]
            value_profile, profile_confidence = override["value_profile"], 1.0
            profile_reason = _override_reason("VP", override)
        service_tier, tier_confidence = row.st_service_tier, float(row.st_confidence)
        tier_reason = _dimension(row.st_reason_codes, row.st_inputs)
        tier_provisional = bool(row.st_is_provisional)
        if row.customer_id in tier_overrides:
            override = tier_overrides[row.customer_id]
            service_tier, tier_confidence = override["service_tier"], 1.0
            tier_reason = _override_reason("ST", override)
            tier_provisional = False

        provisional = []
        if pd.isna(row.order_count) or row.order_count == 0:
            provisional.append("NO_ORDERS")
        elif tier_provisional:
            provisional.append("FEW_ORDERS")
        if row.segment_source == UNASSIGNED:
            provisional.append("UNASSIGNED")
        elif row.segment_source != OVERRIDE and (
                row.segment_confidence < rules.provisional_below_confidence):
            provisional.append("LOW_SEGMENT_CONFIDENCE")

        reasons = {
            "segment": _dimension(row.reason_codes, row.inputs, source=row.segment_source,
                                  sub_segment_source=row.sub_segment_source,
                                  sub_segment_confidence=row.sub_segment_confidence),
            "value_profile": profile_reason,
            "service_tier": tier_reason,
            "customer_value": _dimension(row.cv_reason_codes, row.cv_inputs),
            "provisional": provisional,
        }
        clv = row.cv_clv_365d_eur
        rows.append({
            "customer_id": row.customer_id,
            "segment": row.segment,
            "sub_segment": row.sub_segment,
            "segment_source": row.segment_source,
            "sub_segment_source": row.sub_segment_source,
            "segment_confidence": float(row.segment_confidence),
            "value_profile": value_profile,
            "value_profile_confidence": profile_confidence,
            "service_tier": service_tier,
            "service_tier_confidence": tier_confidence,
            "size_tier": row.cv_size_tier,
            "rfm_group": row.cv_rfm_group,
            "clv_365d_eur": None if pd.isna(clv) else float(clv),
            "customer_value_confidence": float(row.cv_confidence),
            "is_provisional": bool(provisional),
            "provisional_reason": ";".join(provisional),
            "reasons": json.dumps(reasons, sort_keys=True, default=str),
        })
    table = pd.DataFrame(rows)
    table["as_of"] = pd.Timestamp(as_of).date() if as_of is not None else None
    table["scheme_version"] = settings.scheme_version
    for column in ("value_profile_confidence", "clv_365d_eur"):
        table[column] = table[column].astype(float)
    return Consolidated(table=table[COLUMNS], findings=pd.DataFrame(findings))


def _override_reason(prefix: str, override: pd.Series) -> dict:
    return {"codes": [f"{prefix}.STEWARD_OVERRIDE"],
            "inputs": {k: (None if pd.isna(override.get(k)) else str(override.get(k)))
                       for k in ("reason", "steward", "decided_on")}}
