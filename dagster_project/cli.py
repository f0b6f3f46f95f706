"""`segments`: generate demo data, run the pipeline, run the demo (DESIGN.md "Interfaces").

Exit codes (DESIGN.md): 0 published; 1 error; 2 usage; 3 a blocking quality gate stopped
publication (the previous publication is untouched); 75 another run holds the warehouse.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib
import os
import sys
import threading
import time
import uuid
from pathlib import Path

import click

from dagster_project.cli_options import home_option
from dagster_project.paths import HomePaths

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_BLOCKED, EXIT_BUSY = 0, 1, 2, 3, 75
DEFAULT_DEMO_CUSTOMERS = 2000


def _say(quiet: bool, message: str) -> None:
    if not quiet:
        click.echo(message, err=True)


_home_option = home_option(
    "Folder for landing/, the warehouse, published/, steward/ and the Dagster instance"
)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
def main() -> None:
    """Trusted B2B customer segments and KPIs by segment from CRM and ERP extracts.

    \b
    Typical use:
      segments demo                          generate demo data and run everything
      segments generate --out data/landing   write a landing folder (source contract)
      segments run --home data               ingest, transform, check, publish
    Published marts land in <home>/published/analytics.duckdb (open it read-only) and
    <home>/published/parquet/; findings for data stewards in <home>/steward/.
    """


@main.command()
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Landing folder to write (DIR/crm/..., DIR/erp/...).",
)
@click.option(
    "--truth",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the ground truth goes (default: a 'truth' folder beside --out).",
)
@click.option(
    "--customers",
    type=click.IntRange(min=10),
    default=DEFAULT_DEMO_CUSTOMERS,
    show_default=True,
    help="Number of real companies.",
)
@click.option(
    "--years",
    type=click.IntRange(1, 20),
    default=5,
    show_default=True,
    help="Years of history, ending 2025-12-31.",
)
@click.option("--seed", type=int, default=42, show_default=True, help="Same seed, same bytes.")
@click.option("--quiet", is_flag=True, help="Print nothing but errors.")
def generate(
    out: Path, truth: Path | None, customers: int, years: int, seed: int, quiet: bool
) -> None:
    """Write a deterministic demo landing folder plus its ground truth (kept apart)."""
    from dagster_project.generate import generate as generate_data

    truth = truth or out.parent / "truth"
    started = time.monotonic()
    summary = generate_data(
        out,
        truth,
        customers=customers,
        years=years,
        seed=seed,
        progress=None if quiet else lambda m: _say(False, f"  {m}"),
    )
    _say(
        quiet,
        f"generated {summary} in {time.monotonic() - started:.1f}s\n"
        f"  landing: {out}\n  truth:   {truth}",
    )


@main.command()
@click.option(
    "--landing",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Landing folder to ingest (default: <home>/landing).",
)
@_home_option
@click.option(
    "--as-of",
    "as_of",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    help="Ignore events after this date (default: newest event in the landed data).",
)
@click.option(
    "--quiet", is_flag=True, help="No progress lines (for schedulers); errors still print."
)
def run(landing: Path | None, home: Path, as_of: dt.datetime | None, quiet: bool) -> None:
    """Materialise everything and publish (write-audit-publish)."""
    _exit(run_pipeline(home, landing, as_of.date() if as_of else None, quiet))


@main.command()
@_home_option
@click.option(
    "--customers", type=click.IntRange(min=10), default=DEFAULT_DEMO_CUSTOMERS, show_default=True
)
@click.option("--seed", type=int, default=42, show_default=True)
@click.option("--quiet", is_flag=True)
def demo(home: Path, customers: int, seed: int, quiet: bool) -> None:
    """Generate the demo data into <home>/landing (once) and run the whole pipeline."""
    paths = HomePaths(home.resolve())
    if not (paths.landing / "crm").exists():
        from dagster_project.generate import generate as generate_data

        _say(quiet, f"generating demo data ({customers} companies) into {paths.landing}")
        generate_data(paths.landing, paths.truth, customers=customers, seed=seed)
    else:
        _say(quiet, f"using the demo data already in {paths.landing}")
    code = run_pipeline(paths.home, None, None, quiet)
    if code == EXIT_OK:
        _say(
            quiet,
            "\nNext:\n"
            f"  published marts:  {paths.published_db}  (open read-only from any DuckDB client or BI tool)\n"
            f"  parquet exports:  {paths.published_parquet}/\n"
            f"  steward queue:    {paths.steward}/steward_queue.csv\n"
            f"  Dagster UI:       make ui   (SEGMENTS_HOME={paths.home})",
        )
    _exit(code)


_pipeline_ran = False


def _exit(code: int) -> None:
    """Exit after a pipeline run without tearing the interpreter down module by module: DuckDB's
    bindings print spurious reference-leak reports when objects that GX and SQLAlchemy cache are
    finalised during that teardown. Every file and connection is closed by now."""
    if not _pipeline_ran:
        sys.exit(code)
    # os._exit skips atexit: a background publication export of a run that ended before its
    # publish step is stopped here, and its pending files removed
    from dagster_project.ingest.scan_ahead import discard_early
    from dagster_project.publish.prestage import stop_all

    stop_all()
    discard_early()  # a landing scan no ingest took over: its copies are removed
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


# The multiprocessing resource tracker (a child process) would report the semaphores that
# os._exit leaves to it to clean up; it does clean them up, so its warning is noise.
os.environ.setdefault(
    "PYTHONWARNINGS", "ignore:resource_tracker:UserWarning:multiprocessing.resource_tracker"
)


def run_pipeline(home: Path, landing: Path | None, as_of: dt.date | None, quiet: bool) -> int:
    """Run the Dagster job in-process against <home>; return the agreed exit code."""
    paths = HomePaths(home.resolve()).ensure()
    landing = (landing or paths.landing).resolve()
    if not landing.exists():
        click.echo(
            f"error: landing folder {landing} does not exist "
            "(write one with `segments generate --out DIR`)",
            err=True,
        )
        return EXIT_USAGE
    os.environ["SEGMENTS_HOME"] = str(paths.home)
    os.environ["SEGMENTS_LANDING"] = str(landing)
    os.environ["DAGSTER_HOME"] = str(paths.dagster_home)

    from dagster_project.warehouse import WarehouseBusy, run_lock

    try:
        with run_lock(paths.home):
            return _run_locked(paths, landing, as_of, quiet)
    except WarehouseBusy as exc:
        click.echo(f"error: {exc}; try again when it has finished", err=True)
        return EXIT_BUSY


# Libraries later steps import on first use, imported in a thread from the start of an earlier
# step on, so that the steps that need them do not wait: Great Expectations (the first quality
# gate, right after ingest) while ingest keeps DuckDB busy; scikit-learn (segment clustering)
# while the main thread waits for dbt. Not before the run: the run's own start-up (definitions,
# Dagster instance, run creation) is Python too, and an import beside it takes the GIL from it.
IMPORT_WHEN_STEP_STARTS = {
    "raw_extracts": ("great_expectations",),
    "dbt_staging_and_facts": ("sklearn.cluster",),
}


def _import_when_steps_start(instance, run_id: str, imports: dict[str, tuple[str, ...]]) -> None:
    """Start importing imports[step] when the run's step `step` starts (a renamed step only
    means its libraries are imported on first use again)."""
    # Importing GX imports SQLAlchemy's ORM, whose first module registers an inspection hook for
    # every object before its sibling modules finish loading. Dagster's event log storage (this
    # thread, SQLAlchemy core) calls that hook; imported by the helper thread, the ORM could be
    # found half-loaded, and the step failed ("partially initialized module
    # 'sqlalchemy.orm.exc'"). Loaded here first (0.04 s), the helper finds it complete.
    importlib.import_module("sqlalchemy.orm")
    pending = dict(imports)

    def load(modules: tuple[str, ...]) -> None:
        for module in modules:
            with contextlib.suppress(Exception):  # the step that needs it imports it and reports
                importlib.import_module(module)

    def on_event(record) -> None:
        event = record.dagster_event
        if event is None or event.event_type_value != "STEP_START":
            return
        modules = pending.pop(event.step_key, None)
        if modules:
            threading.Thread(target=load, args=(modules,), name="import-ahead", daemon=True).start()

    instance.add_event_listener(run_id, on_event)


def _run_locked(paths: HomePaths, landing: Path, as_of: dt.date | None, quiet: bool) -> int:
    global _pipeline_ran
    _pipeline_ran = True
    from dagster import DagsterInstance

    from dagster_project.quality.data_docs import wait_for_data_docs
    from dagster_project.transform.dbt_forkserver import DbtForkServer
    from dagster_project.transform.project import prepare_manifest, set_dbt_environment

    started = time.monotonic()
    set_dbt_environment(paths)
    _say(quiet, f"segments run: landing {landing}, home {paths.home}")
    # dbt's imports, once for the run's dbt invocations (the parse below among them), on the
    # core the run's start-up leaves idle
    dbt_server = DbtForkServer.start(paths.home / "logs" / "dbt_forkserver.log")
    prepare_manifest(in_background=True)  # a new home's parse overlaps ingest
    from dagster_project.ingest import load_contract
    from dagster_project.ingest.scan_ahead import start_early

    start_early(landing, paths.warehouse, load_contract())  # overlaps the Dagster start-up

    from dagster_project.dagster_instance import history_kept_open
    from dagster_project.definitions import defs  # after the environment is set

    job = defs.resolve_job_def("segments_job")
    run_config: dict = {
        "loggers": {"console": {"config": {"log_level": "ERROR"}}} if quiet else {"progress": {}},
    }
    if as_of:
        run_config["ops"] = {"dbt_staging_and_facts": {"config": {"as_of": as_of.isoformat()}}}
    instance = DagsterInstance.get()
    run_id = str(uuid.uuid4())  # known before the run starts: the imports ahead wait for its steps
    _import_when_steps_start(instance, run_id, IMPORT_WHEN_STEP_STARTS)
    # dbt's own log goes to stdout: keep it in a file, so the terminal shows one line per stage.
    log_file = paths.home / "logs" / "last_run.log"
    log_file.parent.mkdir(exist_ok=True)
    with (
        dbt_server or contextlib.nullcontext(),
        history_kept_open(paths.dagster_home),
        open(log_file, "w", encoding="utf-8") as log,
        contextlib.redirect_stdout(log),
    ):
        result = job.execute_in_process(
            run_config=run_config, instance=instance, raise_on_error=False, run_id=run_id
        )
        runs = [result]
        if result.success:
            # then the history partition of the run's as-of (and what follows it: publication)
            runs.append(_run_history_partition(defs, paths, result.run_id, run_config, instance))
    wait_for_data_docs()  # the last quality gate's pages, rendered while later steps ran

    n_open, queue_dir = _write_steward_queue(paths, result.run_id)
    result = runs[-1]
    took = time.monotonic() - started
    evaluations = [e for run in runs for e in run.get_asset_check_evaluations()]
    n_checks = sum(e.passed for e in evaluations)
    if result.success:
        _say(
            quiet,
            f"{n_checks} checks passed; published in {took:.0f}s: {paths.published_db}\n"
            f"steward queue: {n_open} open findings in {queue_dir}",
        )
        return EXIT_OK

    failed_checks = [e for e in evaluations if not e.passed and e.severity.value == "ERROR"]
    if failed_checks:
        lines = [
            f"  - {'/'.join(e.asset_key.path)}: {e.check_name}"
            + (f": {e.description}" if e.description else "")
            for e in failed_checks[:10]
        ]
        click.echo(
            "BLOCKED: a blocking quality gate failed, so nothing was published "
            f"(the previous publication in {paths.published} is untouched).\n"
            + "\n".join(lines)
            + f"\nSteward queue: {n_open} open findings in {queue_dir}/steward_queue.csv "
            "(read it with `segments review`).",
            err=True,
        )
        return EXIT_BLOCKED
    failures = [e for e in result.all_events if e.is_step_failure]
    for event in failures[:3]:
        error = event.step_failure_data.error
        click.echo(
            f"error in {event.step_key}: {error.message.strip() if error else 'unknown'}", err=True
        )
    click.echo(
        f"run {result.run_id} failed; nothing was published. Full log: {log_file}, "
        f"or the run in the Dagster UI (make ui SEGMENTS_HOME={paths.home})",
        err=True,
    )
    return EXIT_ERROR


def _run_history_partition(defs, paths: HomePaths, run_id: str, run_config: dict, instance):
    """segment_history_job for the monthly partition of the run's as-of date."""
    from dagster_project.defs.segment_history import partition_key_for
    from dagster_project.run_context import AFTER_RUN_TAG, as_of_for_run
    from dagster_project.warehouse import connect

    con = connect(paths.warehouse, read_only=True)
    try:
        as_of = as_of_for_run(con, run_id)
    finally:
        con.close()
    return defs.resolve_job_def("segment_history_job").execute_in_process(
        run_config={"loggers": run_config["loggers"]},
        instance=instance,
        partition_key=partition_key_for(as_of),
        tags={AFTER_RUN_TAG: run_id},
        raise_on_error=False,
    )


def _write_steward_queue(paths: HomePaths, run_id: str) -> tuple[int, Path]:
    """The steward queue is written on every run, blocked or not."""
    from dagster_project.steward.queue import refresh_steward_queue
    from dagster_project.warehouse import connect

    con = connect(paths.warehouse)
    try:
        return refresh_steward_queue(con, run_id, paths.steward), paths.steward
    finally:
        con.close()


from dagster_project.bench.cli import bench  # noqa: E402  (the benchmark, issue 6)

main.add_command(bench)


from dagster_project.steward.review import review  # noqa: E402 - registered last, like a plugin

main.add_command(review)

if __name__ == "__main__":
    main()
