"""Process groups on this machine, and the embedded stack's background services (the warm Spark,
the warm Python for jobs): each one process group, recorded with its start time and how to reach
it in ``<data>/run/<name>.json``, its log in ``<data>/logs/<name>.log``; stopped by group, and only
if the recorded process is still the one that was started."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from jobs.runtime.fork_server import group_exists  # noqa: F401  (scripts and tests use it from here)

# The warm services: name -> (their script, the variable jobs find them by, the record's address key)
WARM_SERVICES = {
    "spark_connect": ("spark_server", "RUNWAY_SPARK_REMOTE", "url"),
    "job_server": ("job_server", "RUNWAY_JOB_SERVER", "socket"),
}


def started_at(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (guards against a reused pid)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def start_group(command: list[str], env: dict[str, str], log) -> subprocess.Popen:
    """``command`` in a process group of its own (stoppable as one), its output to ``log``."""
    return subprocess.Popen(
        command,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )


def kill_group(pgid: int, grace: float = 20) -> None:
    """SIGTERM the process group, SIGKILL what is left after ``grace`` seconds."""
    signal_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while group_exists(pgid) and time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pgid, os.WNOHANG)  # reap our own child, or it lingers as a zombie
        time.sleep(0.2)
    signal_group(pgid, signal.SIGKILL)


def free_port() -> int:
    """A TCP port free on loopback now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def listening_groups(port: int) -> set[int]:
    """The process groups holding a TCP socket that listens on ``port`` (Linux: /proc)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                    inodes.add(f"socket:[{fields[9]}]")
    groups = set()
    for descriptors in Path("/proc").glob("[0-9]*/fd"):
        with contextlib.suppress(OSError):
            if any(os.readlink(fd) in inodes for fd in descriptors.iterdir()):
                groups.add(os.getpgid(int(descriptors.parent.name)))
    return groups


def port_answers(port: int, host: str = "127.0.0.1", timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def start_warm_services(data_dir: Path, environ: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    """The warm Spark and the warm Python on this data folder, started unless running (one whose
    variable ``environ`` sets is used as it is): (the variables jobs find them by, the names of the
    services this call started, for ``stop_warm_services``)."""
    variables, started = {}, []
    for name, (script, variable, address) in WARM_SERVICES.items():
        if environ.get(variable):
            variables[variable] = environ[variable]
            continue
        service = importlib.import_module(script)
        if service.status(data_dir) is None:
            started.append(name)
        variables[variable] = service.start(data_dir)[address]
    return variables, started


def stop_warm_services(data_dir: Path, started: list[str]) -> list[str]:
    """Stop the warm services ``start_warm_services`` started; returns those that were running."""
    return [name for name in started if importlib.import_module(WARM_SERVICES[name][0]).stop(data_dir)]


@dataclass(frozen=True)
class Background:
    name: str
    data_dir: Path
    answers: Callable[[dict], bool]  # is the recorded service reachable?

    @property
    def state_path(self) -> Path:
        return self.data_dir / "run" / f"{self.name}.json"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "logs" / f"{self.name}.log"

    def status(self) -> dict | None:
        """The running service's record, or None (a stale record is removed)."""
        if not self.state_path.is_file():
            return None
        state = json.loads(self.state_path.read_text())
        ours = started_at(state["pid"]) == state.get("started_at")  # not another process under a reused pid
        if ours and self.answers(state):
            return state
        if not ours:
            self.state_path.unlink(missing_ok=True)
        return None

    def start(self, command: list[str], env: dict[str, str], record: dict, timeout: float) -> dict:
        """Start the service unless it runs; ``record`` says how to reach it (kept with pid and log)."""
        running = self.status()
        if running:
            return running
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("a") as log:
            process = start_group(command, env, log)
        state = {
            "pid": process.pid,
            "started_at": started_at(process.pid),
            **record,
            "log": str(self.log_path),
        }
        deadline = time.monotonic() + timeout
        # Ready when it answers and, for a port, holds it itself: another service that took the port
        # first (two starters at once) answers too, while this one fails to bind and exits.
        while not (
            self.answers(state) and ("port" not in state or process.pid in listening_groups(state["port"]))
        ):
            if process.poll() is not None or time.monotonic() > deadline:
                kill_group(process.pid)
                tail = self.log_path.read_text()[-2000:]
                raise SystemExit(f"the {self.name} service did not start: see {self.log_path}\n{tail}")
            time.sleep(0.3)
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        self.state_path.write_text(json.dumps(state))
        return state

    def stop(self) -> bool:
        """Stop the recorded service (its whole process group); False when none ran."""
        if not self.state_path.is_file():
            return False
        state = json.loads(self.state_path.read_text())
        if started_at(state["pid"]) == state.get("started_at"):
            kill_group(state["pid"])
        self.state_path.unlink(missing_ok=True)
        return True


def service_cli(
    description: str,
    variable: str,
    address: str,
    start: Callable[..., dict],
    stop: Callable[[Path], bool],
    status: Callable[[Path], dict | None],
    arguments: Callable[[argparse.ArgumentParser], None] = lambda p: None,
) -> int:
    """``start|stop|status`` of a service on the data folder; start prints ``<variable>=<address>``
    and passes the extra ``arguments`` it declared to ``start`` as keywords."""
    import runway_env

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("command", choices=["start", "stop", "status"])
    arguments(parser)
    options = vars(parser.parse_args())
    command = options.pop("command")
    data_dir = runway_env.configure()
    if command == "start":
        print(f"{variable}={start(data_dir, **options)[address]}")
    elif command == "stop":
        print("stopped" if stop(data_dir) else "it was not running")
    else:
        state = status(data_dir)
        print(f"running: {state[address]} (pid {state['pid']})" if state else "not running")
    return 0
