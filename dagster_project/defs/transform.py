"""dbt models as Dagster assets (dagster-dbt); dbt tests become asset checks.

Two dbt asset definitions split the project around the Python identity step: everything that
does not depend on the identity map builds first, then everything downstream of it.
"""

import importlib.metadata
import os
from functools import cached_property
from pathlib import Path

from dagster import AssetExecutionContext, Config
from dagster_dbt import DbtCliResource, dbt_assets
from packaging import version

from dagster_project.as_of import resolve_as_of
from dagster_project.fact_store import reset_before_rebuild
from dagster_project.resources import WarehouseResource
from dagster_project.run_context import as_of_for_run, record_as_of
from dagster_project.transform.dbt_forkserver import LAUNCHER, dbt_command, venv_dbt
from dagster_project.transform.project import dbt_project, finish_dbt_parse
from dagster_project.transform.translator import SegmentsDbtTranslator

DOWNSTREAM_OF_IDENTITY = "source:identity+"
# Unit tests are for CI (`dbt test --select test_type:unit`), not production runs.
EXCLUDE_ALWAYS = "resource_type:unit_test"


class DbtBuildConfig(Config):
    as_of: str | None = None
    """Ignore events after this date (YYYY-MM-DD). Default: the newest event in the landed data."""


def _build_args(as_of) -> list[str]:
    # The as-of reaches dbt as an environment variable, not --vars: changed --vars force dbt
    # to re-parse the whole project on every invocation (macro as_of_date in dbt_project/).
    os.environ["SEGMENTS_AS_OF"] = as_of.isoformat() if as_of else ""
    return ["build"]


@dbt_assets(
    manifest=dbt_project().manifest_path,
    project=dbt_project(),
    dagster_dbt_translator=SegmentsDbtTranslator(),
    exclude=f"{DOWNSTREAM_OF_IDENTITY} {EXCLUDE_ALWAYS}",
    name="dbt_staging_and_facts",
)
def dbt_staging_and_facts(
    context: AssetExecutionContext,
    dbt: DbtCliResource,
    warehouse: WarehouseResource,
    config: DbtBuildConfig,
):
    with warehouse.connect() as con:
        as_of = resolve_as_of(con, config.as_of)
        record_as_of(con, context.run_id, as_of)
    context.log.info(f"as-of date: {as_of}")
    finish_dbt_parse()
    yield from dbt.cli(_build_args(as_of), context=context).stream()


@dbt_assets(
    manifest=dbt_project().manifest_path,
    project=dbt_project(),
    dagster_dbt_translator=SegmentsDbtTranslator(),
    select=DOWNSTREAM_OF_IDENTITY,
    exclude=EXCLUDE_ALWAYS,
    name="dbt_customer_marts",
)
def dbt_customer_marts(
    context: AssetExecutionContext, dbt: DbtCliResource, warehouse: WarehouseResource
):
    with warehouse.connect() as con:
        as_of = as_of_for_run(con, context.run_id)
    reset_before_rebuild(
        context.selected_asset_keys, warehouse.paths.warehouse, dbt_project().manifest_path
    )
    finish_dbt_parse()
    yield from dbt.cli(_build_args(as_of), context=context).stream()


class SegmentsDbtCliResource(DbtCliResource):
    """dagster-dbt's DbtCliResource without the in-process dbt adapter it builds on every cli()
    call (~2.4 s of one core: dbt's project, profile and all 544 macros loaded again). The
    adapter only serves fetch_row_counts() and fetch_column_metadata(), which these assets do
    not call; dbt itself runs as before. Pinned dagster-dbt; the test suite fails if the hook
    disappears (tests/test_dbt_project.py)."""

    def _initialize_dbt_core_adapter(self, args):  # noqa: ARG002 - dagster-dbt's signature
        return None

    @cached_property
    def _cli_version(self) -> version.Version:
        """The version of the dbt that cli() runs. dagster-dbt asks `dbt --version` once per
        run (a dbt process: ~1.5 s before the first dbt step may start); the venv's dbt is the
        dbt-core this interpreter has installed, so its version is known without asking. Another
        executable is asked as before. Guarded by tests/test_dbt_project.py."""
        if Path(self.dbt_executable) in (Path(venv_dbt()), LAUNCHER):
            return version.parse(importlib.metadata.version("dbt-core"))
        return super()._cli_version


def dbt_resource() -> DbtCliResource:
    # The venv's dbt through the run's fork server when there is one (`segments run`: dbt's
    # imports paid once per run), else the venv's dbt itself.
    return SegmentsDbtCliResource(project_dir=dbt_project(), dbt_executable=dbt_command())
