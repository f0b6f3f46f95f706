"""The bench results as a readable terminal table (the JSON holds everything)."""

from __future__ import annotations

from dagster_project.bench.common import BASELINE_PARTS
from dagster_project.bench.pipeline_stages import OVERHEAD_DBT, OVERHEAD_RUN, STAGES


def _s(value) -> str:
    return "-" if value is None else f"{value:,.1f}s"


def _x(value) -> str:
    return "-" if value is None else f"{value:.3g}x"


def _cpu_text(measured: dict) -> str:
    cpu = measured.get("cpu_s")
    return "-" if cpu is None else f"{cpu['user']:,.0f}s/{cpu['system']:,.0f}s"


def format_results(r: dict) -> str:
    scale, pipe, floor, pandas = r["scale"], r["pipeline"], r["floor"], r["pandas"]
    lines = [
        f"segments bench: {scale['customers']:,} companies, {scale['years']} years, seed "
        f"{scale['seed']}: {scale['order_lines']:,} order lines, {scale['landing_mb']:,} MB landing",
        f"DuckDB memory_limit {r['duckdb']['memory_limit']}, threads {r['duckdb']['threads']}; "
        f"{r['machine']['cpus']} CPUs (load {r['machine']['load_before'][0]:.1f} before, "
        f"{r['machine']['load_after'][0]:.1f} after); as-of {r['as_of']}",
        "",
        f"{'pipeline stage':<22}{'seconds':>10}{'rows':>14}",
    ]
    for stage in (*STAGES, OVERHEAD_DBT, OVERHEAD_RUN):
        rows = pipe["rows"].get(stage)
        if stage == "validation":
            rows_text = f"{pipe['checks']} checks"
        else:
            rows_text = "" if rows is None else f"{rows:,}"
        lines.append(f"  {stage:<20}{pipe['stages'].get(stage, 0):>9.1f}s{rows_text:>14}")
    lines.append(
        f"  {'total (wall)':<20}{pipe['seconds']:>9.1f}s   exit {pipe['exit_code']}, "
        f"peak RSS {pipe['peak_rss_mb']:,.0f} MB"
    )
    lines += [
        "",
        f"{'part':<10}{'pipeline':>10}{'floor':>10}{'pandas':>10}"
        f"{'pipe/floor':>12}{'pandas/pipe':>13}",
    ]
    for part in BASELINE_PARTS:
        p = r["ratios"]["per_part"][part]
        lines.append(
            f"  {part:<8}{_s(p['pipeline_s']):>10}{_s(p['floor_s']):>10}{_s(p['pandas_s']):>10}"
            f"{_x(p['pipeline_over_floor']):>12}{_x(p['pandas_over_pipeline']):>13}"
        )
    overall = r["ratios"]["overall"]
    lines.append(
        f"  {'total':<8}{_s(pipe['seconds']):>10}{_s(floor.get('seconds')):>10}"
        f"{_s(pandas.get('seconds')):>10}{_x(overall['pipeline_over_floor']):>12}"
        f"{_x(overall['pandas_over_pipeline']):>13}"
    )
    extra = r["ratios"]["extra_work_s"]
    lines.append(
        "  extra work in the pipeline only: " + ", ".join(f"{k} {v:.1f}s" for k, v in extra.items())
    )
    lines.append(
        f"  peak RSS: pipeline {pipe['peak_rss_mb']:,.0f} MB, floor "
        f"{floor.get('peak_rss_mb', 0):,.0f} MB ({floor['status']}), pandas "
        + (f"{pandas['peak_rss_mb']:,.0f} MB" if "peak_rss_mb" in pandas else "-")
        + f" ({pandas['status']})"
    )
    lines.append(
        f"  CPU user/system: pipeline {_cpu_text(pipe)}, floor {_cpu_text(floor)}, pandas {_cpu_text(pandas)}"
    )
    runs = r["repeats"]["runs"]
    if len(runs) > 1:
        lines.append(
            f"  {len(runs)} runs, pipeline/floor: "
            + ", ".join(
                f"{run['pipeline_s']:.1f}s/{run['floor_s']:.1f}s {_x(run['pipeline_over_floor'])}"
                for run in runs
            )
            + f"; the figures above are run {r['repeats']['reported_run']}'s (median ratio),"
            f" whose home is kept: {r['repeats']['kept_home']}"
        )
    c = r["consistency"]
    if c["floor_vs_pipeline"]:
        f = c["floor_vs_pipeline"]
        lines.append(
            f"  floor vs published KPIs: years match {f['years_match']}, count diff "
            f"{f['max_count_diff']}, money diff {f['max_money_abs_diff']:.4f} EUR"
        )
    if c["pandas_vs_floor"]:
        f = c["pandas_vs_floor"]
        lines.append(
            f"  pandas vs floor KPIs: count diff {f['max_count_diff']}, money diff "
            f"{f['max_money_rel_diff']:.1e} relative (float arithmetic)"
        )
    q = r["quality"]
    lines.append("")
    if q["matching"]:
        m = q["matching"]
        lines.append(
            f"matching (pairwise vs truth): precision {m['precision']:.3f}, recall "
            f"{m['recall']:.3f}, F1 {m['f1']:.3f} ({m['records_scored']:,} records)"
        )
    if q["segmentation"]:
        lines.append(
            "segmentation accuracy vs truth: "
            + ", ".join(
                f"{column} {score['accuracy']:.3f} ("
                + (
                    f"{score['customers']:,} customers"
                    if "customers" in score
                    else f"{score['projects']:,} projects"
                )
                + ")"
                for column, score in q["segmentation"].items()
            )
        )
    else:
        lines.append("segmentation accuracy: - (no segmentation tables yet)")
    if "written_to" in r:
        lines.append(f"results: {r['written_to']}")
    return "\n".join(lines)
