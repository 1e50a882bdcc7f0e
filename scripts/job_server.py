"""A warm Python for the embedded stack's jobs: one server that has imported the jobs' libraries
and forks each job task's process (jobs/runtime/fork_server.py); `make up`, `make demo`, `make bench`
and the test session start it beside the warm Spark.

    .venv/bin/python scripts/job_server.py start     # prints RUNWAY_JOB_SERVER=<socket>
    .venv/bin/python scripts/job_server.py status
    .venv/bin/python scripts/job_server.py stop      # stops exactly what start started

Tasks use it when ``$RUNWAY_JOB_SERVER`` names its socket and the server runs this interpreter;
otherwise (unset, not answering) they start ``python -m jobs.<job>`` as before. Restart it after
upgrading a library: jobs' own code is imported fresh by each job, libraries are not.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from background import Background, service_cli  # noqa: E402

START_TIMEOUT = 120  # the preload: about 5 s on a quiet machine, 10 s on a busy one
_SOCKET_PATH_MAX = 100  # a Unix socket's path is limited to 107 bytes


def socket_path(data_dir: Path) -> Path:
    """``<data>/run/jobs.sock``, or a short path under the temp folder when that one is too long."""
    path = data_dir / "run" / "jobs.sock"
    if len(str(path)) <= _SOCKET_PATH_MAX:
        return path
    digest = hashlib.sha256(str(data_dir).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"runway-jobs-{digest}.sock"


def service(data_dir: Path) -> Background:
    from jobs.runtime.fork_server import socket_answers

    return Background("job_server", data_dir, lambda state: socket_answers(state["socket"]))


def start(data_dir: Path) -> dict:
    """Start the server unless one runs; returns its record (pid, socket, python, log)."""
    path = socket_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "jobs.runtime.fork_server", "serve", "--socket", str(path)]
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    record = {"socket": str(path), "python": sys.executable}
    return service(data_dir).start(command, env, record, START_TIMEOUT)


def status(data_dir: Path) -> dict | None:
    return service(data_dir).status()


def stop(data_dir: Path) -> bool:
    return service(data_dir).stop()


def main() -> int:
    return service_cli(__doc__.splitlines()[0], "RUNWAY_JOB_SERVER", "socket", start, stop, status)


if __name__ == "__main__":
    raise SystemExit(main())
