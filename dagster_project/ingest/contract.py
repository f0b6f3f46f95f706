"""The source contract (contract.yml) as validated Python objects.

contract.yml is the machine-readable form of shared/source_contract.md: which entities a landing
folder holds, their columns, types, required flags, keys and personal columns, and the per-system
date and boolean formats. Ingest validates every file against it; nothing else in ingest hard-codes
a column name.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from dagster_project.paths import CONTRACT_FILE

ColumnType = Literal["str", "int", "dec", "date", "ts", "bool"]

# The raw layer's physical type for each contract type (common.md, RAW LAYER).
RAW_SQL_TYPE: dict[str, str] = {
    "str": "VARCHAR",
    "int": "BIGINT",
    "dec": "DECIMAL(18,4)",
    "date": "DATE",
    "ts": "TIMESTAMPTZ",
    "bool": "BOOLEAN",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SystemFormats(_Strict):
    """How one source system writes dates and booleans."""

    date_format: str
    null_dates: list[str] = Field(default_factory=list)
    true_values: list[str]
    false_values: list[str] = Field(default_factory=list)

    @property
    def empty_bool_is_false(self) -> bool:
        # A system without explicit false values (ERP: 'X' or empty) writes false as empty.
        return not self.false_values


class ColumnSpec(_Strict):
    type: ColumnType
    required: bool = False


class EntitySpec(_Strict):
    """One landing entity, e.g. crm/accounts."""

    name: str = ""  # filled from the mapping key
    key: list[str]
    version_by: list[str] = Field(default_factory=list)
    personal: list[str] = Field(default_factory=list)
    columns: dict[str, ColumnSpec]

    @model_validator(mode="after")
    def _referenced_columns_exist(self) -> EntitySpec:
        for role in ("key", "version_by", "personal"):
            unknown = [c for c in getattr(self, role) if c not in self.columns]
            if unknown:
                raise ValueError(f"{self.name or 'entity'}: {role} names unknown columns {unknown}")
        if not self.key:
            raise ValueError(f"{self.name or 'entity'}: a key is required")
        return self

    @property
    def system(self) -> str:
        return self.name.split("/", 1)[0]

    @property
    def entity(self) -> str:
        return self.name.split("/", 1)[1]

    @property
    def raw_table(self) -> str:
        """Unqualified raw table name, e.g. crm__accounts."""
        return f"{self.system}__{self.entity}"

    @property
    def required_columns(self) -> list[str]:
        return [c for c, spec in self.columns.items() if spec.required]


class Contract(_Strict):
    systems: dict[str, SystemFormats]
    entities: dict[str, EntitySpec]

    @model_validator(mode="before")
    @classmethod
    def _name_entities(cls, data: dict) -> dict:
        entities = data.get("entities") or {}
        data["entities"] = {
            name: {**spec, "name": name} if isinstance(spec, dict) else spec
            for name, spec in entities.items()
        }
        return data

    @model_validator(mode="after")
    def _entities_belong_to_systems(self) -> Contract:
        for name in self.entities:
            system, _, entity = name.partition("/")
            if not entity or system not in self.systems:
                raise ValueError(f"entity {name!r} must be '<system>/<entity>' with a known system")
        return self

    def entity(self, name: str) -> EntitySpec:
        try:
            return self.entities[name]
        except KeyError:
            raise KeyError(f"{name!r} is not an entity of the source contract") from None

    def formats(self, entity: EntitySpec) -> SystemFormats:
        return self.systems[entity.system]


def load_contract(path: Path | None = None) -> Contract:
    """Parse and validate contract.yml (the packaged one unless `path` is given)."""
    if path is None:
        return _packaged_contract()
    return Contract.model_validate(yaml.safe_load(Path(path).read_text(encoding="utf-8")))


@cache
def _packaged_contract() -> Contract:
    return Contract.model_validate(yaml.safe_load(CONTRACT_FILE.read_text(encoding="utf-8")))
