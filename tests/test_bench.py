"""`segments bench` at a tiny scale: every stage timed, baselines agree with the pipeline, and
running out of memory is reported, not fatal. No assertion on how fast anything is."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import duckdb
import pytest

from dagster_project.bench.measure import run_measured
from dagster_project.bench.pipeline_stages import STAGES, stage_of_asset
from dagster_project.bench.quality import matching_quality, segmentation_accuracy
from dagster_project.bench.runner import (
    baseline_status,
    compare_kpis,
    ensure_landing,
    warm_file_cache,
)
from dagster_project.identity.evaluation import pairwise_scores
from tests.conftest import run_segments

BENCH_CUSTOMERS = 100
BENCH_YEARS = 2


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory) -> tuple[Path, dict, str]:
    home = tmp_path_factory.mktemp("bench_home")
    result = run_segments(
        "bench",
        "--customers",
        str(BENCH_CUSTOMERS),
        "--years",
        str(BENCH_YEARS),
        "--seed",
        "5",
        "--repeat",
        "2",
        "--home",
        str(home),
        check=True,
    )
    written = sorted((home / "bench").glob("bench_c*.json"))
    assert len(written) == 1, list((home / "bench").iterdir())
    return home, json.loads(written[0].read_text(encoding="utf-8")), result.stdout


@pytest.mark.e2e
def test_bench_times_every_stage_and_counts_rows(bench_run):
    _, results, stdout = bench_run
    pipeline = results["pipeline"]
    assert pipeline["exit_code"] == 0
    assert set(STAGES) <= set(pipeline["stages"])
    for stage in ("ingest", "staging", "identity", "marts", "validation", "kpi_marts", "publish"):
        assert pipeline["stages"][stage] > 0, stage
    for stage in ("ingest", "staging", "identity", "marts", "kpi_marts", "publish"):
        assert pipeline["rows"][stage] > 0, stage
    assert pipeline["checks"] > 0
    # Stages plus overheads account for the whole run, no more.
    assert sum(pipeline["stages"].values()) == pytest.approx(pipeline["seconds"], rel=0.05)
    assert pipeline["peak_rss_mb"] > 50
    assert results["duckdb"]["memory_limit"] and results["duckdb"]["threads"] >= 1
    assert "pipe/floor" in stdout and "precision" in stdout


@pytest.mark.e2e
def test_repeated_runs_are_all_listed_and_the_median_one_reported(bench_run):
    _, results, stdout = bench_run
    runs = results["repeats"]["runs"]
    assert len(runs) == 2
    reported = runs[results["repeats"]["reported_run"] - 1]
    assert reported["pipeline_s"] == results["pipeline"]["seconds"]
    assert reported["floor_s"] == results["floor"]["seconds"]
    # of two runs, the lower middle: the one with the lower ratio
    assert reported["pipeline_over_floor"] == min(run["pipeline_over_floor"] for run in runs)
    for run in runs:  # CPU of the whole process tree, dbt's processes included
        assert run["pipeline_cpu_s"]["user"] > 0 and run["floor_cpu_s"]["user"] > 0
    assert results["pipeline"]["cpu_s"] == reported["pipeline_cpu_s"]
    assert "2 runs, pipeline/floor: " in stdout and "CPU user/system: pipeline " in stdout


@pytest.mark.e2e
def test_repeated_runs_keep_only_the_reported_runs_databases(bench_run):
    home, results, _ = bench_run
    reported = results["repeats"]["reported_run"]
    folders = sorted((home / "bench" / "runs").glob("*/run-*"))
    assert [f.name for f in folders] == ["run-1", "run-2"]
    for folder in folders:
        # every run's logs stay, to look into a slow run
        assert (folder / "pipeline.log").exists() and (folder / "floor.log").exists()
        kept = folder.name == f"run-{reported}"
        assert (folder / "home" / "warehouse.duckdb").exists() == kept
        assert (folder / "floor.duckdb").exists() == kept
    assert results["repeats"]["kept_home"] == str((folders[reported - 1] / "home").resolve())


@pytest.mark.e2e
def test_bench_ratios_are_computed(bench_run):
    _, results, _ = bench_run
    ratios = results["ratios"]
    assert ratios["overall"]["pipeline_over_floor"] > 0
    assert ratios["overall"]["pandas_over_pipeline"] > 0
    for part in ("ingest", "facts", "kpis"):
        assert ratios["per_part"][part]["pipeline_over_floor"] > 0, part
        assert ratios["per_part"][part]["pandas_over_pipeline"] > 0, part
    assert set(ratios["extra_work_s"]) >= {"identity", "validation", "publish"}
    assert results["floor"]["peak_rss_mb"] > 0 and results["pandas"]["status"] == "ok"


@pytest.mark.e2e
def test_floor_yearly_kpis_equal_the_published_kpis(bench_run):
    _, results, _ = bench_run
    published = results["pipeline"]["kpi_by_year"]
    floor = results["floor"]["kpi_by_year"]
    assert published and sorted(floor) == sorted(published)
    for year, figures in published.items():
        assert floor[year]["orders"] == figures["orders"], year
        assert floor[year]["order_lines"] == figures["order_lines"], year
        for money in ("revenue_eur", "cost_eur", "margin_eur"):
            assert floor[year][money] == pytest.approx(figures[money], abs=0.01), (year, money)


@pytest.mark.e2e
def test_pandas_baseline_agrees_with_the_floor(bench_run):
    _, results, _ = bench_run
    floor, pandas = results["floor"], results["pandas"]
    assert sorted(pandas["kpi_by_year"]) == sorted(floor["kpi_by_year"])
    for year, figures in floor["kpi_by_year"].items():
        assert pandas["kpi_by_year"][year]["order_lines"] == figures["order_lines"]
        # pandas works in floats (fx rates as doubles): equal within a relative 1e-3
        assert pandas["kpi_by_year"][year]["revenue_eur"] == pytest.approx(
            figures["revenue_eur"], rel=1e-3
        )
    assert pandas["features_summary"]["customers"] == floor["features_summary"]["customers"]
    assert pandas["features_summary"]["frequency"] == floor["features_summary"]["frequency"]


@pytest.mark.e2e
def test_matching_quality_is_reported_beside_the_timings(bench_run):
    _, results, _ = bench_run
    matching = results["quality"]["matching"]
    assert 0 < matching["precision"] <= 1 and 0 < matching["recall"] <= 1
    assert matching["records_scored"] > BENCH_CUSTOMERS


def test_landing_data_is_generated_once_per_scale(tmp_path):
    said: list[str] = []
    first = ensure_landing(tmp_path, 20, 1, 1, say=said.append)
    stamp = (Path(first["landing"]).parent / "generated.json").stat().st_mtime_ns
    second = ensure_landing(tmp_path, 20, 1, 1, say=said.append)
    assert second == first and "reusing" in said[-1]
    assert (Path(first["landing"]).parent / "generated.json").stat().st_mtime_ns == stamp
    assert (Path(first["truth"]) / "source_records.csv").exists()


def test_cache_warmup_reads_every_landing_file_whole(tmp_path):
    (tmp_path / "erp" / "order_lines").mkdir(parents=True)
    (tmp_path / "erp" / "order_lines" / "a.csv").write_bytes(b"x" * 3000)
    (tmp_path / "crm.csv").write_bytes(b"y" * 25)
    warmed = warm_file_cache(tmp_path, chunk_bytes=1024)
    assert warmed["files"] == 2 and warmed["bytes"] == 3025


def test_running_out_of_memory_is_reported_not_fatal(tmp_path):
    log = tmp_path / "greedy.log"
    measured = run_measured(
        [sys.executable, "-c", "block = bytearray(3 * 2**30)"],
        env={},
        log_path=log,
        address_space_limit=1 * 2**30,
    )
    assert measured.returncode != 0
    assert baseline_status(measured.returncode, log) == "out of memory"
    assert baseline_status(0, log) == "ok"


def test_dbt_nodes_and_assets_map_to_design_stages():
    assert stage_of_asset(["raw", "erp__order_lines"]) == "ingest"
    assert stage_of_asset(["staging", "stg_erp__order_lines"]) == "staging"
    assert stage_of_asset(["seeds", "segment_taxonomy"]) == "staging"
    assert stage_of_asset(["identity", "customer_source_map"]) == "identity"
    assert stage_of_asset(["marts", "fct_order_lines"]) == "marts"
    assert stage_of_asset(["marts", "kpi_revenue_by_customer_year"]) == "kpi_marts"
    assert stage_of_asset(["marts", "customer_segments"]) == "segmentation"
    assert stage_of_asset(["published", "analytics"]) == "publish"


def test_kpi_comparison_finds_a_difference():
    reference = {"2024": {"orders": 3, "order_lines": 9, "revenue_eur": 100.0}}
    assert compare_kpis(reference, reference)["max_money_abs_diff"] == 0
    off = compare_kpis(reference, {"2024": {"orders": 3, "order_lines": 8, "revenue_eur": 90.0}})
    assert off["max_count_diff"] == 1 and off["max_money_abs_diff"] == 10
    assert not compare_kpis(reference, {})["years_match"]


def test_pairwise_matching_scores_from_cluster_sizes(tmp_path):
    """4 records of one company split 3+1, and a wrong merge with another company's record."""
    truth = tmp_path / "truth"
    truth.mkdir()
    (truth / "source_records.csv").write_text(
        "source_system,entity,source_id,company_id,record_kind\n"
        "crm,accounts,A1,C1,primary\ncrm,accounts,A2,C1,duplicate\n"
        "erp,customers,E1,C1,primary\nerp,customers,E2,C1,recreated_old\n"
        "erp,customers,E3,C2,primary\n",
        encoding="utf-8",
    )
    warehouse = tmp_path / "w.duckdb"
    con = duckdb.connect(str(warehouse))
    con.execute("create schema identity")
    con.execute(
        "create table identity.customer_source_map as select * from (values"
        " ('crm', 'A1', 'X'), ('crm', 'A2', 'X'), ('erp', 'E1', 'X'), ('erp', 'E2', 'Y'),"
        " ('erp', 'E3', 'Y')) as t(source_system, source_id, customer_id)"
    )
    scores = pairwise_scores(con, truth)
    con.close()
    # predicted pairs: X has 3 records (3 pairs), Y has 2 (1 pair) = 4; true pairs: C1 has 4
    # records (6 pairs); correct: X∩C1 = 3 records (3 pairs), Y∩C1 = 1, Y∩C2 = 1 -> 3.
    assert (scores["predicted_pairs"], scores["true_pairs"], scores["correct_pairs"]) == (4, 6, 3)
    assert scores["precision"] == pytest.approx(0.75)
    assert scores["recall"] == pytest.approx(0.5)
    assert matching_quality(warehouse, truth)["f1"] == pytest.approx(0.6)


def test_segmentation_accuracy_scores_what_the_segments_tables_assign(tmp_path):
    truth = tmp_path / "truth"
    truth.mkdir()
    (truth / "source_records.csv").write_text(
        "source_system,entity,source_id,company_id,record_kind\n"
        "crm,accounts,A1,C1,primary\ncrm,accounts,A2,C2,primary\ncrm,accounts,A3,C3,primary\n",
        encoding="utf-8",
    )
    (truth / "companies.csv").write_text(
        "company_id,segment,service_tier\nC1,Energy,High-touch\nC2,Industry,Low-touch\n"
        "C3,Industry,Low-touch\n",
        encoding="utf-8",
    )
    warehouse = tmp_path / "w.duckdb"
    con = duckdb.connect(str(warehouse))
    con.execute("create schema identity")
    con.execute("create schema segments")
    con.execute(
        "create table identity.customer_source_map as select * from (values"
        " ('crm', 'A1', 'X'), ('crm', 'A2', 'Y'), ('crm', 'A3', 'Z'))"
        " as t(source_system, source_id, customer_id)"
    )
    con.execute(
        "create table segments.customer_service_tier as select * from (values"
        " ('X', 'High-touch'), ('Y', 'Low-touch'), ('Z', 'High-touch'))"
        " as t(customer_id, service_tier)"
    )
    con.close()
    scores = segmentation_accuracy(warehouse, truth)
    assert set(scores) == {"service_tier"}
    assert scores["service_tier"]["accuracy"] == pytest.approx(2 / 3, abs=1e-4)
    assert scores["service_tier"]["customers"] == 3
