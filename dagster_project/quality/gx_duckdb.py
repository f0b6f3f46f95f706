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

One more thing GX does on any SQL engine costs us half the validation time: an
UnexpectedRowsExpectation resolves two metrics from its query, the first 200 rows
(`unexpected_rows_query.table`) and `SELECT COUNT(*) ... FROM (<query>)`
(`unexpected_rows_query.row_count`), so every rule ran twice, and the rules that matter are
group-bys and anti-joins over 20M-row tables. `reuse_unexpected_rows` lets the engine GX
validates with answer the second from the first: a query that returned fewer rows than were
fetched has exactly that many rows, whichever metric GX resolves first. Only a rule with at
least as many unexpected rows as GX fetches (200) still runs its COUNT query. The results are
the same: the same SQL, on tables nothing writes during validation.
"""

from __future__ import annotations

import contextlib
import re
import threading
import types
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import sqlalchemy
    from great_expectations.data_context import AbstractDataContext
    from great_expectations.datasource.fluent import SQLDatasource

DATASOURCE_NAME = "warehouse"
# GX keeps process-wide state (the current project of get_context): one GX context at work at a
# time in this process, validation or Data Docs render, whichever thread it runs in
# (quality/ahead.py and quality/data_docs.py run them in threads).
GX_IN_USE = threading.RLock()


def _no_transaction(self, dbapi_connection) -> None:  # noqa: ARG001 - SQLAlchemy's signature
    """Stands in for Dialect.do_begin / do_rollback: validation reads, nothing to roll back."""


def make_engine_gx_safe(engine: sqlalchemy.Engine) -> sqlalchemy.Engine:
    """Make BEGIN/ROLLBACK no-ops on this DuckDB engine (see the module docstring)."""
    if engine.dialect.name != "duckdb":
        return engine
    engine.dialect.do_begin = types.MethodType(_no_transaction, engine.dialect)
    engine.dialect.do_rollback = types.MethodType(_no_transaction, engine.dialect)
    return engine


# The row-count query GX wraps around an unexpected_rows_query (QueryRowCount, GX 1.24).
_ROW_COUNT_QUERY = re.compile(
    r"\ASELECT COUNT\(\*\) as unexpected_row_count FROM \((?P<query>.*)\) AS substituted_batch_subquery\Z",
    re.DOTALL,
)


@dataclass
class _Fetched:
    """The first rows of a text query as a metric fetched them (`asked` rows were asked for)."""

    rows: list
    asked: int

    @property
    def complete(self) -> bool:
        return len(self.rows) < self.asked


class _RecordingResult:
    """A query's cursor result that remembers the rows of its first fetchmany."""

    def __init__(self, result, remember) -> None:
        self._result = result
        self._remember = remember

    def fetchmany(self, size=None):
        rows = self._result.fetchmany(size)
        if self._remember is not None and size:
            self._remember(_Fetched(list(rows), size))
        self._remember = None  # a second fetch: the first rows no longer say it all
        return rows

    def __iter__(self):
        self._remember = None
        return iter(self._result)

    def __getattr__(self, name):
        return getattr(self._result, name)


class _Replayed:
    """The rows of a query already fetched, handed out again without running it; a fetch they
    cannot answer runs the query after all (skipping the rows already handed out)."""

    def __init__(self, fetched: _Fetched, run) -> None:
        self._fetched = fetched
        self._run = run
        self._handed_out = 0
        self._result = None

    def _rest(self) -> list:
        return self._fetched.rows[self._handed_out :]

    def _running(self):
        if self._result is None:
            self._result = self._run()
            if self._handed_out:
                self._result.fetchmany(self._handed_out)
        return self._result

    def fetchmany(self, size=None):
        rest = self._rest()
        if self._result is None and size and (self._fetched.complete or size <= len(rest)):
            rows = rest[:size]
            self._handed_out += len(rows)
            return rows
        return self._running().fetchmany(size)

    def fetchall(self):
        if self._result is None and self._fetched.complete:
            rows = self._rest()
            self._handed_out += len(rows)
            return rows
        return self._running().fetchall()

    def close(self) -> None:
        if self._result is not None:
            self._result.close()

    def __iter__(self):
        return iter(self.fetchall())

    def __getattr__(self, name):  # any other use of the result: run the query after all
        return getattr(self._running(), name)


class _Counted:
    """The result of a COUNT(*) query whose answer is known."""

    def __init__(self, count: int) -> None:
        self._count = count

    def fetchone(self):
        return (self._count,)

    def scalar(self):
        return self._count

    def close(self) -> None:
        pass


@dataclass
class QueryReuse:
    """The first rows of each text query this validation ran (at most 200 each), and counters:
    text queries run, COUNT(*) queries answered without running, fetches answered again."""

    executed: int = 0
    counts_answered: int = 0
    rows_replayed: int = 0
    fetched: dict[str, _Fetched] = field(default_factory=dict)


def reuse_unexpected_rows(execution_engine, batch_size: int | None = None) -> QueryReuse:
    """Answer each unexpected-rows query's COUNT(*) from its fetched rows (module docstring).

    Patches `execute_query` of this GX execution engine instance only.
    """
    import sqlalchemy as sa
    from great_expectations.constants import MAX_RESULT_RECORDS

    batch_size = batch_size or MAX_RESULT_RECORDS
    execute = execution_engine.execute_query
    reuse = QueryReuse()

    def first_rows(sql: str) -> _Fetched:
        reuse.executed += 1
        result = execute(sa.text(sql))
        try:
            fetched = _Fetched(list(result.fetchmany(batch_size)), batch_size)
        finally:
            result.close()
        reuse.fetched[sql] = fetched
        return fetched

    def execute_query(query):
        if not isinstance(query, sa.TextClause):
            return execute(query)
        sql = query.text
        counted = _ROW_COUNT_QUERY.match(sql)
        if counted:
            inner = counted.group("query")
            fetched = reuse.fetched.get(inner) or first_rows(inner)
            if fetched.complete:
                reuse.counts_answered += 1
                return _Counted(len(fetched.rows))
            reuse.executed += 1
            return execute(query)  # 200 rows or more: they must be counted
        fetched = reuse.fetched.get(sql)
        if fetched is not None:
            reuse.rows_replayed += 1
            return _Replayed(fetched, lambda: execute(query))
        reuse.executed += 1

        def remember(rows: _Fetched) -> None:
            reuse.fetched[sql] = rows

        return _RecordingResult(execute(query), remember)

    execution_engine.execute_query = execute_query
    return reuse


@dataclass
class ValidationContext:
    """An ephemeral GX context with the warehouse as a SQL data source."""

    context: AbstractDataContext
    datasource: SQLDatasource
    reuse: QueryReuse | None = None

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


def attach_fact_store_on_connect(engine: sqlalchemy.Engine, warehouse: Path) -> None:
    """Every DuckDB connection of this engine gets the warehouse's fact store attached
    read-only (marts.fct_order_lines is a view over it: dagster_project/fact_store.py).
    Connections already pooled (GX tests the data source when it adds it) are dropped first,
    so that none misses it."""
    from sqlalchemy import event

    from dagster_project.fact_store import attach_fact_store

    def attach(dbapi_connection, connection_record) -> None:  # noqa: ARG001 - SQLAlchemy's
        attach_fact_store(dbapi_connection, Path(warehouse).resolve(), read_only=True)

    event.listen(engine, "connect", attach)
    engine.dispose()


@contextlib.contextmanager
def warehouse_validation_context(
    warehouse: Path,
    *,
    duckdb_config: dict[str, Any] | None = None,
    apply_shim: bool = True,
    reuse_query_results: bool = True,
    shared_instance: bool = False,
) -> Iterator[ValidationContext]:
    """An ephemeral GX context validating `warehouse` read-only; its engines are disposed on exit.

    `shared_instance`: the warehouse is open read-write in this process (the identity step, while
    quality/ahead.py validates the staging layer), and DuckDB lets one process open a file with
    one configuration only: GX's connections then come from that same instance through
    warehouse.connect (the fact store attached as everywhere). GX still only reads.

    Ephemeral on purpose: a file project rewrites its whole great_expectations.yml for every
    query asset added (70 ms each, growing with the assets), so results are validated here and
    then kept in the home's file project by quality/data_docs.py. `apply_shim=False` exists for
    the test that proves the shim is still needed; `reuse_query_results=False` runs every
    metric query as GX issues it (the A/B of `reuse_unexpected_rows`).
    """
    import great_expectations as gx

    with GX_IN_USE:
        context = gx.get_context(mode="ephemeral")
        quiet_progress_bars(context)
        datasource = context.data_sources.add_or_update_sql(
            DATASOURCE_NAME,
            connection_string=duckdb_connection_string(warehouse),
            kwargs=_engine_options(warehouse, duckdb_config, shared_instance),
        )
        validation = ValidationContext(context=context, datasource=datasource)
        execution_engine = datasource.get_execution_engine()
        if not shared_instance:
            for engine in validation.engines():
                attach_fact_store_on_connect(engine, warehouse)
        if apply_shim:
            # The execution engine's SQLAlchemy engine is the one metrics are computed on.
            make_engine_gx_safe(execution_engine.engine)
        if reuse_query_results:
            validation.reuse = reuse_unexpected_rows(execution_engine)
        try:
            yield validation
        finally:
            for engine in validation.engines():
                engine.dispose()


def _engine_options(
    warehouse: Path, duckdb_config: dict[str, Any] | None, shared_instance: bool
) -> dict[str, Any]:
    """SQLAlchemy engine options: a read-only DuckDB of its own, or connections of the
    instance this process has open already (`shared_instance`)."""
    if not shared_instance:
        return {"connect_args": {"read_only": True, "config": dict(duckdb_config or {})}}
    from duckdb_engine import ConnectionWrapper

    from dagster_project.warehouse import connect

    return {"creator": lambda: ConnectionWrapper(connect(warehouse))}
