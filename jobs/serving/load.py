"""Bounded load against an endpoint on loopback: one headless Locust run in its own process."""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

from jobs.core.errors import BadInputError
from jobs.release.gates import LoadFigures

LOCUSTFILE = Path(__file__).with_name("locustfile.py")


def run_locust(
    url: str, body: bytes, users: int, seconds: float, workdir: Path, path: str = "/invocations"
) -> LoadFigures:
    """``users`` closed-loop clients posting ``body`` to ``url`` + ``path`` for ``seconds``."""
    if urlparse(url).hostname not in ("127.0.0.1", "localhost", "::1"):
        raise BadInputError(f"load runs target loopback only, not {url}")
    workdir.mkdir(parents=True, exist_ok=True)
    prefix = workdir / f"locust_{users}_{time.monotonic_ns()}"
    body_file = prefix.with_suffix(".json")
    body_file.write_bytes(body)
    locust = Path(sys.executable).parent / "locust"
    subprocess.run(
        [
            str(locust),
            "-f",
            str(LOCUSTFILE),
            "--headless",
            "-u",
            str(users),
            "-r",
            str(users),
            "-t",
            f"{max(1, round(seconds))}s",
            "--host",
            url,
            "--csv",
            str(prefix),
            "--only-summary",
            "--stop-timeout",
            "5",
        ],
        env={**os.environ, "RUNWAY_LOAD_BODY": str(body_file), "RUNWAY_LOAD_PATH": path},
        capture_output=True,
        timeout=seconds + 120,
        check=False,
    )
    stats = Path(f"{prefix}_stats.csv")
    if not stats.exists():
        raise RuntimeError(f"Locust wrote no statistics ({stats}): is it installed next to {sys.executable}?")
    with stats.open() as handle:
        row = next(r for r in csv.DictReader(handle) if r["Name"] == "Aggregated")
    return LoadFigures(
        requests=int(row["Request Count"]),
        failures=int(row["Failure Count"]),
        rps=round(float(row["Requests/s"]), 1),
        p50_ms=float(row["50%"]),
        p95_ms=float(row["95%"]),
        p99_ms=float(row["99%"]),
    )


def free_port() -> int:

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LocalEndpoint:
    """``python -m jobs.serve`` on a free loopback port in its own process group, serving a pinned
    traffic (one version for a load test), its requests logged to ``log_table``."""

    def __init__(
        self, env: str, traffic: dict, workdir: Path, log_table: str, ready_seconds: float = 180
    ) -> None:

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / f"serve_{self.port}.log"
        workdir.mkdir(parents=True, exist_ok=True)
        variables = {
            **os.environ,
            "RUNWAY_SERVING_LOG_TABLE": log_table,
            "RUNWAY_SERVING_WAL_ROOT": str(workdir / f"wal_{self.port}"),
        }
        with self.log.open("w") as out:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "jobs.serve",
                    "--env",
                    env,
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--traffic",
                    json.dumps(traffic),
                ],
                env=variables,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._wait_ready(ready_seconds)

    def _wait_ready(self, seconds: float) -> None:

        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the endpoint exited ({self.process.returncode}): {self._tail()}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=5) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"the endpoint was not ready within {seconds:g} s: {self._tail()}")

    def warm_up(self, body: bytes, requests: int) -> None:
        """A few sequential requests before measuring (answers not checked: the load run counts)."""

        for _ in range(requests):
            call = urllib.request.Request(
                self.url + "/invocations", data=body, headers={"Content-Type": "application/json"}
            )
            try:
                with urllib.request.urlopen(call, timeout=30) as response:
                    response.read()
            except OSError:
                pass

    def _tail(self) -> str:
        return self.log.read_text()[-2000:] if self.log.exists() else ""

    def stop(self, grace: float = 60) -> None:

        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=30)

    def __enter__(self) -> LocalEndpoint:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
