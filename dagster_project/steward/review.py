"""`segments review`: the steward queue, readable in a terminal, filterable, exportable.

Reads what every run writes to <home>/steward/ (Parquet, else CSV), so it works while a run
holds the warehouse and after a blocked run. Findings are grouped by kind, the groups with the
most impact first (blocking errors, then revenue and customers affected, then count).
"""

from __future__ import annotations

from pathlib import Path

import click
import duckdb

from dagster_project.cli_options import home_option

SHOWN_PER_KIND = 5


def _queue_source(steward_dir: Path) -> str | None:
    for name, reader in (("steward_queue.parquet", "read_parquet"), ("steward_queue.csv", None)):
        path = steward_dir / name
        if path.exists():
            quoted = str(path).replace("'", "''")
            if reader:
                return f"{reader}('{quoted}')"
            return f"read_csv('{quoted}', header = true, all_varchar = false)"
    return None


def _filters(kind: str | None, severity: str | None, status: str) -> tuple[str, list]:
    clauses, params = [], []
    for column, value in (("kind", kind), ("severity", severity)):
        if value:
            clauses.append(f"{column} = ?")
            params.append(value)
    if status != "all":
        clauses.append("status = ?")
        params.append(status)
    return ("where " + " and ".join(clauses)) if clauses else "", params


def _money(value) -> str:
    return "-" if value is None else f"{float(value):,.0f} EUR"


@click.command()
@home_option("Home folder whose steward/ queue to show")
@click.option("--kind", default=None, help="Only this kind (e.g. failed_expectation).")
@click.option(
    "--severity", type=click.Choice(["error", "warn"]), default=None, help="Only this severity."
)
@click.option(
    "--status",
    type=click.Choice(["open", "resolved", "accepted", "all"]),
    default="open",
    show_default=True,
)
@click.option(
    "--export",
    "export",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the selected findings to this CSV file.",
)
def review(
    home: Path, kind: str | None, severity: str | None, status: str, export: Path | None
) -> None:
    """The steward queue grouped by kind, with impact (customers and revenue affected)."""
    steward_dir = home / "steward"
    source = _queue_source(steward_dir)
    if source is None:
        raise click.UsageError(
            f"no steward queue in {steward_dir} (run `segments run --home {home}` first)"
        )
    where, params = _filters(kind, severity, status)
    con = duckdb.connect()
    try:
        con.execute(f"create temp table selected as select * from {source} {where}", params)
        groups = con.execute(
            """select kind,
                      count(*) as findings,
                      count(*) filter (where severity = 'error') as errors,
                      sum(customers_affected) as customers,
                      sum(revenue_eur_affected) as revenue,
                      string_agg(distinct entity, ', ' order by entity) as entities
               from selected group by kind
               order by errors desc, coalesce(revenue, 0) desc, coalesce(customers, 0) desc,
                        findings desc, kind"""
        ).fetchall()
        total = sum(g[1] for g in groups)
        label = " ".join(
            x
            for x in (status if status != "all" else "", severity or "", kind or "", "findings")
            if x
        )
        click.echo(f"Steward queue {steward_dir}: {total} {label}")
        for g_kind, n, errors, customers, revenue, entities in groups:
            click.echo("")
            click.echo(
                f"{g_kind}: {n} finding(s), {errors} blocking | customers affected: "
                f"{customers if customers is not None else '-'} | revenue affected: "
                f"{_money(revenue)} | {entities or '-'}"
            )
            rules = con.execute(
                """select coalesce(rule, '-'), count(*) from selected where kind = ?
                   group by all order by count(*) desc, 1 limit 5""",
                [g_kind],
            ).fetchall()
            click.echo("  rules: " + ", ".join(f"{r} ({c})" for r, c in rules))
            rows = con.execute(
                """select severity, entity, coalesce(record_key, source_file, '-'), rule,
                          coalesce(observed_value, ''), cast(line as bigint)
                   from selected where kind = ?
                   order by severity, coalesce(revenue_eur_affected, 0) desc, entity, 3
                   limit ?""",
                [g_kind, SHOWN_PER_KIND],
            ).fetchall()
            for sev, entity, key, rule, observed, line in rows:
                where_at = f" line {line}" if line is not None else ""
                click.echo(f"  [{sev}] {entity} {key}{where_at}: {rule} {observed}".rstrip())
            if n > SHOWN_PER_KIND:
                click.echo(f"  ... {n - SHOWN_PER_KIND} more (--kind {g_kind} --export FILE.csv)")
        if export is not None:
            export.parent.mkdir(parents=True, exist_ok=True)
            quoted = str(export).replace("'", "''")
            con.execute(f"copy selected to '{quoted}' (format csv, header true)")
            click.echo(f"\nwrote {total} findings to {export}")
    finally:
        con.close()
