"""The serving figure of `make bench`: Runway's endpoint (`python -m jobs.serve`) against
`mlflow models serve` on the same Champion, same machine, same load generator (Locust headless,
its own process, loopback only, bounded in users and seconds).

Reported: throughput and p50/p99 latency at 1, 8 and 64 concurrent clients for both (MLflow with
1 and 2 uvicorn workers, its best taken per level), the inference log on vs off at 64 clients, and
the time from an alias move to the first answer from the new version.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from background import free_port, kill_group  # scripts/ is on the path (this file's folder)

ROOT = Path(__file__).resolve().parents[1]
LEVELS = (1, 8, 64)
SECONDS = 12
POLL_SECONDS = 5.0  # serving.poll_seconds' default: what a user gets


def _wait(url: str, process: subprocess.Popen, log: Path, seconds: float = 180) -> None:
    from stack import _wait_for  # make up's readiness loop

    _wait_for(url, lambda body: True, seconds, process, log)


class Process:
    def __init__(self, command: list[str], env: dict[str, str], log: Path, ready: str) -> None:
        self.log = log
        with log.open("w") as out:
            self.process = subprocess.Popen(
                command, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        _wait(ready, self.process, log)

    def stop(self) -> None:
        kill_group(self.process.pid, grace=60)


def locust(url: str, users: int, body: Path, out: Path) -> dict:
    """One bounded headless Locust run (the load-test gate's runner): requests/s, p50, p99 (ms), failures."""
    from jobs.serving.load import run_locust

    figures = run_locust(url, body.read_bytes(), users, SECONDS, out)
    return {
        "rps": figures.rps,
        "p50_ms": figures.p50_ms,
        "p99_ms": figures.p99_ms,
        "requests": figures.requests,
        "failures": figures.failures,
    }


def _post(url: str, body: bytes) -> dict:
    request = urllib.request.Request(
        url + "/invocations", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def serving_figure(
    data: Path, versions: list[str], set_champion, tracking_uri: str, name: str, body: bytes
) -> dict:
    """Both servers on ``versions[-1]`` (the Champion), each level measured on each."""
    env = {
        **os.environ,
        "RUNWAY_DATA_DIR": str(data),
        "RUNWAY_ENV": "dev",
        "RUNWAY_SERVING_POLL_SECONDS": str(POLL_SECONDS),
    }
    champion = versions[-1]
    set_champion(data, champion)
    work = Path(tempfile.mkdtemp(prefix="runway-serving-bench-"))
    body_file = work / "body.json"
    body_file.write_bytes(body)
    figure: dict = {"levels": {}, "mlflow_workers": {}}

    def ours(logging_on: bool) -> tuple[Process, str]:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        run_env = {
            **env,
            "RUNWAY_SERVING_LOG": "true" if logging_on else "false",
            "RUNWAY_SERVING_WAL_ROOT": str(work / f"wal-{logging_on}"),
        }
        server = Process(
            [sys.executable, "-m", "jobs.serve", "--env", "dev", "--port", str(port)],
            run_env,
            work / f"runway-{logging_on}.log",
            url + "/health",
        )
        return server, url

    server, url = ours(logging_on=True)
    try:
        for users in LEVELS:
            figure["levels"].setdefault(str(users), {})["runway"] = locust(url, users, body_file, work)
        # The alias follows: move it, time the first answer from the other version.
        other = versions[0]
        moved = time.monotonic()
        set_champion(data, other)
        while _post(url, body)["model"]["version"] != other and time.monotonic() - moved < 60:
            time.sleep(0.05)
        figure["alias_swap_seconds"] = round(time.monotonic() - moved, 2)
        set_champion(data, champion)
    finally:
        server.stop()
    server, url = ours(logging_on=False)
    try:
        figure["logging_off_64"] = locust(url, 64, body_file, work)
    finally:
        server.stop()
    for workers in (1, 2):
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        # mlflow models serve execs `uvicorn` from PATH: this interpreter's scripts first.
        mlflow_env = {
            **env,
            "MLFLOW_TRACKING_URI": tracking_uri,
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        }
        served = Process(
            [
                sys.executable,
                "-m",
                "mlflow",
                "models",
                "serve",
                "-m",
                f"models:/{name}/{champion}",
                "--env-manager",
                "local",
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "--workers",
                str(workers),
            ],
            mlflow_env,
            work / f"mlflow-{workers}.log",
            url + "/ping",
        )
        try:
            figure["mlflow_workers"][str(workers)] = {str(u): locust(url, u, body_file, work) for u in LEVELS}
        finally:
            served.stop()
    for users in LEVELS:
        best = max(figure["mlflow_workers"].values(), key=lambda by_level: by_level[str(users)]["rps"])[
            str(users)
        ]
        figure["levels"][str(users)]["mlflow_best"] = best
    at64, at1 = figure["levels"]["64"], figure["levels"]["1"]
    figure.update(
        {
            "throughput_ratio_64": round(at64["runway"]["rps"] / at64["mlflow_best"]["rps"], 2),
            "target_ratio_64": 3,
            "p50_1_ms": {"runway": at1["runway"]["p50_ms"], "mlflow": at1["mlflow_best"]["p50_ms"]},
            "logging_ratio_64": round(at64["runway"]["rps"] / figure["logging_off_64"]["rps"], 2),
            "target_logging_ratio": 0.9,
            "poll_seconds": POLL_SECONDS,
            "what": f"Locust headless (FastHttpUser, closed loop, {SECONDS} s per level) posting one flight "
            "row in dataframe_records to /invocations on loopback; runway with its inference log on (and "
            "off for logging_off_64); mlflow models serve --env-manager local with 1 and 2 workers, the "
            "best per level; alias_swap_seconds: alias moved -> first answer from the new version, "
            "polling every poll_seconds",
        }
    )
    figure["meets_target"] = (
        figure["throughput_ratio_64"] >= 3
        and at1["runway"]["p50_ms"] <= at1["mlflow_best"]["p50_ms"]
        and figure["logging_ratio_64"] >= 0.9
        and figure["alias_swap_seconds"] <= 2 * POLL_SECONDS
    )
    return figure
