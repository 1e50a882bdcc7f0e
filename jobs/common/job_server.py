"""A warm Python for job processes: a server that imports the jobs' heavy libraries once (MLflow,
scikit-learn, pandas, Evidently, Great Expectations, PySpark's client) and forks one process per job,
so a task stops paying 2-6 s of imports before its first line of work — the Python analogue of the
warm Spark (``scripts/spark_server.py``).

    python -m jobs.common.job_server serve --socket <path>     # what scripts/job_server.py starts

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

SOCKET_ENV = "RUNWAY_JOB_SERVER"  # the server's socket path: set, jobs are forked from it
PRELOAD = (
    "numpy", "pandas", "pyarrow", "pyarrow.compute", "pyarrow.dataset", "deltalake", "yaml",
    "sklearn.compose", "sklearn.ensemble", "sklearn.metrics", "sklearn.pipeline", "sklearn.preprocessing",
    "mlflow", "mlflow.pyfunc", "mlflow.sklearn", "mlflow.models", "mlflow.tracking",
    "evidently", "evidently.metrics", "evidently.presets", "great_expectations",
    "pyspark.sql", "pyspark.sql.functions", "pyspark.sql.types", "pyspark.sql.connect.session",
)  # fmt: skip
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
    connection: socket.socket
    pidfd: int


@dataclass
class JobServer:
    """Accepts requests on a Unix socket and forks a job for each; one thread, so forking is safe."""

    socket_path: Path
    children: dict[int, _Child] = field(default_factory=dict)  # by pidfd and by connection fd

    def serve_forever(self) -> None:
        self.socket_path.unlink(missing_ok=True)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(self.socket_path))
        os.chmod(self.socket_path, 0o600)
        listener.listen(64)
        self._stopping = False
        signal.signal(signal.SIGTERM, lambda *_: setattr(self, "_stopping", True))
        with selectors.DefaultSelector() as selector:
            self._selector, self._listener = selector, listener
            selector.register(listener, selectors.EVENT_READ, "accept")
            log.info("job server ready on %s (pid %d)", self.socket_path, os.getpid())
            while not self._stopping:
                for key, _ in selector.select(timeout=1.0):
                    self._handle(key.data, key.fileobj)
            for child in list(self.children.values()):  # stopping: the jobs stop with the server
                _terminate(child.pid)
        listener.close()
        self.socket_path.unlink(missing_ok=True)

    def _handle(self, what: str, fileobj) -> None:
        if what == "accept":
            connection, _ = self._listener.accept()
            self._start(connection)
        elif what == "exited":
            self._exited(self.children.pop(fileobj))
        elif what == "caller":  # the caller sent nothing more: it went away, so does its job
            child = self.children.get(fileobj.fileno())
            if child is not None and not _peek(fileobj):
                _terminate(child.pid)
                self._selector.unregister(fileobj)

    def _start(self, connection: socket.socket) -> None:
        try:
            request, fds = _receive_request(connection)
        except (OSError, ValueError) as exc:
            log.warning("a request could not be read: %s", exc)
            connection.close()
            return
        if Path(request["python"]).parent != Path(sys.executable).parent:  # another environment's job
            for fd in fds:
                os.close(fd)
            with contextlib.suppress(OSError):
                _send(connection, {"refused": f"this server runs {sys.executable}, not {request['python']}"})
            connection.close()
            return
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the job's process: never returns
            _run_child(request, fds)
        for fd in fds:
            os.close(fd)
        pidfd = os.pidfd_open(pid)
        child = _Child(pid, connection, pidfd)
        self.children[pidfd] = child
        self.children[connection.fileno()] = child
        self._selector.register(pidfd, selectors.EVENT_READ, "exited")
        self._selector.register(connection, selectors.EVENT_READ, "caller")
        _send(connection, {"pid": pid})

    def _exited(self, child: _Child) -> None:
        self.children.pop(child.connection.fileno(), None)
        _, status = os.waitpid(child.pid, 0)
        self._selector.unregister(child.pidfd)
        os.close(child.pidfd)
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(child.connection)
        with contextlib.suppress(OSError):
            _send(child.connection, {"exit_code": os.waitstatus_to_exitcode(status)})
        child.connection.close()


def _peek(connection: socket.socket) -> bool:
    """Whether the caller is still connected (it sends nothing after its request)."""
    try:
        return connection.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False


def _terminate(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)


def _receive_request(connection: socket.socket) -> tuple[dict, list[int]]:
    connection.settimeout(REQUEST_TIMEOUT)
    header, fds, _, _ = socket.recv_fds(connection, _HEADER.size, 3)
    if len(header) != _HEADER.size or len(fds) != 3:
        for fd in fds:
            os.close(fd)
        raise ValueError("a request is a length and three descriptors (stdin, stdout, stderr)")
    (length,) = _HEADER.unpack(header)
    body = b""
    while len(body) < length:
        chunk = connection.recv(length - len(body))
        if not chunk:
            raise ValueError("the request ended early")
        body += chunk
    connection.settimeout(None)
    return json.loads(body), fds


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
    _buffer: bytes = b""

    def wait(self) -> int | None:
        """Block until the job ends; its exit code (negative for a signal), None if the server went
        away (and stopped the job)."""
        while b"\n" not in self._buffer:
            chunk = self.connection.recv(4096)
            if not chunk:
                return None
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        self.connection.close()
        return int(json.loads(line)["exit_code"])

    def terminate(self) -> None:
        _terminate(self.pid)


def start_job(
    socket_path: str | Path, module: str, arguments: list[str], *, env: dict[str, str], cwd: str | Path,
    stdin: int, stdout: int, stderr: int, python: str = sys.executable, connect_timeout: float = 2.0,
) -> ForkedJob:  # fmt: skip
    """Ask the server to fork ``<python> -m <module> <arguments>`` with these descriptors; raise
    ``JobServerUnavailable`` when no server answers or it runs another environment's interpreter."""
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    connection.settimeout(connect_timeout)
    try:
        connection.connect(str(socket_path))
        body = json.dumps({"module": module, "arguments": [str(a) for a in arguments], "env": env,
                           "cwd": str(cwd), "python": python}).encode()  # fmt: skip
        socket.send_fds(connection, [_HEADER.pack(len(body))], [stdin, stdout, stderr])
        connection.sendall(body)
        reply = b""
        while not reply.endswith(b"\n"):
            chunk = connection.recv(256)
            if not chunk:
                raise ConnectionError("the server closed the connection")
            reply += chunk
    except OSError as exc:
        connection.close()
        raise JobServerUnavailable(f"no job server answers on {socket_path}: {exc}") from None
    answer = json.loads(reply)
    if "refused" in answer:
        connection.close()
        raise JobServerUnavailable(f"the job server on {socket_path} refused: {answer['refused']}")
    connection.settimeout(None)
    return ForkedJob(connection, int(answer["pid"]))


def run_job(
    socket_path: str | Path, module: str, arguments: list[str], *, env: dict[str, str], cwd: str | Path,
    on_line: Callable[[str], None], on_start: Callable[[ForkedJob], None] = lambda job: None,
    python: str = sys.executable,
) -> int | None:  # fmt: skip
    """Run a job through the server, handing each line of its output (stdout and stderr) to
    ``on_line``; returns the exit code (None: the server stopped, and the job with it). Raises
    ``JobServerUnavailable`` before anything ran."""
    read_end, write_end = os.pipe()
    try:
        with open(os.devnull, "rb") as devnull:
            job = start_job(socket_path, module, arguments, env=env, cwd=cwd, stdin=devnull.fileno(),
                            stdout=write_end, stderr=write_end, python=python)  # fmt: skip
    except BaseException:
        os.close(read_end)
        raise
    finally:
        os.close(write_end)
    on_start(job)
    exit_code: list[int | None] = []
    waiter = threading.Thread(target=lambda: exit_code.append(job.wait()), daemon=True)
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
