"""`segments bench`: the benchmark command (registered in dagster_project/cli.py)."""

from __future__ import annotations

from pathlib import Path

import click

from dagster_project.cli_options import home_option


@click.command()
@click.option(
    "--customers",
    type=click.IntRange(min=10),
    required=True,
    help="Number of real companies to generate (data reused per customers/years/seed).",
)
@click.option("--years", type=click.IntRange(1, 20), default=5, show_default=True)
@click.option("--seed", type=int, default=42, show_default=True)
@home_option("Results go to <home>/bench/ (data under <home>/bench/data/, runs under .../runs/)")
@click.option("--skip-pandas", is_flag=True, help="Do not run the pandas baseline.")
@click.option(
    "--repeat",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Run the pipeline and the floor this many times; report the run with the median ratio.",
)
def bench(
    customers: int, years: int, seed: int, home: Path, skip_pandas: bool, repeat: int
) -> None:
    """Time the pipeline per stage against a raw-DuckDB floor and a pandas baseline.

    Same landing data for all three; peak memory of each process tree; KPI totals cross-checked;
    matching quality and segmentation accuracy against the generator's truth.
    """
    from dagster_project.bench.report import format_results
    from dagster_project.bench.runner import run_bench

    results = run_bench(
        customers,
        years,
        seed,
        home,
        skip_pandas=skip_pandas,
        repeat=repeat,
        say=lambda m: click.echo(m, err=True),
    )
    click.echo(format_results(results))
