"""Validated segmentation rules (dagster_project/config/segmentation.yml).

Thresholds are business decisions: they live in YAML and seeds/, and a typo fails at load time
with the key named instead of silently assigning everyone to one tier.
"""

from __future__ import annotations

import datetime as dt
import os
from functools import cache
from pathlib import Path
from typing import Literal

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
    # Further conditions that must hold too, e.g. enough events behind a share.
    also: list[Condition] = []


class TierRule(_Strict):
    tier: str
    min_points: int = Field(ge=0)


class ServiceTierFlags(_Strict):
    service_draining: list[Condition]
    ignores_agreed_terms: list[Condition]


def _check_tiers(tiers: list[TierRule], where: str) -> None:
    if not any(t.min_points == 0 for t in tiers):
        raise ValueError(f"one tier of {where} needs min_points: 0 (every customer gets a tier)")


class WithoutOrders(_Strict):
    """The provisional tier of customers without any order, on its own point scale (what shows
    before the first order: projects sold with service agreements, head count)."""

    signals: list[Signal]
    tiers: list[TierRule]

    @model_validator(mode="after")
    def _tiers_cover_zero(self) -> WithoutOrders:
        _check_tiers(self.tiers, "service_tier.without_orders")
        return self


class ServiceTierSettings(_Strict):
    signals: list[Signal]
    tiers: list[TierRule]
    min_orders: int = Field(3, ge=0)
    without_orders: WithoutOrders
    flags: ServiceTierFlags

    @model_validator(mode="after")
    def _tiers_cover_zero(self) -> ServiceTierSettings:
        _check_tiers(self.tiers, "service_tier")
        unknown = {t.tier for t in self.without_orders.tiers} - {t.tier for t in self.tiers}
        if unknown:
            raise ValueError(f"service_tier.without_orders names unknown tiers {sorted(unknown)}")
        return self


class CustomerValueSettings(_Strict):
    rfm_bins: int = Field(5, ge=2, le=10)
    horizon_days: int = Field(365, ge=1)
    annual_discount_rate: float = Field(0.0, ge=0, lt=1)
    bgnbd_penalizer: float = Field(0.001, ge=0)
    gamma_gamma_penalizer: float = Field(0.001, ge=0)
    min_repeat_customers_to_fit: int = Field(20, ge=2)
    no_purchase_group: str = "No purchases"


class PeerPrior(_Strict):
    """The profile mix of a customer's peer group (learned from the data) as its prior."""

    # dim_customer flags that make their own peer group (first one the customer carries wins);
    # everybody else is grouped by industry sub-segment.
    role_flags: list[str] = []
    # Shrinks a group's mix towards the uniform one, as if this many customers had no evidence.
    pseudo_customers: float = Field(5.0, gt=0)
    # EM iterations of the group mixes.
    iterations: int = Field(10, ge=0, le=100)


class ValueProfileSettings(_Strict):
    ranking_temperature: float = Field(1.2, gt=0)
    # P(a project's profile is its customer's); the rest is spread over the other profiles.
    project_follows_customer: float = Field(0.85, gt=0, lt=1)
    # P(a filled value-profile picklist of a CRM account names the customer's profile).
    picklist_trust: float = Field(0.75, gt=0, lt=1)
    # P(a filled business model / operating environment of a CRM account is right).
    axis_trust: float = Field(0.9, gt=0, lt=1)
    # Evidence of a soft-deleted CRM account counts this much (duplicates still describe it).
    deleted_account_factor: float = Field(0.5, ge=0, le=1)
    peer_prior: PeerPrior = PeerPrior()
    # Below this posterior probability an assignment is provisional.
    provisional_below_confidence: float = Field(0.6, ge=0, le=1)
    min_rated_projects: int = Field(10, ge=1)


class HysteresisRule(_Strict):
    """When a changed assignment of one dimension replaces the value a customer holds."""

    # The customer_segments columns that make up the dimension's value (segment and sub-segment
    # move together, so that a held segment never meets a sub-segment of another one).
    columns: list[str] = Field(min_length=1)
    confidence_column: str
    # A change backed by at least this confidence is applied at once ...
    min_confidence: float = Field(ge=0, le=1)
    # ... else only once the new value was assigned in this many consecutive snapshots.
    persist_snapshots: int = Field(ge=1)
    # A change decided by one of these sources (e.g. a steward override) is applied at once.
    source_column: str | None = None
    immediate_sources: list[str] = []


class MigrationLabels(_Strict):
    new: str = "(new)"
    gone: str = "(gone)"
    none: str = "(none)"


class HistorySettings(_Strict):
    # First monthly as-of partition (YYYY-MM-01): backfills can start here.
    first_month: dt.date
    dimensions: dict[str, HysteresisRule] = Field(min_length=1)
    # A held provisional assignment (a prospect, too little evidence) gives way at once.
    provisional_gives_way: bool = True
    migration_labels: MigrationLabels = MigrationLabels()

    @model_validator(mode="after")
    def _first_of_month(self) -> HistorySettings:
        if self.first_month.day != 1:
            raise ValueError(f"history.first_month {self.first_month} is not the 1st of a month")
        return self


class ClusteringSettings(_Strict):
    method: Literal["kmeans", "gaussian_mixture"] = "kmeans"
    k: int = Field(ge=2, le=20)
    random_state: int = 0
    # customer_features columns, standardised before clustering
    features: list[str] = Field(min_length=2)
    # Customers with fewer orders show too little behaviour to cluster.
    min_orders: int = Field(3, ge=1)
    # A cluster agrees with the rules when at least this share of it has one service tier.
    agreement_share: float = Field(0.8, gt=0, le=1)
    # A cluster's note names the features whose centre lies this many sd from the mean.
    notable_sd: float = Field(0.75, gt=0)


class LabelWeight(_Strict):
    """Evidence points of one legacy label field: a label naming a sub-segment adds `sub_segment`
    points to it; a label naming only a segment adds `segment` points to each sub-segment of it."""

    sub_segment: float = Field(ge=0)
    segment: float = Field(ge=0)


class PicklistRules(_Strict):
    # Points of a valid CRM picklist value (segment + sub-segment of the taxonomy); a picklist
    # is kept when the other evidence does not outweigh it ("filled and consistent").
    sub_segment_points: float = Field(ge=0)
    # Points to each sub-segment of a picklist that names a valid segment but no sub-segment.
    segment_only_points: float = Field(ge=0)


class PurchaseInference(_Strict):
    """Product-line mix of a customer's order lines vs the mix of customers whose sub-segment the
    sources above decide (Dirichlet-multinomial naive Bayes, fitted per run)."""

    # Multiplies the log-likelihood (evidence points per nat).
    points_per_nat: float = Field(ge=0)
    # Fewer (non-credit) order lines than this: no purchase evidence.
    min_order_lines: int = Field(ge=1)
    # Candidate concentrations of the per-sub-segment Dirichlet: the one that fits the training
    # customers best is used (small = customers' mixes stray far from their sub-segment's).
    concentration_grid: list[float] = Field(min_length=1)
    # dim_customer flags of customers whose purchases are not their own industry's (they buy for
    # others): no purchase evidence for them, and they do not train the model.
    exclude_customers_flagged: list[str] = []
    # A customer's purchase evidence is capped at this many points against any sub-segment.
    max_points: float = Field(gt=0)


class NameInference(_Strict):
    """Words of the customer's record names (legal forms stripped) vs the words of customers whose
    sub-segment the sources above decide (Bernoulli naive Bayes over present words)."""

    points_per_nat: float = Field(ge=0)
    min_word_length: int = Field(ge=1)
    # Longer words also count by their first letters (a stem); 0 = whole words only.
    stem_length: int = Field(0, ge=0)
    # A word must appear in at least this many training customers' names to count.
    min_customers_per_word: int = Field(ge=1)
    # Additive smoothing of the per-sub-segment word frequencies.
    smoothing: float = Field(gt=0)
    max_points: float = Field(gt=0)


class InferenceSettings(_Strict):
    purchases: PurchaseInference
    names: NameInference
    # Customers train the inference models when the sources above decide their sub-segment by
    # at least this margin (points of the best minus the second best sub-segment).
    training_min_margin: float = Field(ge=0)
    # Cross-fitting: a customer's own labels never train the model that scores it.
    folds: int = Field(ge=2)
    # Weight of the sub-segment base rates (log share among the training customers), and the
    # customers added to each sub-segment's count first (so a rare one is not ruled out).
    prior_weight: float = Field(ge=0)
    prior_pseudo_customers: float = Field(gt=0)


class IndustrySettings(_Strict):
    """Industry segment and sub-segment (DESIGN.md "Segments", 1)."""

    unassigned: str = "Unassigned"
    # When each taxonomy version (seeds/segment_taxonomy.csv added_in_scheme_version) went live
    # in the CRM picklists. A picklist set before a sub-segment went live may name an older
    # sub-segment of the same segment for its accounts: it counts for both.
    taxonomy_versions_live_from: dict[str, dt.date] = {}
    # Labels and picklists of soft-deleted source records count with this factor.
    deleted_record_factor: float = Field(ge=0, le=1)
    picklist: PicklistRules
    # Per label field (`<system>.<field>` of int_customer_legacy_labels_mapped).
    legacy_labels: dict[str, LabelWeight]
    # Precedence: when legacy labels decide, only sub-segments they support are candidates
    # (inference only chooses among them); false = the best-scoring sub-segment overall.
    legacy_decides_among_its_candidates: bool = True
    inference: InferenceSettings
    # Inference alone assigns only when its segment is at least this probable; else Unassigned.
    min_inference_confidence: float = Field(ge=0, le=1)
    # Below this segment confidence an assignment is provisional.
    provisional_below_confidence: float = Field(ge=0, le=1)


class SegmentationSettings(_Strict):
    scheme_version: str
    customer_value: CustomerValueSettings
    service_tier: ServiceTierSettings
    value_profile: ValueProfileSettings
    industry: IndustrySettings
    history: HistorySettings
    clustering: ClusteringSettings


def load_segmentation_settings(path: Path | None = None) -> SegmentationSettings:
    path = path or Path(os.environ.get(SEGMENTATION_ENV) or SEGMENTATION_FILE)
    return SegmentationSettings.model_validate(yaml.safe_load(path.read_text()))


@cache
def segmentation_settings() -> SegmentationSettings:
    return load_segmentation_settings()
