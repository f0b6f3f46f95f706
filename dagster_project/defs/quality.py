"""Quality gates: one Dagster asset check per expectation suite (expectations/), on the asset
the suite checks. Written here because dagster-ge does not support GX 1.x.

A check blocks (nothing downstream materialises, so nothing is published) when its suite has
an expectation whose policy is "error" in config/pipeline.yml `severity:` and that expectation
fails; failures of "warn" policies let the run publish. Either way the offending keys become
steward findings (kind failed_expectation) in steward.findings__quality__<schema>__<table>.
"""

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetKey,
    MetadataValue,
    asset_check,
)

from dagster_project.quality.suites import SuiteSpec, project_suites
from dagster_project.resources import WarehouseResource
from dagster_project.settings import settings

CHECK_NAME = "expectation_suite"


def _build_suite_check(suite: SuiteSpec) -> AssetChecksDefinition:
    blocking = suite.is_blocking(settings())
    rules = sorted({f"{e.rule} ({settings().severity_of(e.policy)})" for e in suite.expectations})

    @asset_check(
        asset=AssetKey(suite.asset_path),
        name=CHECK_NAME,
        blocking=blocking,
        description=f"Great Expectations suite {suite.name} ({len(suite.expectations)} "
        f"expectations, run as SQL in DuckDB): {', '.join(rules)}.",
    )
    def _check(
        context: AssetCheckExecutionContext, warehouse: WarehouseResource
    ) -> AssetCheckResult:
        # GX is imported only when a check runs (it costs seconds at definitions import).
        from dagster_project.quality.validate import record_findings, validate_suite
        from dagster_project.warehouse import duckdb_config

        policy = settings()
        outcome = validate_suite(
            warehouse.paths.warehouse,
            suite,
            project_dir=warehouse.paths.docs / "gx" if policy.quality.data_docs else None,
            policy=policy,
            duckdb_config=duckdb_config(),
        )
        with warehouse.connect() as con:
            findings_table = record_findings(con, outcome)
        for failure in outcome.failed:
            context.log.warning(f"{suite.name}: {failure.summary()} [{failure.severity}]")
        return AssetCheckResult(
            passed=outcome.success,
            severity=AssetCheckSeverity.ERROR
            if outcome.blocking_failures
            else AssetCheckSeverity.WARN,
            description=outcome.description(),
            metadata={
                "expectations": len(outcome.expectations),
                "failed": len(outcome.failed),
                "failed_blocking": len(outcome.blocking_failures),
                "failed_rules": MetadataValue.json(
                    {e.spec.rule: e.unexpected_count for e in outcome.failed}
                ),
                "validated_in": outcome.queries_dialect,
                "seconds": round(outcome.seconds, 3),
                "findings_table": findings_table,
            },
        )

    return _check


quality_checks = [_build_suite_check(s) for s in project_suites()]
# The assets the suites check: publication must depend on each of them (defs/publish.py).
QUALITY_GATED_ASSETS = [AssetKey(s.asset_path) for s in project_suites()]
