"""The embedded stack for the UIs: ``airflow standalone`` (API server, scheduler, DAG processor,
triggerer; LocalExecutor), the MLflow UI, a warm Spark (a Spark Connect server the tasks' jobs
connect to, scripts/spark_server.py) and a warm Python (the job server the tasks fork their jobs
from, scripts/job_server.py), on the same data folder as the demo.

    make up      # or: .venv/bin/python scripts/stack.py up [--airflow-port 8080]
                 #     [--mlflow-port 5000] [--cold]
    make down    # stops exactly what `make up` started

Each service runs in its own process group, recorded with its start time in
``<data>/run/stack.json``; ``down`` signals those groups only (SIGTERM, then SIGKILL after a grace
period), and only if the recorded process is still the one it started.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import runway_env  # noqa: E402
from background import (  # noqa: E402
    group_exists,
    signal_group,
    start_warm_services,
    started_at,
    stop_warm_services,
)

GRACE_SECONDS = 30
# Airflow's users and roles (the simple auth manager's): an admin, an approver who may trigger runs
# and answer approvals (role "user"), and a viewer who may only look. Passwords are generated.
AIRFLOW_USERS = "admin:admin,approver:user,viewer:viewer"


def state_file(data_dir: Path) -> Path:
    return data_dir / "run" / "stack.json"


def parallelism(spark_master: str, cores: int | None = None) -> int:
    """Tasks at once on this machine: each job task is a local Spark process using ``local[N]``
    cores, so ``cores // N`` (at least 1). On SQLite this also keeps task starts from piling up:
    the scheduler, the API server and the task runners all write to one file."""
    cores = cores or os.cpu_count() or 1
    match = re.fullmatch(r"local\[(\d+|\*)(?:,\d+)?\]", spark_master.strip())
    per_task = cores if match is None or match.group(1) == "*" else int(match.group(1))
    return max(1, cores // max(1, per_task))


def stack_env(data_dir: Path, airflow_port: int, envs: str, spark_master: str = "local[*]") -> dict[str, str]:
    """The variables the stack's processes (and the jobs its tasks start) run with."""
    env = {**os.environ, **runway_env.variables(data_dir)}
    env.update(
        {
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": os.environ.get(
                "AIRFLOW_PARALLELISM", str(parallelism(spark_master))
            ),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__API__PORT": str(airflow_port),
            "AIRFLOW__API__BASE_URL": f"http://localhost:{airflow_port}",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://localhost:{airflow_port}/execution/",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": env.get(
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", AIRFLOW_USERS
            ),
            "RUNWAY_DAG_ENVS": envs,
            # standalone starts its components as `airflow ...`: this interpreter's scripts first
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        }
    )
    return env


def _wait_for(url: str, ready, seconds: float, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{url}: the process exited with {process.returncode}; see {log}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if ready(response.read().decode()):
                    return
        except (urllib.error.URLError, OSError, ValueError):
            pass
        time.sleep(1)
    raise SystemExit(f"{url} did not become ready in {seconds:.0f} s; see {log}")


def _airflow_healthy(body: str) -> bool:
    health = json.loads(body)
    parts = ("metadatabase", "scheduler", "triggerer", "dag_processor")
    return all(health.get(p, {}).get("status") == "healthy" for p in parts)


def airflow_login(data_dir: Path, environ: dict[str, str] | None = None) -> str:
    """How to log in to the UI: the admin user and the password ``airflow standalone`` generated,
    or that there is no login when the simple auth manager makes every user an admin."""
    environ = os.environ if environ is None else environ
    if environ.get("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "").strip().lower() in ("true", "1"):
        return "no login (AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS: every user is an admin)"
    path = data_dir / "airflow" / "simple_auth_manager_passwords.json.generated"
    if not path.is_file():
        return f"no generated password ({path} is missing: see the Airflow log)"
    passwords = json.loads(path.read_text())
    user, *others = passwords
    also = "; ".join(f"{name} / {passwords[name]}" for name in others)
    return f"login: {user} / {passwords[user]}" + (f" (also {also})" if also else "")


def up(
    data_dir: Path,
    airflow_port: int,
    mlflow_port: int,
    envs: str = "all",
    timeout: float = 180,
    warm: bool = True,
    serving_port: int = 8000,
    serving_env: str = "dev",
) -> dict:
    """Start the services, wait until they answer, record them; returns the recorded state. With
    ``warm``, the warm services first (background.start_warm_services: one named by the user's
    variable is used as it is): the tasks' jobs then connect to the Spark Connect server instead of
    each starting a JVM, and are forked from the job server instead of each importing again."""
    state_path = state_file(data_dir)
    if state_path.exists() and any(
        _alive(s) for s in json.loads(state_path.read_text())["services"].values()
    ):
        raise SystemExit(f"the stack already runs (see {state_path}): `make down` first")
    os.environ.update(runway_env.variables(data_dir))  # the config resolves its paths against this folder
    from jobs.config.loader import load_config

    config = load_config("dev")
    env = stack_env(data_dir, airflow_port, envs, config.compute.spark_master)
    warm, started = start_warm_services(data_dir, os.environ) if warm else ({}, [])
    env.update(warm)
    (data_dir / "logs").mkdir(parents=True, exist_ok=True)
    Path(config.mlflow.artifact_root).mkdir(parents=True, exist_ok=True)
    commands = {
        "airflow": [sys.executable, "-m", "airflow", "standalone"],
        "mlflow": [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            config.mlflow.tracking_uri,
            "--default-artifact-root",
            config.mlflow.artifact_root,
            "--host",
            "127.0.0.1",
            "--port",
            str(mlflow_port),
            "--workers",
            "1",
        ],
        # The environment's Champion over REST (ready once the alias names a version: /health).
        "serving": [sys.executable, "-m", "jobs.serve", "--env", serving_env, "--port", str(serving_port)],
    }
    services, processes = {}, {}
    state = {
        "services": services,
        "airflow_url": f"http://localhost:{airflow_port}",
        "mlflow_url": f"http://localhost:{mlflow_port}",
        "data_dir": str(data_dir),
        "serving_url": f"http://127.0.0.1:{serving_port}",
        "serving_env": serving_env,
        "parallelism": int(env["AIRFLOW__CORE__PARALLELISM"]),
        "spark_remote": warm.get("RUNWAY_SPARK_REMOTE"),
        "job_server": warm.get("RUNWAY_JOB_SERVER"),
        "started": started,
    }

    def start(name: str, command: list[str]) -> None:
        log = data_dir / "logs" / f"{name}.log"
        with log.open("a") as out:
            process = subprocess.Popen(
                command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        processes[name] = process
        services[name] = {
            "pid": process.pid,
            "started_at": started_at(process.pid),
            "log": str(log),
            "command": " ".join(command[1:4]),
        }
        state_path.write_text(json.dumps(state, indent=2))  # recorded at once: `down` stops what started

    state_path.parent.mkdir(parents=True, exist_ok=True)
    # The warm services are recorded before anything else starts.
    state_path.write_text(json.dumps(state, indent=2))
    try:
        start("airflow", commands["airflow"])
        start("mlflow", commands["mlflow"])
        _wait_for(
            f"http://127.0.0.1:{mlflow_port}/health",
            lambda body: "OK" in body,
            timeout,
            processes["mlflow"],
            Path(services["mlflow"]["log"]),
        )
        # After MLflow: on a fresh SQLite store two processes migrating its tables at once fail.
        start("serving", commands["serving"])
        _wait_for(
            f"http://127.0.0.1:{airflow_port}/api/v2/monitor/health",
            _airflow_healthy,
            timeout,
            processes["airflow"],
            Path(services["airflow"]["log"]),
        )
        _wait_for(
            f"http://127.0.0.1:{serving_port}/ping",
            lambda body: body == "ok",
            timeout,
            processes["serving"],
            Path(services["serving"]["log"]),
        )
    except BaseException:
        down(data_dir)
        raise
    return state


def _alive(service: dict) -> bool:
    return started_at(service["pid"]) == service["started_at"] and service["started_at"] is not None


def down(data_dir: Path) -> list[str]:
    """Stop the process groups ``up`` recorded (and only those); returns what was stopped."""
    state_path = state_file(data_dir)
    if not state_path.exists():
        return []
    state = json.loads(state_path.read_text())
    services = state["services"]
    running = {name: s for name, s in services.items() if _alive(s)}
    for service in running.values():
        signal_group(service["pid"], signal.SIGTERM)
    deadline = time.monotonic() + GRACE_SECONDS
    while time.monotonic() < deadline and any(group_exists(s["pid"]) for s in running.values()):
        time.sleep(0.5)
    for service in running.values():
        signal_group(service["pid"], signal.SIGKILL)  # workers that ignored SIGTERM
    for name in stop_warm_services(data_dir, state.get("started", [])):
        running[name] = {}
    state_path.unlink()
    return sorted(running)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    start = sub.add_parser("up", help="start Airflow standalone and the MLflow UI")
    start.add_argument("--airflow-port", type=int, default=int(os.environ.get("AIRFLOW_PORT", 8080)))
    start.add_argument("--mlflow-port", type=int, default=int(os.environ.get("MLFLOW_PORT", 5000)))
    start.add_argument(
        "--envs", default=os.environ.get("RUNWAY_DAG_ENVS", "all"), help="environments to show"
    )
    start.add_argument("--serving-port", type=int, default=int(os.environ.get("SERVING_PORT", 8000)))
    start.add_argument(
        "--serving-env", default=os.environ.get("SERVING_ENV", "dev"), help="whose Champion to serve"
    )
    start.add_argument(
        "--cold",
        "--cold-spark",
        dest="cold",
        action="store_true",
        help="no warm services: each job starts its own interpreter, and each Spark job its own JVM",
    )
    sub.add_parser("down", help="stop what `up` started")
    args = parser.parse_args()
    data_dir = Path(os.environ.get("RUNWAY_DATA_DIR", runway_env.ROOT / "data")).resolve()
    if args.command == "down":
        stopped = down(data_dir)
        print(f"stopped {', '.join(stopped)}" if stopped else "nothing to stop")
        return 0
    print(
        "starting a warm Spark and Python, Airflow, the MLflow UI and the serving endpoint (about 40 s) ...",
        flush=True,
    )
    state = up(
        data_dir,
        args.airflow_port,
        args.mlflow_port,
        args.envs,
        warm=not args.cold,
        serving_port=args.serving_port,
        serving_env=args.serving_env,
    )
    login = airflow_login(data_dir)
    spark = state["spark_remote"] or "none: each job starts its own JVM"
    jobs = state["job_server"] or "none: each job starts its own interpreter"
    print(f"""
Airflow  {state["airflow_url"]}   {login}
MLflow   {state["mlflow_url"]}
Serving  {state["serving_url"]}/invocations   (the {state["serving_env"]} Champion; /health, /metrics)
Spark    {spark}
Jobs     {jobs}
DAGs of: {args.envs} (new DAGs start paused); {state["parallelism"]} task(s) at a time. Logs: {
        data_dir / "logs"
    }.
Stop with `make down`.""")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
