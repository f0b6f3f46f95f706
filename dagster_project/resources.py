"""Dagster resources: the working warehouse (one truth for its path: SEGMENTS_HOME)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import duckdb
from dagster import ConfigurableResource

from dagster_project.paths import HomePaths, default_home
from dagster_project.warehouse import connect


class WarehouseResource(ConfigurableResource):
    """The home folder; connections open and close per asset so dbt can take the file lock."""

    home: str

    @property
    def paths(self) -> HomePaths:
        return HomePaths(Path(self.home))

    @contextlib.contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        con = connect(self.paths.warehouse, read_only=read_only)
        try:
            yield con
        finally:
            con.close()


def warehouse_resource() -> WarehouseResource:
    return WarehouseResource(home=str(default_home()))
