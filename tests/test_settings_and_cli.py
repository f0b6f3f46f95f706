"""Config is validated with the offending key named; the CLI's usage errors exit 2."""

from __future__ import annotations

import pydantic
import pytest
import yaml
from click.testing import CliRunner

from dagster_project.cli import main
from dagster_project.settings import SETTINGS_FILE, load_settings


def test_shipped_settings_load():
    s = load_settings()
    assert 0 < s.ingest.max_rejected_share < 1
    assert s.severity_of("rejected_file") == "error"
    assert "marts.dim_customer" in s.publish.tables


def test_typo_in_settings_names_the_key(tmp_path):
    raw = yaml.safe_load(SETTINGS_FILE.read_text())
    raw["ingest"]["max_rejected_shar"] = raw["ingest"].pop("max_rejected_share")
    bad = tmp_path / "pipeline.yml"
    bad.write_text(yaml.safe_dump(raw))
    with pytest.raises(pydantic.ValidationError, match="max_rejected_shar"):
        load_settings(bad)


def test_invalid_severity_is_rejected(tmp_path):
    raw = yaml.safe_load(SETTINGS_FILE.read_text())
    raw["severity"]["schema_drift"] = "fatal"
    bad = tmp_path / "pipeline.yml"
    bad.write_text(yaml.safe_dump(raw))
    with pytest.raises(pydantic.ValidationError, match="schema_drift"):
        load_settings(bad)


def test_cli_usage_errors_exit_2(tmp_path):
    runner = CliRunner()
    assert (
        runner.invoke(main, ["run", "--as-of", "31.12.2025", "--home", str(tmp_path)]).exit_code
        == 2
    )
    assert runner.invoke(main, ["no-such-command"]).exit_code == 2
    missing = runner.invoke(
        main, ["run", "--landing", str(tmp_path / "nope"), "--home", str(tmp_path)]
    )
    assert missing.exit_code == 2 and "nope" in missing.output


def test_help_teaches_the_commands():
    out = CliRunner().invoke(main, ["--help"]).output
    for word in ("generate", "run", "demo", "published", "steward"):
        assert word in out
