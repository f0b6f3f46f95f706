"""The expectation suites of expectations/ (a GX 1.x file project, versioned in git).

Each suite is a GX suite JSON file with additions of ours in `meta`:
- suite `meta.segments`: the warehouse table it checks (`asset`, schema.table, which is also
  the Dagster asset the check attaches to; its schema is the suite's layer, validated in one
  Dagster step with the other suites of that layer), the `batch_query` GX validates (the table
  plus a `record_key` column: the key a steward finds the row by), the `source_system`/`entity`
  the findings are filed under, and optionally `prepare`: warehouse tables the gate builds
  before validating (quality/baseline.py; e.g. the previous publication's segment shares);
- expectation `meta.rule` (a stable name for the steward queue), `meta.policy` (a key of
  `severity:` in config/pipeline.yml: whether a failure blocks publication or warns) and
  optionally `meta.kind` (the steward queue kind, default failed_expectation).

Rules that every suite of a layer shares (the raw layer's load lineage: every raw table has the
same lineage columns and is keyed by its file line) are written once, in
expectations/layer_rules/<layer>.json, and put ahead of each suite's own expectations here; a
suite that copies one is refused.

Allowed sets come from the warehouse itself (the dbt seeds in schema `seeds`, e.g. `segment in
(select segment from seeds.segment_taxonomy)`); values that live in config instead (service
tiers, tolerances, bounds, plausible dates) are written `${name}` in the SQL and replaced here
by SQL literals from the validated config (`suite_parameters`), so a threshold is never copied
into a suite. The files are read as plain JSON: loading them needs no GX import.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from dagster_project.paths import EXPECTATIONS_DIR
from dagster_project.settings import PipelineSettings, Severity, settings

SUITES_DIR = EXPECTATIONS_DIR / "expectations"
LAYER_RULES_DIR = EXPECTATIONS_DIR / "layer_rules"
RECORD_KEY = "record_key"
DEFAULT_KIND = "failed_expectation"
# Steward queue kinds an expectation may file its rows under (DESIGN.md "The steward queue").
FINDING_KINDS = frozenset(
    {
        DEFAULT_KIND,
        "orphan_reference",
        "missing_picklist",
        "inconsistent_picklist",
        "distribution_shift",
    }
)
# Tables the gate can build before validating (quality/baseline.py builds them).
PREPARATIONS = frozenset({"previous_publication_shares"})
PARAMETER = re.compile(r"\$\{(\w+)\}")


class SuiteError(ValueError):
    """A suite file breaks our conventions (named in the message)."""


@dataclass(frozen=True)
class ExpectationSpec:
    type: str
    kwargs: dict[str, Any]  # with ${parameters} replaced
    rule: str
    policy: str
    kind: str
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
    prepare: tuple[str, ...]
    raw: dict[str, Any]
    path: Path

    @property
    def asset_path(self) -> list[str]:
        return self.asset.split(".")

    @property
    def layer(self) -> str:
        """The warehouse schema: the suites of one layer are validated in one Dagster step."""
        return self.asset_path[0]

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


def sql_literal(value: Any) -> str:
    """A config value as a DuckDB SQL literal (a list becomes a parenthesised IN-list)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, dt.date):
        return f"date '{value.isoformat()}'"
    if isinstance(value, list | tuple):
        return "(" + ", ".join(sql_literal(v) for v in value) + ")"
    return "'" + str(value).replace("'", "''") + "'"


def suite_parameters(policy: PipelineSettings) -> dict[str, str]:
    """The `${name}` values suites may use, as SQL text, from the validated config."""
    from dagster_project.segmentation.settings import segmentation_settings

    quality = policy.quality
    segmentation = segmentation_settings()
    return {
        "reconciliation_tolerance": sql_literal(quality.reconciliation.tolerance),
        "earliest_event_date": sql_literal(quality.plausible_dates.earliest_event),
        "earliest_master_data_date": sql_literal(quality.plausible_dates.earliest_master_data),
        "extract_grace_days": sql_literal(quality.plausible_dates.extract_grace_days),
        # Column names (validated identifiers in settings), pasted as a column list.
        "distribution_columns": ", ".join(quality.distribution.columns),
        "distribution_max_share_change": sql_literal(quality.distribution.max_share_change),
        "distribution_min_customers": sql_literal(quality.distribution.min_customers),
        "service_tiers": sql_literal([t.tier for t in segmentation.service_tier.tiers]),
        "unassigned_segment": sql_literal(segmentation.industry.unassigned),
        "no_purchase_group": sql_literal(segmentation.customer_value.no_purchase_group),
        "rfm_bins": sql_literal(segmentation.customer_value.rfm_bins),
    }


def _substitute(suite: str, value: Any, parameters: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {k: _substitute(suite, v, parameters) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(suite, v, parameters) for v in value]
    if not isinstance(value, str):
        return value

    def replace(match: re.Match) -> str:
        name = match.group(1)
        if name not in parameters:
            known = ", ".join(sorted(parameters))
            raise SuiteError(f"suite {suite}: unknown parameter ${{{name}}} (known: {known})")
        # GX formats the query with str.format ({batch}): braces in a value must stay literal.
        return parameters[name].replace("{", "{{").replace("}", "}}")

    return PARAMETER.sub(replace, value)


def _expectation(suite: str, raw: dict[str, Any], parameters: dict[str, str]) -> ExpectationSpec:
    meta = raw.get("meta") or {}
    for key in ("rule", "policy"):
        if not meta.get(key):
            raise SuiteError(f"suite {suite}: expectation {raw.get('type')} has no meta.{key}")
    kind = meta.get("kind") or DEFAULT_KIND
    if kind not in FINDING_KINDS:
        raise SuiteError(
            f"suite {suite}: rule {meta['rule']} has kind {kind!r}, not one of "
            f"{', '.join(sorted(FINDING_KINDS))}"
        )
    kwargs = _substitute(suite, raw.get("kwargs") or {}, parameters)
    return ExpectationSpec(
        type=raw["type"],
        kwargs=kwargs,
        rule=meta["rule"],
        policy=meta["policy"],
        kind=kind,
        column=meta.get("column")
        or kwargs.get("column")
        or ",".join(kwargs.get("column_list", []))
        or None,
        description=raw.get("description"),
        raw=raw,
    )


def layer_rules(layer: str) -> list[dict[str, Any]]:
    """The expectations every suite of `layer` starts with (none for most layers)."""
    path = LAYER_RULES_DIR / f"{layer}.json"
    if not path.exists():
        return []
    return json.loads(path.read_text(encoding="utf-8"))["expectations"]


def _with_layer_rules(name: str, layer: str, own: list[dict[str, Any]]) -> list[dict[str, Any]]:
    shared = layer_rules(layer)
    copied = sorted(
        {(e.get("meta") or {}).get("rule") for e in own} & {e["meta"]["rule"] for e in shared}
    )
    if copied:
        raise SuiteError(
            f"suite {name}: {', '.join(copied)} is a rule of every {layer} suite "
            f"(expectations/layer_rules/{layer}.json); do not copy it into the suite"
        )
    return [*shared, *own]


def load_suite(path: Path, parameters: dict[str, str] | None = None) -> SuiteSpec:
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
    prepare = tuple(ours.get("prepare") or ())
    unknown = sorted(set(prepare) - PREPARATIONS)
    if unknown:
        raise SuiteError(f"suite {name}: unknown meta.segments.prepare {', '.join(unknown)}")
    parameters = suite_parameters(settings()) if parameters is None else parameters
    layer = ours["asset"].split(".")[0]
    expectations = _with_layer_rules(name, layer, raw.get("expectations") or [])
    return SuiteSpec(
        name=name,
        asset=ours["asset"],
        source_system=ours["source_system"],
        entity=ours["entity"],
        batch_query=_substitute(name, ours["batch_query"], parameters),
        expectations=tuple(_expectation(name, e, parameters) for e in expectations),
        prepare=prepare,
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
    policy = policy or settings()
    parameters = suite_parameters(policy)
    suites = [load_suite(p, parameters) for p in sorted(folder.glob("*.json"))]
    assets = [s.asset for s in suites]
    duplicated = sorted({a for a in assets if assets.count(a) > 1})
    if duplicated:
        raise SuiteError(f"one suite per asset: several suites check {', '.join(duplicated)}")
    check_policies(suites, policy)
    return suites


@cache
def project_suites() -> tuple[SuiteSpec, ...]:
    return tuple(load_suites())


def suites_by_layer(suites: tuple[SuiteSpec, ...] | list[SuiteSpec]) -> dict[str, list[SuiteSpec]]:
    layers: dict[str, list[SuiteSpec]] = {}
    for suite in suites:
        layers.setdefault(suite.layer, []).append(suite)
    return layers


def build_gx_suite(spec: SuiteSpec):
    """The GX ExpectationSuite of a spec (imports GX: call it only when validating)."""
    import great_expectations as gx
    from great_expectations.expectations.expectation_configuration import (
        ExpectationConfiguration,
    )

    # Built in one go: adding one by one would let GX merge SQL rules of the same table domain.
    expectations = [
        ExpectationConfiguration(
            type=e.type,
            kwargs=_sample_in_key_order(e.kwargs),
            meta=e.raw.get("meta"),
            description=e.description,
        ).to_domain_obj()
        for e in spec.expectations
    ]
    return gx.ExpectationSuite(
        name=spec.name,
        expectations=expectations,
        meta=spec.raw.get("meta"),
        notes=spec.raw.get("notes"),
    )


def _sample_in_key_order(kwargs: dict[str, Any]) -> dict[str, Any]:
    """An unexpected-rows rule's offending rows ordered by record key. GX keeps the first 200
    rows a rule returns (the steward findings); in the query's own order they were whichever
    rows the scan met first, a different sample after each rebuild of the table."""
    query = kwargs.get("unexpected_rows_query")
    if query is None:
        return kwargs
    return {
        **kwargs,
        "unexpected_rows_query": f"select * from ({query}) as unexpected order by {RECORD_KEY}",
    }
