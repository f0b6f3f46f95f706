"""The expectation suites of expectations/ (a GX 1.x file project, versioned in git).

Each suite is a GX suite JSON file with two additions of ours in `meta`:
- suite `meta.segments`: the warehouse table it checks (`asset`, schema.table, which is also
  the Dagster asset the check attaches to), the `batch_query` GX validates (the table plus a
  `record_key` column: the key a steward finds the row by) and the `source_system`/`entity`
  the findings are filed under;
- expectation `meta.rule` (a stable name for the steward queue) and `meta.policy` (a key of
  `severity:` in config/pipeline.yml: whether a failure blocks publication or warns).

The files are read as plain JSON so that loading them needs no GX import and no GX context.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from dagster_project.paths import EXPECTATIONS_DIR
from dagster_project.settings import PipelineSettings, Severity, settings

SUITES_DIR = EXPECTATIONS_DIR / "expectations"
RECORD_KEY = "record_key"


class SuiteError(ValueError):
    """A suite file breaks our conventions (named in the message)."""


@dataclass(frozen=True)
class ExpectationSpec:
    type: str
    kwargs: dict[str, Any]
    rule: str
    policy: str
    column: str | None
    description: str | None
    raw: dict[str, Any]


@dataclass(frozen=True)
class SuiteSpec:
    name: str
    asset: str  # schema.table
    source_system: str
    entity: str
    batch_query: str
    expectations: tuple[ExpectationSpec, ...]
    raw: dict[str, Any]
    path: Path

    @property
    def asset_path(self) -> list[str]:
        return self.asset.split(".")

    @property
    def stage(self) -> str:
        """The findings table suffix: steward.findings__quality__<schema>__<table>."""
        return "quality__" + "__".join(self.asset_path)

    def policies(self) -> set[str]:
        return {e.policy for e in self.expectations}

    def severity_of(self, expectation: ExpectationSpec, policy: PipelineSettings) -> Severity:
        return policy.severity_of(expectation.policy)

    def is_blocking(self, policy: PipelineSettings) -> bool:
        return any(policy.severity_of(p) == "error" for p in self.policies())


def _expectation(suite: str, raw: dict[str, Any]) -> ExpectationSpec:
    meta = raw.get("meta") or {}
    for key in ("rule", "policy"):
        if not meta.get(key):
            raise SuiteError(f"suite {suite}: expectation {raw.get('type')} has no meta.{key}")
    kwargs = raw.get("kwargs") or {}
    return ExpectationSpec(
        type=raw["type"],
        kwargs=kwargs,
        rule=meta["rule"],
        policy=meta["policy"],
        column=meta.get("column")
        or kwargs.get("column")
        or ",".join(kwargs.get("column_list", []))
        or None,
        description=raw.get("description"),
        raw=raw,
    )


def load_suite(path: Path) -> SuiteSpec:
    raw = json.loads(path.read_text(encoding="utf-8"))
    name = raw.get("name")
    if name != path.stem:
        raise SuiteError(f"{path}: suite name {name!r} must equal the file name {path.stem!r}")
    ours = (raw.get("meta") or {}).get("segments") or {}
    missing = [k for k in ("asset", "source_system", "entity", "batch_query") if not ours.get(k)]
    if missing:
        raise SuiteError(f"suite {name}: meta.segments lacks {', '.join(missing)}")
    if RECORD_KEY not in ours["batch_query"]:
        raise SuiteError(f"suite {name}: batch_query must select a {RECORD_KEY} column")
    if len(ours["asset"].split(".")) != 2:
        raise SuiteError(f"suite {name}: asset must be schema.table, got {ours['asset']!r}")
    return SuiteSpec(
        name=name,
        asset=ours["asset"],
        source_system=ours["source_system"],
        entity=ours["entity"],
        batch_query=ours["batch_query"],
        expectations=tuple(_expectation(name, e) for e in raw.get("expectations") or []),
        raw=raw,
        path=path,
    )


def check_policies(suites: list[SuiteSpec], policy: PipelineSettings) -> None:
    """Every policy a suite names must have a severity in config (no silent default)."""
    unknown = sorted({p for s in suites for p in s.policies()} - set(policy.severity))
    if unknown:
        raise SuiteError(
            f"expectation policies without a severity in config/pipeline.yml: {', '.join(unknown)}"
        )


def load_suites(
    folder: Path = SUITES_DIR, policy: PipelineSettings | None = None
) -> list[SuiteSpec]:
    suites = [load_suite(p) for p in sorted(folder.glob("*.json"))]
    assets = [s.asset for s in suites]
    duplicated = sorted({a for a in assets if assets.count(a) > 1})
    if duplicated:
        raise SuiteError(f"one suite per asset: several suites check {', '.join(duplicated)}")
    check_policies(suites, policy or settings())
    return suites


@cache
def project_suites() -> tuple[SuiteSpec, ...]:
    return tuple(load_suites())


def build_gx_suite(spec: SuiteSpec):
    """The GX ExpectationSuite of a spec (imports GX: call it only when validating)."""
    import great_expectations as gx
    from great_expectations.expectations.expectation_configuration import (
        ExpectationConfiguration,
    )

    # Built in one go: adding one by one would let GX merge SQL rules of the same table domain.
    expectations = [
        ExpectationConfiguration(
            type=e.type, kwargs=e.kwargs, meta=e.raw.get("meta"), description=e.description
        ).to_domain_obj()
        for e in spec.expectations
    ]
    return gx.ExpectationSuite(
        name=spec.name,
        expectations=expectations,
        meta=spec.raw.get("meta"),
        notes=spec.raw.get("notes"),
    )
