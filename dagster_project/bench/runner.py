"""`run_bench`: generate (or reuse) data at a scale, run the pipeline as `segments run` does,
the floor and the pandas baseline on the same landing folder, and compare time, memory, results
and quality. Results: <home>/bench/bench_<scale>_<time>.json (and latest.json).

Every measured program runs as a child process with the same DuckDB memory_limit and threads,
so that peak memory is that program's process tree and nothing else.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb

from dagster_project.bench.common import BASELINE_PARTS, BaselineResult
from dagster_project.bench.measure import Measured, run_measured
from dagster_project.bench.pipeline_stages import (
    OVERHEAD_DBT,
    OVERHEAD_RUN,
    connect_read_only,
    stage_rows,
    stage_seconds,
)
from dagster_project.bench.quality import matching_quality, segmentation_accuracy
from dagster_project.paths import PROJECT_ROOT, HomePaths
from dagster_project.warehouse import duckdb_config

PANDAS_ADDRESS_SPACE = 12 * 2**30  # RLIMIT_AS for the pandas baseline
EXIT_OUT_OF_MEMORY = 99  # pandas_baseline.py
# Pipeline stages that do the work a baseline part does; the rest is the pipeline's extra work.
COMPARABLE = {
    "ingest": ("ingest",),
    "facts": ("staging", "marts"),
    "features": ("segmentation",),
    "kpis": ("kpi_marts",),
}
EXTRA_WORK = ("identity", "validation", "publish", OVERHEAD_DBT, OVERHEAD_RUN)


def _scale_key(customers: int, years: int, seed: int) -> str:
    return f"c{customers}_y{years}_s{seed}"


def ensure_landing(bench_dir: Path, customers: int, years: int, seed: int, say=print) -> dict:
    """The landing folder for this scale, generated once and then reused."""
    data = bench_dir / "data" / _scale_key(customers, years, seed)
    done = data / "generated.json"
    if done.exists():
        info = json.loads(done.read_text(encoding="utf-8"))
        say(f"reusing {data / 'landing'} (generated in {info['seconds']}s)")
        return info
    from dagster_project.generate import generate

    shutil.rmtree(data, ignore_errors=True)
    say(f"generating {customers:,} companies x {years} years (seed {seed}) into {data}")
    started = time.perf_counter()
    summary = generate(
        data / "landing", data / "truth", customers=customers, years=years, seed=seed
    )
    info = {
        "landing": str(data / "landing"),
        "truth": str(data / "truth"),
        "seconds": round(time.perf_counter() - started, 1),
        "order_lines": summary.order_lines,
        "files": summary.files,
        "megabytes": round(summary.bytes_written / 1e6, 1),
        "planted_defects": summary.planted_defects,
    }
    done.write_text(json.dumps(info, indent=2), encoding="utf-8")
    return info


def warm_file_cache(folder: Path, chunk_bytes: int = 8 * 2**20) -> dict:
    """Read every file under `folder` once, so that each measured program finds the landing
    files in the OS page cache. Without this the first program (the pipeline) pays the cold
    disk reads and the baselines that follow do not, which skews the ratios."""
    started = time.perf_counter()
    files = 0
    read = 0
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        with open(path, "rb", buffering=0) as handle:
            while block := handle.read(chunk_bytes):
                read += len(block)
        files += 1
    return {
        "files": files,
        "bytes": read,
        "mb": round(read / 1e6, 1),
        "seconds": round(time.perf_counter() - started, 1),
    }


def _child_env(duckdb_settings: dict) -> dict[str, str]:
    env = dict(os.environ)
    env["SEGMENTS_DUCKDB_MEMORY_LIMIT"] = str(duckdb_settings["memory_limit"])
    env["SEGMENTS_DUCKDB_THREADS"] = str(duckdb_settings["threads"])
    env["DAGSTER_DISABLE_TELEMETRY"] = "1"
    env["PYTHONPATH"] = str(PROJECT_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _pipeline_as_of(warehouse: Path) -> dt.date:
    """The as-of the run used (the baselines must cut at the same date); when the run failed
    before recording it, the same default computed from what it ingested."""
    from dagster_project.as_of import data_through

    con = connect_read_only(warehouse)
    try:
        try:
            rows = con.execute(
                "select as_of from meta.run_context order by recorded_at desc limit 1"
            ).fetchall()
        except duckdb.CatalogException:
            rows = []
        as_of = rows[0][0] if rows else data_through(con)
    finally:
        con.close()
    if as_of is None:
        raise RuntimeError(f"the pipeline run ingested nothing; see {warehouse.parent}")
    return as_of


def _published_kpi_by_year(published_db: Path) -> dict[str, dict[str, float]]:
    con = duckdb.connect(str(published_db), read_only=True)
    try:
        rows = con.execute(
            "select year, sum(orders), sum(order_lines), sum(revenue_eur), sum(cost_eur),"
            " sum(margin_eur) from kpi_revenue_by_customer_year group by year order by year"
        ).fetchall()
    finally:
        con.close()
    keys = ("orders", "order_lines", "revenue_eur", "cost_eur", "margin_eur")
    return {
        str(r[0]): {
            k: (int(v) if k in ("orders", "order_lines") else float(v))
            for k, v in zip(keys, r[1:], strict=True)
        }
        for r in rows
    }


def compare_kpis(
    reference: dict[str, dict[str, float]], other: dict[str, dict[str, float]]
) -> dict[str, float | bool]:
    """Largest differences of the yearly KPI totals: counts exact, money absolute and relative."""
    years_match = sorted(reference) == sorted(other)
    count_diff = 0
    money_abs = 0.0
    money_rel = 0.0
    for year in set(reference) & set(other):
        for key, value in reference[year].items():
            diff = abs(value - other[year].get(key, 0))
            if key in ("orders", "order_lines"):
                count_diff = max(count_diff, int(diff))
            else:
                money_abs = max(money_abs, diff)
                money_rel = max(money_rel, diff / abs(value) if value else diff)
    return {
        "years_match": years_match,
        "max_count_diff": count_diff,
        "max_money_abs_diff": round(money_abs, 4),
        "max_money_rel_diff": money_rel,
    }


def baseline_status(returncode: int, log_path: Path) -> str:
    """ "ok", "out of memory" (MemoryError under RLIMIT_AS, or killed), or "failed (...)"."""
    if returncode == 0:
        return "ok"
    log = log_path.read_text(encoding="utf-8", errors="replace") if log_path.exists() else ""
    if returncode == EXIT_OUT_OF_MEMORY or returncode < 0 or "MemoryError" in log[-20000:]:
        return "out of memory"
    return f"failed (exit {returncode}, see {log_path})"


def _ratio(a: float | None, b: float | None) -> float | None:
    return float(f"{a / b:.3g}") if a and b else None  # 3 significant digits, never 0


@dataclass
class _Repeat:
    """One measured pipeline run and the floor run after it, on the same landing folder."""

    pipeline: Measured
    paths: HomePaths
    stages: dict
    rows: dict
    stage_times: dict[str, float]  # the DESIGN stages and both overheads
    as_of: dt.date
    floor: Measured
    floor_result: BaselineResult | None
    folder: Path  # the run's home, the floor's database, both logs

    @property
    def floor_log(self) -> Path:
        return self.folder / "floor.log"

    def drop_databases(self) -> None:
        """Remove the run's home and the floor's database (GBs at 100k companies), keeping its
        logs and the floor's figures: a run that is not reported needs no more than that."""
        shutil.rmtree(self.paths.home, ignore_errors=True)
        for database in self.folder.glob("floor.duckdb*"):
            database.unlink()

    @property
    def ratio(self) -> float | None:
        """pipeline / floor; None when the floor failed (no time to compare with)."""
        return _ratio(self.pipeline.seconds, self.floor.seconds if self.floor_result else None)

    def summary(self) -> dict:
        return {
            "pipeline_s": self.pipeline.seconds,
            "floor_s": self.floor.seconds,
            "pipeline_over_floor": self.ratio,
            "pipeline_cpu_s": _cpu(self.pipeline),
            "floor_cpu_s": _cpu(self.floor),
        }


def _cpu(measured: Measured) -> dict[str, float]:
    return {"user": measured.user_seconds, "system": measured.system_seconds}


def _pipeline_then_floor(
    landing: Path, work: Path, env: dict[str, str], duckdb_settings: dict, say
) -> _Repeat:
    run_home = work / "home"
    say(f"pipeline: segments run --home {run_home} --landing {landing}")
    pipeline = run_measured(
        [
            sys.executable,
            "-m",
            "dagster_project.cli",
            "run",
            "--home",
            str(run_home),
            "--landing",
            str(landing),
            "--quiet",
        ],
        env=env,
        log_path=work / "pipeline.log",
        cwd=PROJECT_ROOT,
    )
    paths = HomePaths(run_home)
    stages = stage_seconds(paths.dagster_home)
    rows = stage_rows(paths.warehouse, paths.published_db if pipeline.returncode == 0 else None)
    stage_times = {
        **stages["stages"],
        OVERHEAD_DBT: stages[OVERHEAD_DBT],
        OVERHEAD_RUN: round(max(0.0, pipeline.seconds - stages["steps_seconds"]), 3),
    }
    as_of = _pipeline_as_of(paths.warehouse)

    say(f"floor: floor.sql on the same landing folder (as-of {as_of})")
    floor_json = work / "floor.json"
    floor = run_measured(
        [
            sys.executable,
            "-m",
            "dagster_project.bench.floor",
            "--landing",
            str(landing),
            "--as-of",
            str(as_of),
            "--db",
            str(work / "floor.duckdb"),
            "--out",
            str(floor_json),
            "--memory-limit",
            str(duckdb_settings["memory_limit"]),
            "--threads",
            str(duckdb_settings["threads"]),
        ],
        env=env,
        log_path=work / "floor.log",
        cwd=PROJECT_ROOT,
    )
    floor_result = BaselineResult.read(floor_json) if floor.returncode == 0 else None
    return _Repeat(pipeline, paths, stages, rows, stage_times, as_of, floor, floor_result, work)


def run_bench(
    customers: int,
    years: int,
    seed: int,
    home: Path,
    *,
    skip_pandas: bool = False,
    repeat: int = 1,
    say=print,
) -> dict:
    """Generate or reuse data, run pipeline, floor and pandas; return (and write) the results.

    With `repeat` > 1 the pipeline and the floor run that many times, one after the other; the
    figures are those of the run with the median pipeline/floor ratio (the lower middle one for
    an even count), and every run's times are listed beside them: on a shared or virtual
    machine one run can be several percent off.
    """
    home = Path(home).resolve()
    bench_dir = HomePaths(home).bench
    bench_dir.mkdir(parents=True, exist_ok=True)
    key = _scale_key(customers, years, seed)
    data = ensure_landing(bench_dir, customers, years, seed, say=say)
    landing, truth = Path(data["landing"]), Path(data["truth"])
    duckdb_settings = duckdb_config()
    env = _child_env(duckdb_settings)
    work = bench_dir / "runs" / key
    shutil.rmtree(work, ignore_errors=True)  # a fresh warehouse: nothing skipped as seen before
    work.mkdir(parents=True)

    warmup = warm_file_cache(landing)
    say(
        f"landing files read once to warm the OS cache: {warmup['mb']:,} MB in {warmup['seconds']}s"
    )
    load_before = [round(x, 2) for x in os.getloadavg()]
    repeats = []
    for n in range(1, repeat + 1):
        if repeat > 1:
            say(f"run {n} of {repeat}")
        repeats.append(
            _pipeline_then_floor(
                landing, work / f"run-{n}" if repeat > 1 else work, env, duckdb_settings, say
            )
        )
    # runs whose floor failed sort last
    by_ratio = sorted(repeats, key=lambda r: math.inf if r.ratio is None else r.ratio)
    median = by_ratio[(len(repeats) - 1) // 2]
    pipeline, paths, stages, rows = median.pipeline, median.paths, median.stages, median.rows
    stage_times_all, as_of = median.stage_times, median.as_of
    floor, floor_result = median.floor, median.floor_result

    pandas_result: BaselineResult | None = None
    pandas: Measured | None = None
    pandas_status = "skipped"
    if not skip_pandas:
        say(f"pandas baseline (RLIMIT_AS {PANDAS_ADDRESS_SPACE / 2**30:.0f} GiB)")
        pandas_json = work / "pandas.json"
        pandas = run_measured(
            [
                sys.executable,
                "-m",
                "dagster_project.bench.pandas_baseline",
                "--landing",
                str(landing),
                "--as-of",
                str(as_of),
                "--out",
                str(pandas_json),
            ],
            env=env,
            log_path=work / "pandas.log",
            cwd=PROJECT_ROOT,
            address_space_limit=PANDAS_ADDRESS_SPACE,
        )
        pandas_status = baseline_status(pandas.returncode, work / "pandas.log")
        if pandas_status == "ok":
            pandas_result = BaselineResult.read(pandas_json)

    published_kpis = _published_kpi_by_year(paths.published_db) if pipeline.returncode == 0 else {}
    results = {
        "scale": {
            "customers": customers,
            "years": years,
            "seed": seed,
            "order_lines": data["order_lines"],
            "landing_mb": data["megabytes"],
            "files": data["files"],
            "cache_warmup": warmup,
        },
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        # The machine is shared: the load says how far the timings can be trusted.
        "machine": {
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
            "load_before": load_before,
            "load_after": [round(x, 2) for x in os.getloadavg()],
        },
        "duckdb": {
            "memory_limit": duckdb_settings["memory_limit"],
            "threads": duckdb_settings["threads"],
            "version": duckdb.__version__,
        },
        "as_of": str(as_of),
        "pipeline": {
            "exit_code": pipeline.returncode,
            "run_id": stages["run_id"],
            "seconds": pipeline.seconds,
            "cpu_s": _cpu(pipeline),
            "peak_rss_mb": pipeline.peak_rss_mb,
            "stages": stage_times_all,
            "rows": rows,
            "checks": stages["checks"],
            # run_overhead split: before the Dagster run (interpreter, imports, dbt manifest
            # check), between steps, after it (steward queue refresh, exit)
            "overhead_split": _overhead_split(pipeline, stages),
            "slowest_steps": stages["step_list"][:10],
            "slowest_dbt_nodes": stages["node_list"][:10],
            "kpi_by_year": published_kpis,
        },
        "floor": _baseline_json(
            floor, floor_result, baseline_status(floor.returncode, median.floor_log)
        ),
        "pandas": _baseline_json(pandas, pandas_result, pandas_status),
    }
    results["ratios"] = _ratios(results)
    results["repeats"] = {
        "runs": [r.summary() for r in repeats],
        "reported_run": repeats.index(median) + 1,
        # only the reported run's home and floor database are kept; the others' logs stay
        "kept_home": str(paths.home),
    }
    results["consistency"] = {
        "floor_vs_pipeline": compare_kpis(published_kpis, floor_result.kpi_by_year)
        if floor_result and published_kpis
        else None,
        "pandas_vs_floor": compare_kpis(floor_result.kpi_by_year, pandas_result.kpi_by_year)
        if floor_result and pandas_result
        else None,
        "pandas_vs_floor_features": {
            "floor": floor_result.features_summary,
            "pandas": pandas_result.features_summary,
        }
        if floor_result and pandas_result
        else None,
    }
    results["quality"] = {
        "matching": matching_quality(paths.warehouse, truth),
        "segmentation": segmentation_accuracy(paths.warehouse, truth),
    }
    for run in repeats:
        if run is not median:
            run.drop_databases()
    stamp = dt.datetime.now().strftime("%Y%m%dT%H%M%S")
    out = bench_dir / f"bench_{key}_{stamp}.json"
    text = json.dumps(results, indent=2, default=str)
    out.write_text(text, encoding="utf-8")
    (bench_dir / "latest.json").write_text(text, encoding="utf-8")
    results["written_to"] = str(out)
    return results


def _overhead_split(pipeline: Measured, stages: dict) -> dict[str, float] | None:
    start, end = stages.get("run_started_at"), stages.get("run_ended_at")
    if not start or not end:
        return None
    return {
        "before_run": round(start - pipeline.started_at, 3),
        "between_steps": round(end - start - stages["steps_seconds"], 3),
        "after_run": round(pipeline.started_at + pipeline.seconds - end, 3),
    }


def _baseline_json(measured: Measured | None, result: BaselineResult | None, status: str) -> dict:
    if measured is None:
        return {"status": status}
    out = {
        "status": status,
        "exit_code": measured.returncode,  # negative: killed by that signal
        "seconds": measured.seconds,
        "cpu_s": _cpu(measured),
        "peak_rss_mb": measured.peak_rss_mb,
    }
    if result:
        out |= {
            "parts": result.seconds,
            "rows": result.rows,
            "kpi_by_year": result.kpi_by_year,
            "features_summary": result.features_summary,
        }
    return out


def _ratios(results: dict) -> dict:
    pipeline = results["pipeline"]
    # A baseline that failed or ran out of memory has no time to compare with.
    floor, pandas = (
        results[name] if results[name]["status"] == "ok" else {} for name in ("floor", "pandas")
    )
    stages = pipeline["stages"]
    per_part = {}
    for part in BASELINE_PARTS:
        pipe = sum(stages.get(s, 0.0) for s in COMPARABLE[part]) or None
        f = floor.get("parts", {}).get(part)
        p = pandas.get("parts", {}).get(part)
        per_part[part] = {
            "pipeline_s": round(pipe, 3) if pipe else None,
            "floor_s": f,
            "pandas_s": p,
            "pipeline_over_floor": _ratio(pipe, f),
            "pandas_over_pipeline": _ratio(p, pipe),
        }
    return {
        "overall": {
            "pipeline_over_floor": _ratio(pipeline["seconds"], floor.get("seconds")),
            "pandas_over_pipeline": _ratio(pandas.get("seconds"), pipeline["seconds"]),
            "pandas_over_floor": _ratio(pandas.get("seconds"), floor.get("seconds")),
        },
        "per_part": per_part,
        "extra_work_s": {k: stages.get(k, 0.0) for k in EXTRA_WORK},
    }
