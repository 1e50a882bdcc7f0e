"""A warm Python for job processes: a server that imports the jobs' heavy libraries once (MLflow,
scikit-learn, pandas, Evidently, Great Expectations, PySpark's client) and forks one process per job,
so a task stops paying 2-6 s of imports before its first line of work — the Python analogue of the
warm Spark (``scripts/spark_server.py``).

    python -m jobs.runtime.fork_server serve --socket <path>     # what scripts/job_server.py starts

A job run through it is still its own process, as ``python -m jobs.<job> <arguments>`` would be: its
own session and process group (killable as one), the caller's environment, working folder, stdin,
stdout and stderr (passed as file descriptors over the Unix socket), ``sys.argv``, and its exit code
(relayed by the server, negative for a signal). Jobs' own modules are imported fresh in each child;
only third-party libraries are preloaded. A caller that disconnects (its task was killed) has its
job's process group terminated.

The standard library's ``multiprocessing.forkserver`` preloads too, but belongs to one parent
process and runs functions, not commands with the caller's descriptors: each Airflow task is a new
process, so it would start (and import) its own server every time.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import importlib
import json
import logging
import os
import runpy
import selectors
import signal
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

SOCKET_ENV = "RUNWAY_JOB_SERVER"  # the server's socket path: set, jobs are forked from it
PRELOAD = (
    "numpy",
    "pandas",
    "pyarrow",
    "pyarrow.compute",
    "pyarrow.dataset",
    "deltalake",
    "yaml",
    "sklearn.compose",
    "sklearn.ensemble",
    "sklearn.metrics",
    "sklearn.pipeline",
    "sklearn.preprocessing",
    "mlflow",
    "mlflow.pyfunc",
    "mlflow.sklearn",
    "mlflow.models",
    "mlflow.tracking",
    "evidently",
    "evidently.metrics",
    "evidently.presets",
    "great_expectations",
    "pyspark.sql",
    "pyspark.sql.functions",
    "pyspark.sql.types",
    "pyspark.sql.connect.session",
)
_HEADER = struct.Struct("!I")  # the request's length, sent with the caller's descriptors
REQUEST_TIMEOUT = 10.0

log = logging.getLogger("runway.job_server")


class JobServerUnavailable(ConnectionError):
    """No job server answers on the socket (the caller falls back to a new interpreter)."""


# -- the server -----------------------------------------------------------------------------------
def preload(modules: tuple[str, ...] = PRELOAD) -> list[str]:
    """Import what jobs import; returns the modules that failed (an optional library missing)."""
    failed = []
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 — a library a job may not need: the job imports it itself
            log.warning("preload of %s failed: %s", name, exc)
            failed.append(name)
    return failed


@dataclass
class _Child:
    pid: int
    connection: socket.socket  # to its caller: the pid, then the exit code
    pidfd: int  # readable once the job has exited


REQUEST_KEYS = {"module", "arguments", "env", "cwd", "python"}


@dataclass
class JobServer:
    """Accepts requests on a Unix socket and forks a job for each; one thread, so forking is safe.
    The selector's keys carry what an event is about: ("accept", None), ("exited" | "caller", child)."""

    socket_path: Path
    children: set[int] = field(default_factory=set)  # the pids of running jobs

    def serve_forever(self) -> None:
        self.socket_path.unlink(missing_ok=True)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(self.socket_path))
        os.chmod(self.socket_path, 0o600)
        listener.listen(64)
        self._stopping = False
        signal.signal(signal.SIGTERM, lambda *_: setattr(self, "_stopping", True))
        with selectors.DefaultSelector() as selector:
            self._selector = selector
            selector.register(listener, selectors.EVENT_READ, ("accept", None))
            log.info("job server ready on %s (pid %d)", self.socket_path, os.getpid())
            while not self._stopping:
                for key, _ in selector.select(timeout=1.0):
                    what, child = key.data
                    if what == "accept":
                        self._start(listener.accept()[0])
                    elif what == "exited":
                        self._exited(child)
                    else:
                        self._caller_spoke(child)
            for pid in self.children:  # stopping: the jobs stop with the server
                _terminate(pid)
        listener.close()
        self.socket_path.unlink(missing_ok=True)

    def _start(self, connection: socket.socket) -> None:
        try:
            request, fds = _receive_request(connection)
        except (OSError, ValueError, EOFError) as exc:
            if not isinstance(exc, EOFError):  # a probe (status) connects and leaves: nothing to say
                log.warning("a request could not be read: %s", exc)
            connection.close()
            return
        if Path(request["python"]).parent != Path(sys.executable).parent:  # another environment's job
            _close_all(fds)
            with contextlib.suppress(OSError):
                _send(connection, {"refused": f"this server runs {sys.executable}, not {request['python']}"})
            connection.close()
            return
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the job's process: never returns
            _run_child(request, fds)
        _close_all(fds)
        child = _Child(pid, connection, os.pidfd_open(pid))
        self.children.add(pid)
        self._selector.register(child.pidfd, selectors.EVENT_READ, ("exited", child))
        self._selector.register(connection, selectors.EVENT_READ, ("caller", child))
        with contextlib.suppress(OSError):  # a caller already gone is seen as such by the selector
            _send(connection, {"pid": pid})

    def _caller_spoke(self, child: _Child) -> None:
        """A caller sends nothing after its request: end of file means it went away (its task was
        killed), and so does its job. Anything else is discarded."""
        try:
            gone = child.connection.recv(4096) == b""
        except OSError:
            gone = True
        if gone:
            _terminate(child.pid)
            self._selector.unregister(child.connection)

    def _exited(self, child: _Child) -> None:
        _, status = os.waitpid(child.pid, 0)
        self.children.discard(child.pid)
        self._selector.unregister(child.pidfd)
        os.close(child.pidfd)
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(child.connection)
        with contextlib.suppress(OSError):
            _send(child.connection, {"exit_code": os.waitstatus_to_exitcode(status)})
        child.connection.close()


def _close_all(fds: list[int]) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


def _terminate(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)


def _receive_request(connection: socket.socket) -> tuple[dict, list[int]]:
    """The request and the caller's stdin, stdout and stderr; ValueError (EOFError: the caller sent
    nothing) with the descriptors closed when it is not one."""
    connection.settimeout(REQUEST_TIMEOUT)
    header, fds, _, _ = socket.recv_fds(connection, _HEADER.size, 3)
    try:
        if not header:
            raise EOFError("the caller sent nothing")
        if len(header) != _HEADER.size or len(fds) != 3:
            raise ValueError("a request is a length and three descriptors (stdin, stdout, stderr)")
        (length,) = _HEADER.unpack(header)
        body = b""
        while len(body) < length:
            chunk = connection.recv(length - len(body))
            if not chunk:
                raise ValueError("the request ended early")
            body += chunk
        request = json.loads(body)
        if not isinstance(request, dict) or not request.keys() >= REQUEST_KEYS:
            raise ValueError(f"a request names {', '.join(sorted(REQUEST_KEYS))}")
    except (OSError, ValueError, EOFError):
        _close_all(fds)
        raise
    connection.settimeout(None)
    return request, fds


def _run_child(request: dict, fds: list[int]) -> None:
    """In the forked process: become ``python -m jobs.<job> <arguments>`` and exit with its code."""
    code = 1
    try:
        os.setsid()  # its own process group: the caller (or the server) stops the job as one
        for sig in (signal.SIGTERM, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        os.closerange(3, 1 << 16)  # the server's socket, other jobs' connections and pidfds
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        sys.path[0] = os.getcwd()  # as `python -m` puts it
        _reseed()
        sys.argv = ["-m", *request["arguments"]]
        code = _main(request["module"])
    except BaseException:  # noqa: BLE001 — the child must exit here, whatever happened
        import traceback

        traceback.print_exc()
    finally:
        with contextlib.suppress(BaseException):
            atexit._run_exitfuncs()  # what the interpreter runs at exit (logging, Spark, MLflow)
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _main(module: str) -> int:
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as exit_:
        if exit_.code is None or isinstance(exit_.code, int):
            return exit_.code or 0
        print(exit_.code, file=sys.stderr)
        return 1
    except BaseException:
        import traceback

        traceback.print_exc()
        return 1
    return 0


def _reseed() -> None:
    """Forked processes share the server's random state: give each its own, as a new one has."""
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        numpy.random.seed()


# -- the caller ----------------------------------------------------------------------------------
def _send(connection: socket.socket, message: dict) -> None:
    connection.sendall(json.dumps(message).encode() + b"\n")


@dataclass
class ForkedJob:
    """A job started by the server: its pid (= process group) and, once it ended, its exit code."""

    connection: socket.socket
    pid: int
    messages: BinaryIO  # the server's lines on the connection (the pid was the first)

    def wait(self) -> int | None:
        """Block until the job ends; its exit code (negative for a signal), None if the server went
        away (the caller then stops the job: ``stop_orphan``)."""
        line = self.messages.readline()
        self.close()
        return int(json.loads(line)["exit_code"]) if line.endswith(b"\n") else None

    def terminate(self) -> None:
        _terminate(self.pid)

    def close(self) -> None:
        """Hang up (the server then stops the job if it still runs, as for a caller that died)."""
        self.messages.close()
        self.connection.close()

    def stop_orphan(self, grace: float = 10.0) -> None:
        """Stop the job's process group and wait until it is gone (SIGKILL after ``grace``): a job
        whose server died must not run on beside the retry of its task."""
        _terminate(self.pid)
        deadline = time.monotonic() + grace
        while group_exists(self.pid):
            if time.monotonic() > deadline:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.pid, signal.SIGKILL)
                deadline = float("inf")
            time.sleep(0.05)


def group_exists(pgid: int) -> bool:
    """Whether any process of group ``pgid`` is alive (one of another user's counts)."""
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def start_job(
    socket_path: str | Path,
    module: str,
    arguments: list[str],
    *,
    env: dict[str, str],
    cwd: str | Path,
    stdin: int,
    stdout: int,
    stderr: int,
    python: str = sys.executable,
    connect_timeout: float = 2.0,
) -> ForkedJob:
    """Ask the server to fork ``<python> -m <module> <arguments>`` with these descriptors; raise
    ``JobServerUnavailable`` when no server answers or it runs another environment's interpreter."""
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    connection.settimeout(connect_timeout)
    try:
        connection.connect(str(socket_path))
        body = json.dumps(
            {
                "module": module,
                "arguments": [str(a) for a in arguments],
                "env": env,
                "cwd": str(cwd),
                "python": python,
            }
        ).encode()
        socket.send_fds(connection, [_HEADER.pack(len(body))], [stdin, stdout, stderr])
        connection.sendall(body)
        messages = connection.makefile("rb")  # one line per message; the next may follow in the same read
        reply = messages.readline()
        if not reply.endswith(b"\n"):
            raise ConnectionError("the server closed the connection")
    except OSError as exc:
        connection.close()
        raise JobServerUnavailable(f"no job server answers on {socket_path}: {exc}") from None
    answer = json.loads(reply)
    if "refused" in answer:
        connection.close()
        raise JobServerUnavailable(f"the job server on {socket_path} refused: {answer['refused']}")
    connection.settimeout(None)
    return ForkedJob(connection, int(answer["pid"]), messages)


def run_job(
    socket_path: str | Path,
    module: str,
    arguments: list[str],
    *,
    env: dict[str, str],
    cwd: str | Path,
    on_line: Callable[[str], None],
    on_start: Callable[[ForkedJob], None] = lambda job: None,
    python: str = sys.executable,
) -> int | None:
    """Run a job through the server, handing each line of its output (stdout and stderr) to
    ``on_line``; returns the exit code (None: the server went away, and the job was stopped before
    this returns). Raises ``JobServerUnavailable`` before anything ran."""
    read_end, write_end = os.pipe()
    try:
        with open(os.devnull, "rb") as devnull:
            job = start_job(
                socket_path,
                module,
                arguments,
                env=env,
                cwd=cwd,
                stdin=devnull.fileno(),
                stdout=write_end,
                stderr=write_end,
                python=python,
            )
    except BaseException:
        os.close(read_end)
        raise
    finally:
        os.close(write_end)
    on_start(job)
    exit_code: list[int | None] = []

    def wait() -> None:
        code = job.wait()
        if code is None:  # the server died: its job's output would otherwise never end
            job.stop_orphan()
        exit_code.append(code)

    waiter = threading.Thread(target=wait, daemon=True)
    waiter.start()
    with os.fdopen(read_end, "rb") as output:  # ends when the job and what it started close it
        for raw in output:
            on_line(raw.decode(errors="replace").rstrip("\n"))
    waiter.join()
    return exit_code[0]


def socket_answers(socket_path: str | Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(str(socket_path))
            return True
        except OSError:
            return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A warm Python that forks Runway's job processes.")
    parser.add_argument("command", choices=["serve"])
    parser.add_argument("--socket", required=True, type=Path, help="the Unix socket to listen on")
    args = parser.parse_args(argv)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False  # the jobs configure the root logger themselves
    started = time.perf_counter()
    failed = preload()
    log.info("preloaded %d modules in %.1f s", len(PRELOAD) - len(failed), time.perf_counter() - started)
    if threading.active_count() > 1:
        log.warning("a preloaded library started a thread: forked jobs will not have it")
    JobServer(args.socket).serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
