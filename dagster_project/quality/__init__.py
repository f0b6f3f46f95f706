"""Data quality gates: Great Expectations suites (expectations/) validated inside DuckDB.

gx_duckdb makes GX's SQL data source work on DuckDB; suites loads the versioned suites;
validate runs one suite and turns its failures into steward findings.
"""
