"""Quality gates: one Dagster asset check per expectation suite (expectations/), on the asset
the suite checks, run as one Dagster step per layer (warehouse schema: raw, staging, marts,
segments) so the suites of a layer share one GX context, one engine and one Data Docs build.
Written here because dagster-ge does not support GX 1.x.

A check blocks (nothing downstream materialises, so nothing is published) when its suite has
an expectation whose policy is "error" in config/pipeline.yml `severity:` and that expectation
fails; failures of "warn" policies let the run publish. Either way the offending keys become
steward findings in steward.findings__quality__<schema>__<table>.

A layer's step runs once every asset of the layer is materialised. That is sound because the
assets of one layer are built by one step (or, for raw, by steps that do not depend on each
other): a layer check never waits for an asset downstream of one it gates.
"""

from collections.abc import Iterator

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckKey,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetKey,
    MetadataValue,
    get_dagster_logger,
    multi_asset_check,
)

from dagster_project.defs.identity import customer_identity
from dagster_project.defs.ingest import raw_extracts
from dagster_project.defs.segmentation import customer_segmentation
from dagster_project.defs.transform import dbt_customer_marts, dbt_staging_and_facts
from dagster_project.publish.prestage import after_quality_gate
from dagster_project.quality.suites import SuiteSpec, project_suites, suites_by_layer
from dagster_project.resources import WarehouseResource
from dagster_project.settings import settings

CHECK_NAME = "expectation_suite"
# The Dagster assets that build the tables the suites check (raw, staging, marts, segments).
DEFINED_ASSETS = {
    key
    for definition in (
        raw_extracts,
        dbt_staging_and_facts,
        customer_identity,
        dbt_customer_marts,
        customer_segmentation,
    )
    for key in definition.keys
}


def attached_suites() -> list[SuiteSpec]:
    """The suites whose table an asset of this project builds. A suite written ahead of its
    table (another change adds the asset) waits, loudly; tests require none to wait."""
    attached = [s for s in project_suites() if AssetKey(s.asset_path) in DEFINED_ASSETS]
    waiting = sorted(s.name for s in project_suites() if s not in attached)
    if waiting:
        get_dagster_logger().warning(
            f"expectation suites without a Dagster asset, not run: {', '.join(waiting)}"
        )
    return attached


def _result(outcome, findings_table: str, validated_ahead: bool) -> AssetCheckResult:
    suite = outcome.suite
    return AssetCheckResult(
        asset_key=AssetKey(suite.asset_path),
        check_name=CHECK_NAME,
        passed=outcome.success,
        severity=AssetCheckSeverity.ERROR if outcome.blocking_failures else AssetCheckSeverity.WARN,
        description=outcome.description(),
        metadata={
            "expectations": len(outcome.expectations),
            "failed": len(outcome.failed),
            "failed_blocking": len(outcome.blocking_failures),
            "failed_rules": MetadataValue.json(
                {e.spec.rule: e.unexpected_count for e in outcome.failed}
            ),
            "validated_in": outcome.queries_dialect,
            "validated_ahead": validated_ahead,
            "seconds": round(outcome.seconds, 3),
            "findings_table": findings_table,
        },
    )


def _spec(suite: SuiteSpec) -> AssetCheckSpec:
    policy = settings()
    rules = sorted({f"{e.rule} ({policy.severity_of(e.policy)})" for e in suite.expectations})
    return AssetCheckSpec(
        name=CHECK_NAME,
        asset=AssetKey(suite.asset_path),
        blocking=suite.is_blocking(policy),
        description=f"Great Expectations suite {suite.name} ({len(suite.expectations)} "
        f"expectations, run as SQL in DuckDB): {', '.join(rules)}.",
    )


def _build_layer_check(layer: str, suites: list[SuiteSpec]) -> AssetChecksDefinition:
    by_key = {AssetCheckKey(AssetKey(s.asset_path), CHECK_NAME): s for s in suites}

    @multi_asset_check(
        specs=[_spec(s) for s in suites],
        name=f"quality_gates_{layer}",
        can_subset=True,
        description=f"Great Expectations suites of the {layer} layer, validated together.",
    )
    def _check(
        context: AssetCheckExecutionContext, warehouse: WarehouseResource
    ) -> Iterator[AssetCheckResult]:
        # GX is imported only when a check runs (it costs seconds at definitions import).
        from dagster_project.quality import ahead
        from dagster_project.quality.gate import run_quality_gate
        from dagster_project.warehouse import duckdb_config

        policy = settings()
        selected = [s for key, s in by_key.items() if key in context.selected_asset_check_keys]
        paths = warehouse.paths
        # validated beside an earlier step (quality/ahead.py: the staging suites beside identity)
        validated = ahead.claim(context.run.run_id, selected)
        results = run_quality_gate(
            paths.warehouse,
            selected,
            run_name=context.run.run_id,
            published_db=paths.published_db,
            project_dir=paths.docs / "gx" if policy.quality.data_docs else None,
            policy=policy,
            duckdb_config=duckdb_config(),
            # rendered while the next step runs (quality/data_docs.py)
            data_docs_in_background=True,
            validated=validated,
        )
        # Publication's export of the facts starts in the background once they passed (and is
        # dropped if anything blocked): publish/prestage.py
        after_quality_gate(
            context,
            paths,
            checked=[AssetKey(outcome.suite.asset_path) for outcome, _ in results],
            blocked=any(outcome.blocking_failures for outcome, _ in results),
        )
        for outcome, findings_table in results:
            for failure in outcome.failed:
                context.log.warning(
                    f"{outcome.suite.name}: {failure.summary()} [{failure.severity}]"
                )
            yield _result(outcome, findings_table, validated_ahead=validated is not None)

    return _check


_ATTACHED = attached_suites()
quality_checks = [
    _build_layer_check(layer, suites) for layer, suites in suites_by_layer(_ATTACHED).items()
]
# The assets the suites check: publication must depend on each of them (defs/publish.py).
QUALITY_GATED_ASSETS = [AssetKey(s.asset_path) for s in _ATTACHED]
