"""The generator's inputs as data: the business taxonomy (seeds/), its vocabulary, the contract.

The taxonomy, value profiles and value drivers come from the same seeds the pipeline uses, so the
ground truth speaks the business's language. The vocabulary (names, legacy labels, countries,
products) is `vocabulary.yml` beside this module. The column lists per entity come from the
source contract (ingest/contract.yml).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from dagster_project.paths import CONTRACT_FILE, SEEDS_DIR

VOCABULARY_FILE = Path(__file__).with_name("vocabulary.yml")
SERVICE_TIERS = ("High-touch", "Medium-touch", "Low-touch")


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # str | int | dec | date | ts | bool
    required: bool


@dataclass(frozen=True)
class EntityContract:
    name: str  # e.g. "crm/accounts"
    columns: tuple[Column, ...]

    @property
    def system(self) -> str:
        return self.name.split("/", 1)[0]

    @property
    def entity(self) -> str:
        return self.name.split("/", 1)[1]

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


@dataclass(frozen=True)
class World:
    """Everything the generator draws names, labels and structure from."""

    segments: tuple[str, ...]  # segment of each sub-segment, aligned with sub_segments
    sub_segments: tuple[str, ...]
    sub_segment_scheme_version: tuple[int, ...]
    value_profiles: tuple[str, ...]
    profile_business_model: tuple[str, ...]
    profile_environment: tuple[str, ...]
    drivers: tuple[str, ...]  # all rated drivers, in the ratings file's column order
    core_drivers: tuple[str, ...]  # the drivers the business finally uses
    profile_driver_rank: np.ndarray  # (profiles, drivers): 1 = most important
    business_models: tuple[str, ...]
    environments: tuple[str, ...]
    vocab: dict[str, Any]
    contract: dict[str, EntityContract]

    def profile_of(self, business_model: np.ndarray, environment: np.ndarray) -> np.ndarray:
        """Index of the value profile in the (business model, environment) cell."""
        lookup = {
            (bm, env): i
            for i, (bm, env) in enumerate(
                zip(self.profile_business_model, self.profile_environment, strict=True)
            )
        }
        cells = np.array(
            [[lookup[(bm, env)] for env in self.environments] for bm in self.business_models]
        )
        return cells[business_model, environment]

    @property
    def unique_segments(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self.segments))


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def _load_contract(path: Path) -> dict[str, EntityContract]:
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    return {
        name: EntityContract(
            name=name,
            columns=tuple(
                Column(col, spec["type"], bool(spec.get("required", False)))
                for col, spec in entity["columns"].items()
            ),
        )
        for name, entity in raw["entities"].items()
    }


@cache
def load_world(seeds_dir: Path = SEEDS_DIR, contract_file: Path = CONTRACT_FILE) -> World:
    """Read the seeds, the vocabulary and the contract once per process."""
    taxonomy = _read_csv(seeds_dir / "segment_taxonomy.csv")
    profiles = _read_csv(seeds_dir / "value_profiles.csv")
    drivers = _read_csv(seeds_dir / "value_drivers.csv")
    vocab = yaml.safe_load(VOCABULARY_FILE.read_text(encoding="utf-8"))
    contract = _load_contract(contract_file)

    driver_names = tuple(r["driver"] for r in drivers)
    rating_columns = contract["crm/value_driver_ratings"].column_names
    missing = [d for d in driver_names if d not in rating_columns]
    if missing:
        raise ValueError(f"value_drivers.csv names drivers the ratings contract lacks: {missing}")
    ranks = np.zeros((len(profiles), len(driver_names)), dtype=np.int64)
    for p, row in enumerate(profiles):
        order = row["driver_priority"].split("|")
        if sorted(order) != sorted(driver_names):
            raise ValueError(f"value profile {row['value_profile']!r} must rank every driver once")
        for position, driver in enumerate(order, start=1):
            ranks[p, driver_names.index(driver)] = position

    known_sub_segments = {r["sub_segment"] for r in taxonomy}
    unknown = set(vocab["sub_segments"]) ^ known_sub_segments
    if unknown:
        raise ValueError(f"vocabulary.yml and segment_taxonomy.csv disagree on {sorted(unknown)}")

    return World(
        segments=tuple(r["segment"] for r in taxonomy),
        sub_segments=tuple(r["sub_segment"] for r in taxonomy),
        sub_segment_scheme_version=tuple(int(r["added_in_scheme_version"]) for r in taxonomy),
        value_profiles=tuple(r["value_profile"] for r in profiles),
        profile_business_model=tuple(r["business_model"] for r in profiles),
        profile_environment=tuple(r["operating_environment"] for r in profiles),
        drivers=driver_names,
        core_drivers=tuple(r["driver"] for r in drivers if r["is_core"].lower() == "true"),
        profile_driver_rank=ranks,
        business_models=tuple(dict.fromkeys(r["business_model"] for r in profiles)),
        environments=tuple(dict.fromkeys(r["operating_environment"] for r in profiles)),
        vocab=vocab,
        contract=contract,
    )
