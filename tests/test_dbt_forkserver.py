"""segments-dbt, the dbt the pipeline runs: through the run's fork server it answers exactly as
dbt does (output, exit code, stdin, signals, the caller's environment and directory); without
a server it is dbt itself."""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dagster_project.transform.dbt_forkserver import SOCKET_ENV, DbtForkServer

DBT = str(Path(sys.executable).with_name("dbt"))
LAUNCHER = str(Path(sys.executable).with_name("segments-dbt"))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A running fork server and its log (one line per dbt it forked)."""
    log = tmp_path_factory.mktemp("forkserver") / "server.log"
    started = DbtForkServer.start(log)
    socket_path = os.environ.pop(SOCKET_ENV)  # each test hands the launcher its own environment
    yield socket_path, log
    started.stop()
    assert not Path(socket_path).parent.exists()


def dbt_environment(folder: Path, socket_path: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != SOCKET_ENV}
    # dbt writes its profiles folder and logs there, not into the real home
    env.update(
        HOME=str(folder), DBT_PROFILES_DIR=str(folder), DBT_SEND_ANONYMOUS_USAGE_STATS="false"
    )
    if socket_path:
        env[SOCKET_ENV] = socket_path
    return env


def run(executable: str, args: list[str], cwd: Path, env: dict[str, str]):
    done = subprocess.run(
        [executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )
    # dbt stamps its log lines with the time of day
    without_time = [
        re.sub(r"\d\d:\d\d:\d\d", "HH:MM:SS", out) for out in (done.stdout, done.stderr)
    ]
    return done.returncode, *without_time


def served(log: Path, args: str) -> bool:
    return f": dbt {args}\n" in log.read_text()


def test_a_usage_error_comes_back_as_from_dbt(server, tmp_path):
    socket_path, log = server
    through_server = run(
        LAUNCHER, ["--no-such-flag"], tmp_path, dbt_environment(tmp_path, socket_path)
    )
    assert served(log, "--no-such-flag")
    assert through_server == run(DBT, ["--no-such-flag"], tmp_path, dbt_environment(tmp_path))
    assert through_server[0] == 2
    assert "Usage: dbt [OPTIONS]" in through_server[2]


def test_dbt_runs_in_the_callers_directory_with_the_callers_environment(server, tmp_path):
    """The server was started elsewhere and without DBT_PROFILES_DIR: dbt still looks for the
    project in the launcher's directory and finds the profiles folder the launcher names."""
    socket_path, log = server
    project = tmp_path / "not_a_dbt_project"
    project.mkdir()
    through_server = run(LAUNCHER, ["ls"], project, dbt_environment(tmp_path, socket_path))
    assert served(log, "ls")
    assert through_server == run(DBT, ["ls"], project, dbt_environment(tmp_path))
    assert through_server[0] == 2
    assert (
        f"No dbt_project.yml found at expected path {project}/dbt_project.yml" in through_server[1]
    )


def forked_pid(log: Path, args: str) -> int:
    """The pid of the dbt the server forked for `args` (its log line may come after dbt's
    first output)."""
    deadline = time.monotonic() + 60
    while not served(log, args):
        assert time.monotonic() < deadline, "the server never forked dbt"
        time.sleep(0.01)
    return int(log.read_text().split(f": dbt {args}\n")[-2].rsplit("\n", 1)[-1])


def wait_until_reading_stdin(pid: int) -> None:
    """Until dbt blocks reading its stdin (pipe). Python's input() loses a SIGINT that arrives
    between writing its prompt and reading (it clears the flush's error), plain dbt too."""
    deadline = time.monotonic() + 60
    while "pipe_read" not in Path(f"/proc/{pid}/wchan").read_text():
        assert time.monotonic() < deadline, "dbt never waited for its answer"
        time.sleep(0.01)


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def interrupt_at_first_prompt(executable: str, folder: Path, env: dict[str, str], log=None):
    """`dbt init` waiting for its first answer on stdin, interrupted as dagster-dbt cancels
    dbt (SIGINT to the process it started). log: the server's, which names dbt's pid."""
    process = subprocess.Popen(
        [executable, "init"],
        cwd=folder,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        # SIGINT handled as in the Dagster process dagster-dbt starts dbt from: a test run
        # started as a background job inherits it ignored (shells ignore SIGINT for
        # asynchronous commands), and plain dbt would then keep ignoring the interrupt
        preexec_fn=_default_sigint,
    )
    output = b""
    while b"Enter a name for your project" not in output:
        chunk = process.stdout.read1(65536)
        assert chunk, output.decode()
        output += chunk
    dbt_pid = forked_pid(log, "init") if log else process.pid
    wait_until_reading_stdin(dbt_pid)
    process.send_signal(signal.SIGINT)
    # stdin stays open: only the interrupt can end the prompt (a bound, not a timing)
    while select.select([process.stdout], [], [], 60)[0]:
        chunk = process.stdout.read1(65536)
        if not chunk:
            break
        output += chunk
    else:
        process.kill()
        raise AssertionError(f"dbt was not interrupted:\n{output.decode()}")
    process.stdin.close()
    process.stdout.close()
    return process.wait(timeout=60), output.decode()


def test_an_interrupt_reaches_dbt_and_dbts_exit_code_comes_back(server, tmp_path):
    socket_path, log = server
    (tmp_path / "served").mkdir()
    (tmp_path / "plain").mkdir()
    code, output = interrupt_at_first_prompt(
        LAUNCHER, tmp_path / "served", dbt_environment(tmp_path / "served", socket_path), log
    )
    assert served(log, "init")
    plain_code, plain_output = interrupt_at_first_prompt(
        DBT, tmp_path / "plain", dbt_environment(tmp_path / "plain")
    )
    assert code == plain_code != 0
    last_lines = output.rstrip().splitlines()[-1], plain_output.rstrip().splitlines()[-1]
    assert last_lines == ("click.exceptions.Abort",) * 2


def test_without_a_server_the_launcher_is_plain_dbt(tmp_path):
    plain = run(DBT, ["--no-such-flag"], tmp_path, dbt_environment(tmp_path))
    assert run(LAUNCHER, ["--no-such-flag"], tmp_path, dbt_environment(tmp_path)) == plain
    # a server that is gone (the run ended, or it died): its socket names nobody
    gone = str(tmp_path / "gone.sock")
    assert run(LAUNCHER, ["--no-such-flag"], tmp_path, dbt_environment(tmp_path, gone)) == plain


def test_the_server_ends_with_the_process_that_started_it(tmp_path):
    """A run that dies without stopping its server leaves no server behind."""
    started = subprocess.run(
        [
            sys.executable,
            "-c",
            "import os, sys\n"
            "from pathlib import Path\n"
            "from dagster_project.transform.dbt_forkserver import DbtForkServer\n"
            f"server = DbtForkServer.start(Path({str(tmp_path / 'server.log')!r}))\n"
            "print(server._process.pid, os.environ['SEGMENTS_DBT_FORKSERVER'], flush=True)\n"
            "os._exit(0)\n",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    pid, socket_path = started.stdout.split()
    try:
        pidfd = os.pidfd_open(int(pid))
    except ProcessLookupError:
        pidfd = None  # already gone
    if pidfd is not None:
        ended, _, _ = select.select([pidfd], [], [], 60)
        os.close(pidfd)
        assert ended, "the server outlived the process that started it"
    assert not Path(socket_path).parent.exists()
