"""Validated segmentation rules (dagster_project/config/segmentation.yml).

Thresholds are business decisions: they live in YAML and seeds/, and a typo fails at load time
with the key named instead of silently assigning everyone to one tier.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

SEGMENTATION_FILE = Path(__file__).resolve().parent.parent / "config" / "segmentation.yml"
# A deployment (or a test) can point at its own rules file; it is validated the same way.
SEGMENTATION_ENV = "SEGMENTS_SEGMENTATION_CONFIG"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Condition(_Strict):
    """`feature` (a customer_features column) at least and/or at most a threshold."""

    feature: str
    at_least: float | None = None
    at_most: float | None = None

    @model_validator(mode="after")
    def _one_bound(self) -> Condition:
        if self.at_least is None and self.at_most is None:
            raise ValueError(f"condition on {self.feature!r} needs at_least or at_most")
        return self

    def describe(self) -> str:
        parts = []
        if self.at_least is not None:
            parts.append(f">={self.at_least:g}")
        if self.at_most is not None:
            parts.append(f"<={self.at_most:g}")
        return f"{self.feature}{''.join(parts)}"


class Signal(Condition):
    code: str
    points: int = Field(ge=0)


class TierRule(_Strict):
    tier: str
    min_points: int = Field(ge=0)


class ServiceTierFlags(_Strict):
    service_draining: list[Condition]
    ignores_agreed_terms: list[Condition]


class ServiceTierSettings(_Strict):
    signals: list[Signal]
    tiers: list[TierRule]
    min_orders: int = Field(3, ge=0)
    tier_without_orders: str
    flags: ServiceTierFlags

    @model_validator(mode="after")
    def _tiers_cover_zero(self) -> ServiceTierSettings:
        if not any(t.min_points == 0 for t in self.tiers):
            raise ValueError("one service tier needs min_points: 0 (every customer gets a tier)")
        if self.tier_without_orders not in {t.tier for t in self.tiers}:
            raise ValueError(f"tier_without_orders {self.tier_without_orders!r} is not a tier")
        return self


class CustomerValueSettings(_Strict):
    rfm_bins: int = Field(5, ge=2, le=10)
    horizon_days: int = Field(365, ge=1)
    annual_discount_rate: float = Field(0.0, ge=0, lt=1)
    bgnbd_penalizer: float = Field(0.001, ge=0)
    gamma_gamma_penalizer: float = Field(0.001, ge=0)
    min_repeat_customers_to_fit: int = Field(20, ge=2)
    no_purchase_group: str = "No purchases"


class ValueProfileSettings(_Strict):
    ranking_temperature: float = Field(1.2, gt=0)
    cell_trust: float = Field(0.75, ge=0, lt=1)
    min_rated_projects: int = Field(10, ge=1)
    won_stages: list[str]


class SegmentationSettings(_Strict):
    scheme_version: str
    customer_value: CustomerValueSettings
    service_tier: ServiceTierSettings
    value_profile: ValueProfileSettings


def load_segmentation_settings(path: Path | None = None) -> SegmentationSettings:
    path = path or Path(os.environ.get(SEGMENTATION_ENV) or SEGMENTATION_FILE)
    return SegmentationSettings.model_validate(yaml.safe_load(path.read_text()))


@cache
def segmentation_settings() -> SegmentationSettings:
    return load_segmentation_settings()
