"""Matching a file's columns (CSV header or Parquet schema) against the entity's contract.

Columns may come in any order. Names match case-insensitively and ignoring surrounding blanks
(DuckDB identifiers are case-insensitive, so 'Account_ID' and 'account_id' could not be two raw
columns anyway). Unknown columns are schema drift: kept as VARCHAR, reported. A missing required
column rejects the file.
"""

from __future__ import annotations

from dataclasses import dataclass

from dagster_project.ingest.contract import EntitySpec
from dagster_project.ingest.csv_records import HeaderInfo
from dagster_project.ingest.raw_tables import METADATA_COLUMNS


@dataclass(frozen=True)
class SchemaMatch:
    names: list[str]  # per file position: the contract's spelling, or the drift column's name
    contract_positions: dict[str, int]  # contract column -> file position
    extra: list[str]  # drift columns, in file order
    missing_required: list[str]
    missing_optional: list[str]
    duplicates: list[str]

    @property
    def acceptable(self) -> bool:
        return not self.missing_required and not self.duplicates

    def header_info(self, spec: EntitySpec) -> HeaderInfo:
        positions = self.contract_positions
        return HeaderInfo(
            names=self.names,
            key_indexes=[positions[k] for k in spec.key if k in positions],
            personal_indexes=frozenset(positions[p] for p in spec.personal if p in positions),
        )


def match_columns(file_columns: list[str], spec: EntitySpec) -> SchemaMatch:
    by_lower = {name.lower(): name for name in spec.columns}
    names: list[str] = []
    positions: dict[str, int] = {}
    extra: list[str] = []
    seen: set[str] = set()
    duplicates: list[str] = []
    for index, raw_name in enumerate(file_columns):
        name = raw_name.strip() or f"column_{index + 1}"  # a header ending in ',' names nothing
        lower = name.lower()
        if lower in seen:
            duplicates.append(name)
        seen.add(lower)
        if lower in by_lower:
            canonical = by_lower[lower]
            positions.setdefault(canonical, index)
            names.append(canonical)
        else:
            if lower in METADATA_COLUMNS:  # would shadow ingest's own bookkeeping column
                name = f"source{name}"
            extra.append(name)
            names.append(name)
    missing = [c for c in spec.columns if c not in positions]
    return SchemaMatch(
        names=names,
        contract_positions=positions,
        extra=extra,
        missing_required=[c for c in missing if spec.columns[c].required],
        missing_optional=[c for c in missing if not spec.columns[c].required],
        duplicates=duplicates,
    )
