"""`segments review`: the queue grouped by kind with impact, filters, CSV export."""

from __future__ import annotations

import csv

import pandas as pd
from click.testing import CliRunner

from dagster_project.cli import main
from dagster_project.steward.queue import QUEUE_COLUMNS


def _finding(**values):
    return {c: values.get(c) for c in QUEUE_COLUMNS}


def _write_queue(home):
    rows = [
        _finding(
            finding_id="a",
            kind="failed_expectation",
            severity="error",
            entity="kpi",
            record_key="C1/2024",
            rule="revenue_reconciles_facts_to_kpi",
            customers_affected=1,
            revenue_eur_affected=250.0,
            status="open",
        ),
        _finding(
            finding_id="b",
            kind="failed_expectation",
            severity="warn",
            entity="order_lines",
            record_key="0099-10",
            rule="order_line_order_known",
            status="open",
        ),
        _finding(
            finding_id="c",
            kind="rejected_row",
            severity="warn",
            entity="accounts",
            source_file="crm/accounts/a.csv",
            line=44,
            rule="unparseable_dec",
            status="open",
        ),
        _finding(
            finding_id="d",
            kind="rejected_row",
            severity="warn",
            entity="accounts",
            line=7,
            rule="missing_required",
            status="resolved",
        ),
    ]
    (home / "steward").mkdir(parents=True)
    pd.DataFrame(rows, columns=QUEUE_COLUMNS).to_parquet(home / "steward" / "steward_queue.parquet")


def test_review_groups_open_findings_by_kind_with_impact(tmp_path):
    _write_queue(tmp_path)
    result = CliRunner().invoke(main, ["review", "--home", str(tmp_path)])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "3 open findings" in out
    # Blocking kinds first, with their impact.
    assert out.index("failed_expectation:") < out.index("rejected_row:")
    assert "failed_expectation: 2 finding(s), 1 blocking" in out
    assert "revenue affected: 250 EUR" in out
    assert "C1/2024" in out  # the key a steward looks the row up by
    assert "crm/accounts/a.csv line 44:" in out  # no key: the file and line
    assert "rejected_row: 1 finding(s)" in out  # the resolved one is not shown


def test_review_filters_and_exports_csv(tmp_path):
    _write_queue(tmp_path)
    export = tmp_path / "out" / "errors.csv"
    result = CliRunner().invoke(
        main,
        ["review", "--home", str(tmp_path), "--severity", "error", "--export", str(export)],
    )
    assert result.exit_code == 0, result.output
    assert "rejected_row" not in result.output
    with open(export, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["record_key"], r["rule"]) for r in rows] == [
        ("C1/2024", "revenue_reconciles_facts_to_kpi")
    ]
    assert list(rows[0]) == QUEUE_COLUMNS


def test_review_without_a_queue_is_a_usage_error(tmp_path):
    result = CliRunner().invoke(main, ["review", "--home", str(tmp_path)])
    assert result.exit_code == 2
    assert "no steward queue" in result.output
