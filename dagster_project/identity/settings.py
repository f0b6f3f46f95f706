"""Validated identity settings: config/identity.yml (evidence rules, model, thresholds, chaining
guard, merger predecessors). A typo in the YAML fails at load time with the key named, not mid-run.
The spelling vocabularies (legal forms, transliterations, street words) are seeds that dbt's
int_customer_match_records applies."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

IDENTITY_CONFIG_FILE = Path(__file__).resolve().parents[1] / "config" / "identity.yml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NormalisationSettings(_Strict):
    """Which normalised values count as evidence (dbt normalises them)."""

    ignored_domains: list[str] = []
    min_vat_length: int = Field(8, ge=1)


class ModelSettings(_Strict):
    blocking_rules: list[list[str]] = Field(min_length=1)
    em_training_blocks: list[list[str]] = Field(min_length=1)
    u_sampling_max_pairs: int = Field(2_000_000, ge=1_000)
    prior_rules_recall: float = Field(0.6, gt=0, le=1)
    name_max_edit_distances: list[int] = Field(min_length=1)
    name_similarity_thresholds: list[float] = []
    street_similarity_threshold: float = Field(0.92, gt=0, le=1)
    city_similarity_threshold: float = Field(0.9, gt=0, le=1)
    seed: int = 42


class DecisionSettings(_Strict):
    merge_threshold: float = Field(gt=0, le=1)
    review_threshold: float = Field(gt=0, le=1)

    @model_validator(mode="after")
    def _band_is_ordered(self) -> DecisionSettings:
        if self.review_threshold > self.merge_threshold:
            raise ValueError("decision.review_threshold must not exceed merge_threshold")
        return self


class ClusteringSettings(_Strict):
    max_cluster_size: int = Field(12, ge=2)
    refuse_distinct_vat_ids: bool = True


PREDECESSOR_EVIDENCE = ("web_domain", "crm_parent_account")


class PredecessorSettings(_Strict):
    """Records of companies absorbed by a merger (identity/predecessors.py)."""

    enabled: bool = False
    evidence: list[str] = list(PREDECESSOR_EVIDENCE)
    vat_ids_change_on_mergers: bool = True

    @model_validator(mode="after")
    def _known_evidence(self) -> PredecessorSettings:
        unknown = sorted(set(self.evidence) - set(PREDECESSOR_EVIDENCE))
        if unknown:
            raise ValueError(
                f"predecessors.evidence: unknown {unknown}, use {PREDECESSOR_EVIDENCE}"
            )
        return self


class IdentitySettings(_Strict):
    normalisation: NormalisationSettings
    model: ModelSettings
    decision: DecisionSettings
    clustering: ClusteringSettings = ClusteringSettings()
    predecessors: PredecessorSettings = PredecessorSettings()


def load_identity_settings(path: Path = IDENTITY_CONFIG_FILE) -> IdentitySettings:
    with open(path, encoding="utf-8") as f:
        return IdentitySettings.model_validate(yaml.safe_load(f))


@cache
def identity_settings() -> IdentitySettings:
    return load_identity_settings()
