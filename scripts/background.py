"""A background service of the embedded stack (the warm Spark, the warm Python for jobs): one
process group, recorded with its start time and how to reach it in ``<data>/run/<name>.json``, its
log in ``<data>/logs/<name>.log``; stopped by group, and only if the recorded process is still the
one that was started."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from stack import _group_exists, _signal_group, _started_at  # make up's process-group helpers


def kill_group(pgid: int, grace: float = 20) -> None:
    """SIGTERM the process group, SIGKILL what is left after ``grace`` seconds."""
    _signal_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while _group_exists(pgid) and time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pgid, os.WNOHANG)  # reap our own child, or it lingers as a zombie
        time.sleep(0.2)
    _signal_group(pgid, signal.SIGKILL)


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
        ours = _started_at(state["pid"]) == state.get("started_at")  # not another process under a reused pid
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
            process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
        state = {
            "pid": process.pid,
            "started_at": _started_at(process.pid),
            **record,
            "log": str(self.log_path),
        }
        deadline = time.monotonic() + timeout
        while not self.answers(state):
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
        if _started_at(state["pid"]) == state.get("started_at"):
            kill_group(state["pid"])
        self.state_path.unlink(missing_ok=True)
        return True


def service_cli(
    description: str, variable: str, address: str, start: Callable[..., dict], stop: Callable[[Path], bool],
    status: Callable[[Path], dict | None], arguments: Callable[[argparse.ArgumentParser], None] = lambda p: None,
) -> int:  # fmt: skip
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
