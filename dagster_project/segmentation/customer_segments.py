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

import numpy as np
import pandas as pd

from dagster_project.segmentation.explain import (
    join_where,
    json_number,
    json_object_rows,
    json_text,
)
from dagster_project.segmentation.industry import OVERRIDE, TABLE_COLUMNS, UNASSIGNED
from dagster_project.segmentation.settings import SegmentationSettings

COLUMNS = [
    "customer_id",
    "as_of",
    "scheme_version",
    "segment",
    "sub_segment",
    "segment_source",
    "sub_segment_source",
    "segment_confidence",
    "value_profile",
    "value_profile_confidence",
    "service_tier",
    "service_tier_confidence",
    "size_tier",
    "rfm_group",
    "clv_365d_eur",
    "customer_value_confidence",
    "is_provisional",
    "provisional_reason",
    "reasons",
]


# The columns of each assignment that the consolidated table reads.
_INDUSTRY_COLUMNS = [c for c in TABLE_COLUMNS if c != "customer_id"]
_PROFILE_COLUMNS = ["value_profile", "confidence", "reason_codes", "inputs"]
_TIER_COLUMNS = ["service_tier", "confidence", "is_provisional", "reason_codes", "inputs"]
_VALUE_COLUMNS = ["size_tier", "rfm_group", "clv_365d_eur", "confidence", "reason_codes", "inputs"]


@dataclass(frozen=True)
class Consolidated:
    table: pd.DataFrame
    findings: pd.DataFrame  # overrides that could not be applied (FINDING_COLUMNS but severity)


def _json_scalars(values: pd.Series) -> list[str]:
    """Each value as json.dumps writes it (strings, None, numbers, NaN): the pieces of the
    reasons text, built per column instead of one dict per row (100,000s of customers)."""
    if pd.api.types.is_float_dtype(values.dtype):
        return [json_number(v) for v in values.tolist()]
    return [
        json_text(v)
        if isinstance(v, str)
        else json.dumps(None if v is None else v.item() if hasattr(v, "item") else v, default=str)
        for v in values.tolist()
    ]


def _json_codes(codes: pd.Series) -> list[str]:
    """';'-separated reason codes as a JSON list of strings (each distinct text rendered once:
    100,000s of rows share a few hundred combinations)."""
    texts = codes.tolist()
    rendered = {
        text: "[" + ", ".join(json_text(c) for c in text.split(";") if c) + "]"
        for text in {t for t in texts if isinstance(t, str)}
    }
    return [rendered[text] if isinstance(text, str) else "[]" for text in texts]


def _json_inputs(inputs: pd.Series) -> list[str]:
    """The inputs JSON text each assignment carries (already canonical: sorted keys, the default
    separators), embedded as it is; missing inputs are null."""
    return [text if isinstance(text, str) else "null" for text in inputs.tolist()]


def _dimension_texts(codes: pd.Series, inputs: pd.Series, **extra: pd.Series) -> np.ndarray:
    """Per row the JSON object {"codes": [...], "inputs": {...}, **extra}, keys sorted."""
    parts = {"codes": _json_codes(codes), "inputs": _json_inputs(inputs)}
    parts.update({key: _json_scalars(values) for key, values in extra.items()})
    return np.array(json_object_rows(parts), dtype=object)


def _dimension_overrides(
    overrides: pd.DataFrame, column: str, allowed: set[str], customers: set[str]
) -> tuple[dict[str, pd.Series], list[dict]]:
    """Valid overrides of one dimension (last row per customer wins) and findings for the rest."""
    applied: dict[str, pd.Series] = {}
    findings = []
    if column not in overrides:
        return applied, findings
    for row in overrides[overrides[column].notna()].itertuples(index=False):
        value = getattr(row, column)
        problem = (
            "unknown_customer"
            if row.customer_id not in customers
            else None
            if value in allowed
            else f"unknown_{column}"
        )
        if problem is None:
            applied[row.customer_id] = pd.Series(row._asdict())
            continue
        findings.append(
            {
                "kind": "invalid_override",
                "source_system": "seeds",
                "entity": "segment_overrides",
                "source_file": None,
                "line": None,
                "record_key": str(row.customer_id),
                "column_name": column,
                "rule": problem,
                "observed_value": str(value),
                "customers_affected": 1,
                "revenue_eur_affected": 0.0,
                "message": f"Override of {row.customer_id} ({column} = {value}) not applied "
                f"({problem.replace('_', ' ')})",
            }
        )
    return applied, findings


def consolidate(
    features: pd.DataFrame,
    industry: pd.DataFrame,
    value_profiles: pd.DataFrame,
    service_tiers: pd.DataFrame,
    customer_value: pd.DataFrame,
    overrides: pd.DataFrame,
    profile_seed: pd.DataFrame,
    settings: SegmentationSettings,
    as_of: dt.date | None,
) -> Consolidated:
    """One row per customer of `features` (customer_features), sorted by customer_id."""
    frame = features[["customer_id", "order_count"]].sort_values("customer_id")
    frame = frame.merge(industry[["customer_id", *_INDUSTRY_COLUMNS]], on="customer_id", how="left")
    # only the columns read below: every merge copies what it carries
    for prefix, other, columns in (
        ("vp_", value_profiles, _PROFILE_COLUMNS),
        ("st_", service_tiers, _TIER_COLUMNS),
        ("cv_", customer_value, _VALUE_COLUMNS),
    ):
        other = other[["customer_id", *columns]].rename(
            columns=lambda c, p=prefix: c if c == "customer_id" else p + c
        )
        frame = frame.merge(other, on="customer_id", how="left")
    frame = frame.reset_index(drop=True)

    customers = set(frame["customer_id"])
    profile_overrides, findings = _dimension_overrides(
        overrides, "value_profile", set(profile_seed["value_profile"]), customers
    )
    tier_overrides, tier_findings = _dimension_overrides(
        overrides, "service_tier", {t.tier for t in settings.service_tier.tiers}, customers
    )
    findings += tier_findings

    rules = settings.industry
    profile_reason = _dimension_texts(frame["vp_reason_codes"], frame["vp_inputs"])
    tier_reason = _dimension_texts(frame["st_reason_codes"], frame["st_inputs"])
    segment_reason = _dimension_texts(
        frame["reason_codes"],
        frame["inputs"],
        source=frame["segment_source"],
        sub_segment_source=frame["sub_segment_source"],
        sub_segment_confidence=frame["sub_segment_confidence"],
    )
    value_reason = _dimension_texts(frame["cv_reason_codes"], frame["cv_inputs"])

    value_profile = (
        frame["vp_value_profile"]
        .where(frame["vp_value_profile"].map(lambda v: isinstance(v, str)), None)
        .astype(object)
    )
    profile_confidence = frame["vp_confidence"].astype(float).where(value_profile.notna())
    service_tier = frame["st_service_tier"].astype(object)
    tier_confidence = frame["st_confidence"].astype(float)
    tier_provisional = frame["st_is_provisional"].astype(bool).to_numpy()
    # Steward overrides: few rows, applied one by one.
    position = pd.Series(frame.index, index=frame["customer_id"])
    for customer_id, override in profile_overrides.items():
        i = position[customer_id]
        value_profile.iat[i], profile_confidence.iat[i] = override["value_profile"], 1.0
        profile_reason[i] = json.dumps(_override_reason("VP", override), sort_keys=True)
    for customer_id, override in tier_overrides.items():
        i = position[customer_id]
        service_tier.iat[i], tier_confidence.iat[i] = override["service_tier"], 1.0
        tier_reason[i] = json.dumps(_override_reason("ST", override), sort_keys=True)
        tier_provisional[i] = False

    no_orders = (frame["order_count"].isna() | (frame["order_count"] == 0)).to_numpy()
    unassigned = (frame["segment_source"] == UNASSIGNED).to_numpy()
    low_confidence = (
        (frame["segment_source"] != OVERRIDE)
        & (frame["segment_confidence"] < rules.provisional_below_confidence)
    ).to_numpy()
    provisional = [
        (no_orders, "NO_ORDERS"),
        (~no_orders & tier_provisional, "FEW_ORDERS"),
        (unassigned, "UNASSIGNED"),
        (~unassigned & low_confidence, "LOW_SEGMENT_CONFIDENCE"),
    ]
    provisional_reason = join_where(provisional, len(frame), ";")
    provisional_json = (
        "[" + join_where([(on, f'"{flag}"') for on, flag in provisional], len(frame), ", ") + "]"
    )
    reasons = json_object_rows(
        {
            "customer_value": value_reason,
            "provisional": provisional_json,
            "segment": segment_reason,
            "service_tier": tier_reason,
            "value_profile": profile_reason,
        }
    )

    clv = frame["cv_clv_365d_eur"].astype(float)
    table = pd.DataFrame(
        {
            "customer_id": frame["customer_id"],
            "segment": frame["segment"],
            "sub_segment": frame["sub_segment"],
            "segment_source": frame["segment_source"],
            "sub_segment_source": frame["sub_segment_source"],
            "segment_confidence": frame["segment_confidence"].astype(float),
            "value_profile": value_profile,
            "value_profile_confidence": profile_confidence,
            "service_tier": service_tier,
            "service_tier_confidence": tier_confidence,
            "size_tier": frame["cv_size_tier"],
            "rfm_group": frame["cv_rfm_group"],
            "clv_365d_eur": clv,
            "customer_value_confidence": frame["cv_confidence"].astype(float),
            "is_provisional": provisional_reason != "",
            "provisional_reason": provisional_reason,
            "reasons": reasons,
        }
    )
    table["as_of"] = pd.Timestamp(as_of).date() if as_of is not None else None
    table["scheme_version"] = settings.scheme_version
    for column in ("value_profile_confidence", "clv_365d_eur"):
        table[column] = table[column].astype(float)
    return Consolidated(table=table[COLUMNS], findings=pd.DataFrame(findings))


def _override_reason(prefix: str, override: pd.Series) -> dict:
    return {
        "codes": [f"{prefix}.STEWARD_OVERRIDE"],
        "inputs": {
            k: (None if pd.isna(override.get(k)) else str(override.get(k)))
            for k in ("reason", "steward", "decided_on")
        },
    }
