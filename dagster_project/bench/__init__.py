"""The benchmark (`segments bench`): the pipeline against a raw-DuckDB floor (floor.sql) and a
pandas baseline on the same landing data, per stage, with peak memory and quality."""

from dagster_project.bench.runner import run_bench

__all__ = ["run_bench"]
