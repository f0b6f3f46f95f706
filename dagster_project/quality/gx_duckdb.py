"""Great Expectations 1.x on DuckDB: the one compatibility shim, and a context to validate in.

DuckDB is not a GX-supported SQL dialect. Through duckdb_engine, GX 1.24 fetches metric rows
after it has handed the connection back, and duckdb_engine's rollback on that hand-back
discards the open result: every expectation then fails with "list index out of range", as if
the data were bad (GX issues #10738, #11579; ../shared/STACK_NOTES.md). Validation only reads,
so making BEGIN and ROLLBACK no-ops on the engine GX validates with is safe, and it is done on
that engine's dialect instance only, not on duckdb_engine for the whole process.

GX is imported here, lazily (it costs seconds at import), and every engine GX opened is
disposed on leaving `warehouse_validation_context`, which releases the warehouse file so the
next asset (or dbt) can open it.
"""

from __future__ import annotations

import contextlib
import types
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import sqlalchemy
    from great_expectations.data_context import AbstractDataContext
    from great_expectations.datasource.fluent import SQLDatasource

DATASOURCE_NAME = "warehouse"


def _no_transaction(self, dbapi_connection) -> None:  # noqa: ARG001 - SQLAlchemy's signature
    """Stands in for Dialect.do_begin / do_rollback: validation reads, nothing to roll back."""


def make_engine_gx_safe(engine: sqlalchemy.Engine) -> sqlalchemy.Engine:
    """Make BEGIN/ROLLBACK no-ops on this DuckDB engine (see the module docstring)."""
    if engine.dialect.name != "duckdb":
        return engine
    engine.dialect.do_begin = types.MethodType(_no_transaction, engine.dialect)
    engine.dialect.do_rollback = types.MethodType(_no_transaction, engine.dialect)
    return engine


@dataclass
class ValidationContext:
    """An ephemeral GX context with the warehouse as a SQL data source."""

    context: AbstractDataContext
    datasource: SQLDatasource

    def add_query_asset(self, name: str, query: str):
        return self.datasource.add_query_asset(name, query=query)

    def engines(self) -> list[sqlalchemy.Engine]:
        """Every SQLAlchemy engine GX created for the warehouse (it keeps more than one)."""
        found = []
        execution_engine = getattr(self.datasource, "_execution_engine", None)
        if execution_engine is not None and getattr(execution_engine, "engine", None) is not None:
            found.append(execution_engine.engine)
        engine = getattr(self.datasource, "_engine", None)
        if engine is not None:
            found.append(engine)
        return found


def quiet_progress_bars(context: AbstractDataContext) -> None:
    """Progress bars would land in the pipeline log once per expectation."""
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context.variables.progress_bars = ProgressBarsConfig(globally=False)


def duckdb_connection_string(warehouse: Path) -> str:
    return f"duckdb:///{Path(warehouse).resolve()}"


@contextlib.contextmanager
def warehouse_validation_context(
    warehouse: Path,
    *,
    duckdb_config: dict[str, Any] | None = None,
    apply_shim: bool = True,
) -> Iterator[ValidationContext]:
    """An ephemeral GX context validating `warehouse` read-only; its engines are disposed on exit.

    Ephemeral on purpose: a file project rewrites its whole great_expectations.yml for every
    query asset added (70 ms each, growing with the assets), so results are validated here and
    then kept in the home's file project by quality/data_docs.py. `apply_shim=False` exists for
    the test that proves the shim is still needed.
    """
    import great_expectations as gx

    context = gx.get_context(mode="ephemeral")
    quiet_progress_bars(context)
    datasource = context.data_sources.add_or_update_sql(
        DATASOURCE_NAME,
        connection_string=duckdb_connection_string(warehouse),
        kwargs={"connect_args": {"read_only": True, "config": dict(duckdb_config or {})}},
    )
    validation = ValidationContext(context=context, datasource=datasource)
    if apply_shim:
        # The execution engine's SQLAlchemy engine is the one metrics are computed on.
        make_engine_gx_safe(datasource.get_execution_engine().engine)
    try:
        yield validation
    finally:
        for engine in validation.engines():
            engine.dispose()
