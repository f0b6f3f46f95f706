"""A dbt fork server: dbt's imports paid once per run instead of once per dbt process.

Every dbt process spends ~1.3 s of one core importing dbt before it does any work, and a run
starts dbt twice, each time on the run's critical path. `segments run` therefore starts a server
process (DbtForkServer) that imports dbt's CLI, the DuckDB adapter and the build task once, beside
the run's own start-up, and then waits on a Unix socket. The dbt executable dagster-dbt starts is
the launcher `segments-dbt` (launch()): it hands its argv, environment, working directory and
stdin/stdout/stderr to the server, which forks a child that runs dbt's CLI exactly as the `dbt`
console script does, and reports the child's exit status back; the launcher exits with it. To
dagster-dbt the launcher looks like dbt: same output on the same pipe, same exit code, SIGINT
and SIGTERM forwarded to dbt.

Without a reachable server (`dagster dev`, schedules, tests, other platforms) the launcher execs
the venv's `dbt` with the same arguments: the same as running dbt directly.

The launcher is on the path of every dbt invocation: this module imports only the standard
library at module level; dbt is imported by the server alone.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

# The server's socket, for the launchers the run starts (set by DbtForkServer.start).
SOCKET_ENV = "SEGMENTS_DBT_FORKSERVER"
# What the server imports before it forks: what `dbt build` and `dbt parse` import anyway (a
# dbt build imports only a handful of small modules beyond these). Imports only: no threads and
# no DuckDB connection exist in the server, so that fork() copies a consistent process.
PRELOAD = (
    "dbt.cli.main",
    "dbt.adapters.duckdb",
    "dbt.task.build",
    "dbt.parser.schema_yaml_readers",
)
_HEADER = struct.Struct("!I")  # the request's length, before the JSON request
_STD_FDS = (0, 1, 2)
_FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM)


# The launcher's console script, beside this interpreter.
LAUNCHER = Path(sys.executable).with_name("segments-dbt")


def venv_dbt() -> str:
    """The `dbt` installed beside this interpreter (the one the launcher stands in for)."""
    dbt = Path(sys.executable).with_name("dbt")
    return str(dbt) if dbt.exists() else "dbt"


def dbt_command() -> str:
    """The dbt executable for the pipeline's dbt invocations: the launcher where it can work
    (POSIX, installed), else the venv's dbt."""
    return str(LAUNCHER) if os.name == "posix" and LAUNCHER.exists() else venv_dbt()


# --------------------------------------------------------------------------------------------
# Launcher (console script `segments-dbt`)


def launch() -> None:
    """Run dbt with this process's arguments: through the run's fork server when one is
    reachable, else by exec'ing the venv's dbt."""
    path = os.environ.get(SOCKET_ENV)
    if path and hasattr(socket, "send_fds"):
        returncode = _run_through_server(path, sys.argv[1:])
        if returncode is not None:
            _exit_like(returncode)
    dbt = venv_dbt()
    os.execvp(dbt, [dbt, *sys.argv[1:]])


def _run_through_server(path: str, args: list[str]) -> int | None:
    """dbt's return code as subprocess reports it (negative: killed by that signal), or None
    when the server could not take the request (nothing was started: fall back to exec)."""
    try:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(path)
    except OSError:
        return None
    child: list[int] = []  # dbt's pid, once the server has forked it
    pending: list[int] = []  # signals that arrived before it

    def forward(signum, _frame) -> None:
        # dagster-dbt stops dbt with SIGINT on cancellation: dbt, not the launcher, must get it
        if child:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child[0], signum)
        else:
            pending.append(signum)

    for signum in _FORWARDED_SIGNALS:
        signal.signal(signum, forward)
    std = [fd for fd in _STD_FDS if _is_open(fd)]
    umask = os.umask(0)
    os.umask(umask)
    try:
        request = json.dumps(
            {
                "args": args,
                "env": dict(os.environ),
                "cwd": os.getcwd(),
                "umask": umask,
                "pgid": os.getpgrp(),
                "std": std,
            }
        ).encode()
        message = _HEADER.pack(len(request)) + request
        sent = socket.send_fds(sock, [message], std)
        sock.sendall(message[sent:])
        replies = sock.makefile("rb")
        started = replies.readline()
    except OSError:
        return None
    if not started:  # the server went away before it forked dbt
        return None
    child.append(json.loads(started)["pid"])
    for signum in pending:
        forward(signum, None)
    try:
        finished = replies.readline()
    except OSError:
        finished = b""
    if finished:
        return json.loads(finished)["returncode"]
    # The server was killed while dbt ran: dbt's status is lost with it.
    _wait_for_exit(child[0])
    print(
        "segments-dbt: the dbt fork server stopped; dbt's exit status is unknown", file=sys.stderr
    )
    return 1


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def _wait_for_exit(pid: int) -> None:
    with contextlib.suppress(OSError), os.fdopen(os.pidfd_open(pid), "rb") as pidfd:
        import select

        select.select([pidfd], [], [])


def _exit_like(returncode: int) -> None:
    """Exit as dbt did: with its exit code, or killed by the signal that killed it."""
    sys.stdout.flush()
    sys.stderr.flush()
    if returncode < 0:
        signal.signal(-returncode, signal.SIG_DFL)
        os.kill(os.getpid(), -returncode)
        returncode = 128 - returncode  # the signal is not fatal here (stopped, ignored)
    os._exit(returncode)


# --------------------------------------------------------------------------------------------
# The run's side: start and stop the server


class DbtForkServer:
    """The server process of one run. start() returns at once (the server imports dbt beside
    the run); stop() ends it. The server also ends when this process ends: its stdin is a pipe
    from here, and end of file on it means stop."""

    def __init__(self, process: subprocess.Popen, folder: Path):
        self._process = process
        self._folder = folder

    @classmethod
    def start(cls, log_file: Path) -> DbtForkServer | None:
        """Start the server and point this process's launchers at it (None where the
        platform lacks what the server needs: the launchers then run dbt directly)."""
        if not (hasattr(socket, "send_fds") and hasattr(os, "pidfd_open")):
            return None
        # A private folder (mode 0700): only this user can connect and hand dbt an environment.
        folder = Path(tempfile.mkdtemp(prefix="segments-dbt-"))
        path = folder / "dbt.sock"
        log_file.parent.mkdir(parents=True, exist_ok=True)
        # Listening before this returns: a launcher that comes while the server still imports
        # dbt (the run's `dbt parse` comes at once) waits in the queue instead of running dbt
        # without it. Only the server keeps the socket: when it ends, launchers find nobody.
        with (
            socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener,
            open(log_file, "wb") as log,
        ):
            listener.bind(str(path))
            listener.listen(16)
            process = subprocess.Popen(
                # -c, not -m: dbt's usage messages name the program after __main__'s package
                [sys.executable, "-c", f"from {__name__} import main; main()", str(path)]
                + [str(listener.fileno())],
                stdin=subprocess.PIPE,
                cwd=folder,  # -c puts the working directory first on sys.path: an empty one
                stdout=log,
                stderr=subprocess.STDOUT,
                pass_fds=(listener.fileno(),),
            )
        os.environ[SOCKET_ENV] = str(path)
        return cls(process, folder)

    def stop(self) -> None:
        if os.environ.get(SOCKET_ENV, "").startswith(str(self._folder)):
            del os.environ[SOCKET_ENV]
        with contextlib.suppress(OSError):
            self._process.stdin.close()  # the server's signal to stop
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        with contextlib.suppress(OSError):
            (self._folder / "dbt.sock").unlink(missing_ok=True)
            self._folder.rmdir()

    def __enter__(self) -> DbtForkServer:
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()


# --------------------------------------------------------------------------------------------
# Server (main(): python -c 'from dagster_project.transform.dbt_forkserver import main; main()' SOCKET)


def serve(path: str, listener: socket.socket) -> None:
    """Accept launchers' requests on `listener` (bound to `path` by DbtForkServer.start) and
    fork one dbt per request, until stdin ends (DbtForkServer.stop, or the run's process died);
    then wait for the dbt processes still running and report their status."""
    import gc
    import importlib
    import selectors

    # sys.path as the `dbt` console script has it: its own folder first, not the working
    # directory (-c), which the dbt children change to the launchers'.
    sys.path[0] = str(Path(venv_dbt()).parent)
    # Terminal Ctrl-C reaches the whole process group: it is for the run and its dbt, not here.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for module in PRELOAD:
        importlib.import_module(module)
    # The imported objects are never freed: out of the collector's way, so that each dbt child
    # neither scans nor copies (copy-on-write) them in its collections.
    gc.collect()
    gc.freeze()

    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ, "accept")
    selector.register(sys.stdin, selectors.EVENT_READ, "stop")
    running: dict[int, tuple[int, socket.socket]] = {}  # pidfd -> (pid, launcher connection)

    def close_in_child() -> None:
        selector.close()
        listener.close()
        for pidfd, (_pid, conn) in running.items():
            os.close(pidfd)
            conn.close()

    accepting = True
    while accepting or running:
        for key, _events in selector.select():
            if key.data == "stop":
                selector.unregister(listener)
                selector.unregister(sys.stdin)
                listener.close()
                with contextlib.suppress(OSError):
                    os.unlink(path)
                    os.rmdir(os.path.dirname(path))  # the private folder, if the run cannot
                accepting = False
            elif key.data == "accept":
                conn, _address = listener.accept()
                started = _start_dbt(conn, close_in_child)
                if started is None:
                    conn.close()
                    continue
                pidfd = os.pidfd_open(started)
                running[pidfd] = (started, conn)
                selector.register(pidfd, selectors.EVENT_READ, "exited")
            else:  # a dbt child exited
                pidfd = key.fd
                selector.unregister(pidfd)
                pid, conn = running.pop(pidfd)
                os.close(pidfd)
                _pid, status = os.waitpid(pid, 0)
                returncode = _returncode(status)
                print(f"{pid}: returncode {returncode}", flush=True)
                with contextlib.suppress(OSError):
                    conn.sendall(b'{"returncode": %d}\n' % returncode)
                conn.close()


def _start_dbt(conn: socket.socket, close_in_child) -> int | None:
    """Read one launcher's request and fork dbt for it; its pid, or None for a bad request."""
    fds: list[int] = []
    try:
        conn.settimeout(10)  # a launcher that connects and says nothing must not stall the server
        received, fds, _flags, _address = socket.recv_fds(conn, 65536, len(_STD_FDS))
        received = _receive_more(conn, received, _HEADER.size)
        (length,) = _HEADER.unpack(received[: _HEADER.size])
        request = json.loads(_receive_more(conn, received, _HEADER.size + length)[_HEADER.size :])
        conn.settimeout(None)
    except (OSError, ValueError, struct.error):
        for fd in fds:
            os.close(fd)
        return None
    pid = os.fork()
    if pid == 0:
        try:
            close_in_child()
            conn.close()
            _become_dbt(request, fds)
        finally:
            os._exit(70)  # not reached: _become_dbt exits
    for fd in fds:  # dbt's copies only: the pipe dagster-dbt reads must end when dbt ends
        os.close(fd)
    print(f"{pid}: dbt {' '.join(request['args'])}", flush=True)  # the server's log
    with contextlib.suppress(OSError):
        conn.sendall(b'{"pid": %d}\n' % pid)
    return pid


def _receive_more(conn: socket.socket, received: bytes, size: int) -> bytes:
    while len(received) < size:
        chunk = conn.recv(size - len(received))
        if not chunk:
            raise OSError("request cut short")
        received += chunk
    return received


def _returncode(status: int) -> int:
    if os.WIFSIGNALED(status):
        return -os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def _become_dbt(request: dict, fds: list[int]) -> None:
    """In the forked child: take the launcher's place and run dbt's CLI as the `dbt` console
    script does (`sys.exit(cli())`), then exit as that interpreter would."""
    import atexit
    import threading
    import traceback

    for stream in (sys.stdout, sys.stderr):  # the server's log: nothing of it into dbt's output
        stream.flush()
    for target, fd in zip(request["std"], fds, strict=True):
        os.dup2(fd, target)
        os.close(fd)
    for absent in set(_STD_FDS) - set(request["std"]):
        with contextlib.suppress(OSError):
            os.close(absent)
    with contextlib.suppress(OSError):
        os.setpgid(0, request["pgid"])  # the launcher's process group: terminal signals reach dbt
    for signum in _FORWARDED_SIGNALS:
        signal.signal(signum, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # as in any Python process
    os.environ.clear()
    os.environ.update(request["env"])
    os.umask(request["umask"])
    os.chdir(request["cwd"])
    _reopen_std_streams()
    sys.argv = [venv_dbt(), *request["args"]]

    from dbt.cli.main import cli

    code, killed_by = 1, None
    try:
        cli()  # click's standalone mode: always ends in SystemExit
    except SystemExit as done:
        code = _exit_code(done.code)
    except KeyboardInterrupt:
        # An uncaught KeyboardInterrupt ends Python with a traceback and death by SIGINT.
        traceback.print_exc()
        killed_by = signal.SIGINT
    except BaseException:
        traceback.print_exc()
    # The interpreter's own shutdown, minus unwinding the server's stack: non-daemon threads,
    # atexit handlers (logging's flush among them), buffered output.
    for thread in threading.enumerate():
        if thread is not threading.main_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    if killed_by is not None:
        signal.signal(killed_by, signal.SIG_DFL)
        os.kill(os.getpid(), killed_by)
    os._exit(code & 0xFF)


def _exit_code(code) -> int:
    """sys.exit's argument as the interpreter turns it into an exit status."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def _reopen_std_streams() -> None:
    """sys.stdin/stdout/stderr for the new fds 0/1/2, buffered as the interpreter would have
    set them up for the launcher's (a pipe is block-buffered, a terminal line-buffered)."""
    import io

    unbuffered = bool(os.environ.get("PYTHONUNBUFFERED"))
    encoding, _, errors = os.environ.get("PYTHONIOENCODING", "").partition(":")
    encoding = encoding or sys.__stdout__.encoding or "utf-8"

    def text(fd: int, mode: str, errors: str, line_buffered: bool | None = None):
        if not _is_open(fd):
            return None
        write_through = unbuffered and mode == "w"
        return io.TextIOWrapper(
            # -u / PYTHONUNBUFFERED: no buffer under the text layer either
            open(fd, mode + "b", buffering=0 if write_through else -1, closefd=False),
            encoding=encoding,
            errors=errors,
            line_buffering=os.isatty(fd) if line_buffered is None else line_buffered,
            write_through=write_through,
        )

    sys.stdin = sys.__stdin__ = text(0, "r", errors or "strict")
    sys.stdout = sys.__stdout__ = text(1, "w", errors or "strict")
    sys.stderr = sys.__stderr__ = text(2, "w", "backslashreplace", line_buffered=True)


def main() -> None:
    path, listener_fd = sys.argv[1], int(sys.argv[2])
    serve(path, socket.socket(fileno=listener_fd))
    # Without the interpreter's teardown: DuckDB's bindings report spurious leaks in it (cli.py).
    os._exit(0)
