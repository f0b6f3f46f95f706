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


# A fresh interpreter: `segments run`'s import-ahead of Great Expectations, started when the
# ingest step starts, while this (main) thread keeps using SQLAlchemy core as Dagster's event
# log storage does. Prints what the main thread ran into.
_IMPORT_RACE = """
import threading, types
import sqlalchemy
from dagster_project.cli import _import_when_steps_start

listeners = []
instance = types.SimpleNamespace(add_event_listener=lambda run_id, fn: listeners.append(fn))
_import_when_steps_start(instance, "run", {"raw_extracts": ("great_expectations",)})
event = types.SimpleNamespace(event_type_value="STEP_START", step_key="raw_extracts")
listeners[0](types.SimpleNamespace(dagster_event=event))
(ahead,) = [t for t in threading.enumerate() if t.name == "import-ahead"]
error = None
while ahead.is_alive() and error is None:
    try:
        sqlalchemy.select(1)
    except Exception as exc:
        error = exc
ahead.join()
print(repr(error))
"""


def test_importing_ahead_does_not_break_the_steps_own_use_of_sqlalchemy():
    # GX's import loads SQLAlchemy's ORM, which hooks into the SQLAlchemy core Dagster's storage
    # uses; the step failed at random with "partially initialized module 'sqlalchemy.orm.exc'".
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-c", _IMPORT_RACE], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "None"
