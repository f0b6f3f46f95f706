"""Validated identity settings: config/identity.yml (thresholds, blocking, chaining guard) and the
legal-form seed. A typo in the YAML fails at load time with the key named, not mid-run."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from dagster_project.paths import SEEDS_DIR

IDENTITY_CONFIG_FILE = Path(__file__).resolve().parents[1] / "config" / "identity.yml"
LEGAL_FORMS_SEED = SEEDS_DIR / "identity_legal_forms.csv"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NormalisationSettings(_Strict):
    transliteration: dict[str, str]
    street_abbreviations: dict[str, str] = {}
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


class IdentitySettings(_Strict):
    normalisation: NormalisationSettings
    model: ModelSettings
    decision: DecisionSettings
    clustering: ClusteringSettings = ClusteringSettings()


def load_identity_settings(path: Path = IDENTITY_CONFIG_FILE) -> IdentitySettings:
    with open(path, encoding="utf-8") as f:
        return IdentitySettings.model_validate(yaml.safe_load(f))


@cache
def identity_settings() -> IdentitySettings:
    return load_identity_settings()


def load_legal_forms(path: Path = LEGAL_FORMS_SEED) -> pd.DataFrame:
    """legal_form, spelling: every way a legal form is written (seed, editable by stewards)."""
    forms = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = {"legal_form", "spelling"} - set(forms.columns)
    if missing:
        raise ValueError(f"{path.name}: missing columns {sorted(missing)}")
    return forms[(forms["legal_form"] != "") & (forms["spelling"] != "")]
