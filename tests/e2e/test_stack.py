"""The embedded stack as users run it: `scripts/stack.py up` (what `make up` runs) starts Airflow
standalone and the MLflow UI; a CLI backfill builds gold for a few days; prod training runs are
triggered through the REST API with Params (as the UI does) and their promotion is approved, then
rejected, through the HITL REST API. `down` stops exactly what `up` started.

The stack gets its own data folder and a config copy with manual-only training, no retries (a
failure shows at once) and validation judging only large slices (a two-month window is small).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pytest
import requests
from background import free_port  # scripts/background.py
from stack import stack_env  # scripts/stack.py (conftest puts scripts/ on the path)

from jobs.config.base import ENVIRONMENTS, PIPELINES
from jobs.core.window import Window

ROOT = Path(__file__).resolve().parents[2]
TRAINING_CONF = {"training_end": "2013-03-01", "window_days": 59, "reason": "manual", "hyperparameters": {}}
BACKFILL = ("2013-02-04", "2013-02-05")  # two daily runs
DEADLINE = 600


def _stack_configs(target: Path) -> Path:
    shutil.copytree(ROOT / "include" / "configs", target)
    base = (target / "base.yaml").read_text()
    for old, new in (('  training: "0 3 * * *"', "  training: null"), ("  retries: 2\n", "  retries: 0\n")):
        assert old in base
        base = base.replace(old, new)
    (target / "base.yaml").write_text(base)
    prod = (target / "prod.yaml").read_text().replace("  retries: 3\n", "  retries: 0\n")
    (target / "prod.yaml").write_text(prod + "validation:\n  slice_min_rows: 3000\n")
    return target


class Api:
    """The Airflow REST API with the admin's JWT, as the UI calls it."""

    def __init__(self, url: str, user: str, password: str, log: Path) -> None:
        self.url, self.log = url, log
        token = requests.post(f"{url}/auth/token", json={"username": user, "password": password}, timeout=30)
        token.raise_for_status()
        self.headers = {"Authorization": f"Bearer {token.json()['access_token']}"}

    def request(self, method: str, path: str, **kwargs) -> requests.Response:
        return requests.request(
            method, f"{self.url}/api/v2{path}", headers=self.headers, timeout=60, **kwargs
        )

    def call(self, method: str, path: str, **kwargs) -> dict:
        response = self.request(method, path, **kwargs)
        assert response.ok, f"{method} {path}: {response.status_code} {response.text}"
        return response.json()

    def wait_run(self, dag_id: str, run_id: str) -> dict:
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline:
            run = self.call("GET", f"/dags/{dag_id}/dagRuns/{run_id}")
            if run["state"] in ("success", "failed"):
                return run
            time.sleep(3)
        raise AssertionError(f"{dag_id} {run_id} still {run['state']}: {self.task_states(dag_id, run_id)}")

    def wait_for_log(self, pattern: str) -> None:
        """Until a line of the stack's Airflow log (scheduler, API server, ...) matches ``pattern``."""
        deadline = time.monotonic() + DEADLINE
        while not re.search(pattern, self.log.read_text(errors="replace")):
            assert time.monotonic() < deadline, f"{self.log} never matched {pattern!r}"
            time.sleep(1)

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str]:
        tis = self.call("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]
        return {ti["task_id"]: ti["state"] for ti in tis}

    def answer_approval(
        self, dag_id: str, run_id: str, task_id: str, option: str, viewer: Api | None = None
    ) -> dict:
        """Wait until the task asks for input, then answer it as a person in the UI would (after
        ``viewer``, who may only look, tried and was refused)."""
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}"
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline:
            state = requests.get(f"{self.url}/api/v2{path}", headers=self.headers, timeout=60)
            if state.ok and state.json().get("state") == "awaiting_input":
                # Airflow 3.3 races an answer against the parking workload's executor event: if the
                # scheduler handles that event after the answer re-queued the task, it marks the task
                # failed ("state changed externally"). A person answers minutes later; a fixed 5 s
                # wait lost the race on a busy machine (the event came 6 s after the parking). Wait
                # until the scheduler has handled it.
                self.wait_for_log(
                    rf"TaskInstance Finished: dag_id={dag_id}, task_id={task_id}, run_id={re.escape(run_id)},"
                    r".* state=awaiting_input,"
                )
                answer = {"chosen_options": [option], "params_input": {}}
                if viewer is not None:
                    refused = viewer.request("PATCH", f"{path}/-1/hitlDetails", json=answer)
                    assert refused.status_code == 403, refused.text
                return self.call("PATCH", f"{path}/-1/hitlDetails", json=answer)
            run = self.call("GET", f"/dags/{dag_id}/dagRuns/{run_id}")
            assert run["state"] not in ("success", "failed"), self.task_states(dag_id, run_id)
            time.sleep(3)
        raise AssertionError(f"{task_id} never asked for input: {self.task_states(dag_id, run_id)}")


@pytest.fixture(scope="module")
def stack(spark, tmp_path_factory):
    """Prod gold for January–February, then the running stack on free ports."""
    from jobs.config.loader import load_config
    from jobs.features.refresh import JobContext, refresh
    from jobs.features.seed import seed

    root = tmp_path_factory.mktemp("stack")
    data_dir, configs = root / "data", _stack_configs(root / "configs")
    with pytest.MonkeyPatch.context() as patch:  # undone also when the set-up fails
        patch.setenv("RUNWAY_DATA_DIR", str(data_dir))
        patch.setenv("RUNWAY_CONFIG_DIR", str(configs))
        prod = load_config("prod")
        window = Window(date(2013, 1, 1), date(2013, 3, 1))
        seed(prod, window)  # the landing zone is shared: dev's backfill reads it too
        refresh(JobContext.open(prod, "prod-gold-for-the-stack"), window)

    ports = {"airflow": free_port(), "mlflow": free_port(), "serving": free_port()}
    env = {
        **stack_env(data_dir, ports["airflow"], "all", prod.compute.spark_master),
        "RUNWAY_CONFIG_DIR": str(configs),
        "RUNWAY_SERVING_POLL_SECONDS": "1",
    }
    for variable in ("RUNWAY_SPARK_REMOTE", "RUNWAY_JOB_SERVER"):  # `up` starts the stack's own warm services
        env.pop(variable, None)
    up = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "stack.py"),
            "up",
            "--airflow-port",
            str(ports["airflow"]),
            "--mlflow-port",
            str(ports["mlflow"]),
            "--serving-port",
            str(ports["serving"]),
            "--serving-env",
            "prod",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        state = json.loads((data_dir / "run" / "stack.json").read_text())
        passwords = json.loads(
            (data_dir / "airflow" / "simple_auth_manager_passwords.json.generated").read_text()
        )
        assert (
            f"login: admin / {passwords['admin']}" in up.stdout
            and f"approver / {passwords['approver']}" in up.stdout
        )
        api, approver, viewer = (
            Api(state["airflow_url"], user, passwords[user], Path(state["services"]["airflow"]["log"]))
            for user in ("admin", "approver", "viewer")
        )
        yield {
            "api": api,
            "approver": approver,
            "viewer": viewer,
            "env": env,
            "data_dir": data_dir,
            "state": state,
            "ports": ports,
        }
    finally:
        down = subprocess.run(
            [sys.executable, str(ROOT / "scripts" / "stack.py"), "down"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        print(down.stdout, down.stderr)


def _airflow(stack, *args: str, attempts: int = 3) -> str:
    """An Airflow CLI command against the stack. On the SQLite stack a CLI write can lose to the
    scheduler's ("database is locked", the whole transaction rolled back): rerun it, as the README
    tells users to; any other failure fails at once."""
    for attempt in range(1, attempts + 1):
        done = subprocess.run(
            [sys.executable, "-m", "airflow", *args],
            env=stack["env"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        locked = "database is locked" in done.stdout + done.stderr
        if done.returncode == 0 or not locked or attempt == attempts:
            break
        time.sleep(2 * attempt)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _registry(stack):
    from mlflow import MlflowClient

    uri = f"sqlite:///{stack['data_dir']}/mlflow/mlflow.db"
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _trigger_training(api: Api) -> str:
    api.call("PATCH", "/dags/prod_training", json={"is_paused": False})  # the UI's "unpause on trigger"
    run = api.call(
        "POST",
        "/dags/prod_training/dagRuns",
        json={"logical_date": None, "conf": TRAINING_CONF, "note": "from the stack test"},
    )
    assert run["conf"] == TRAINING_CONF and run["state"] == "queued"
    return run["dag_run_id"]


def test_parallelism_is_the_spark_jobs_that_fit_the_machine():
    from stack import parallelism

    assert parallelism("local[2]", cores=2) == 1  # each task's job uses both cores
    assert parallelism("local[2]", cores=8) == 4
    assert parallelism("local[*]", cores=8) == 1
    assert parallelism("local[4,2]", cores=16) == 4  # local[N, maxFailures]
    assert parallelism("spark://master:7077", cores=8) == 1  # unknown: one at a time


def test_stack_serves_every_environments_dags_and_the_mlflow_ui(stack):
    dags = stack["api"].call("GET", "/dags", params={"limit": 100})["dags"]
    ids = {d["dag_id"] for d in dags}
    assert ids == {f"{env}_{p}" for env in ENVIRONMENTS for p in PIPELINES}
    assert stack["api"].call("GET", "/importErrors")["total_entries"] == 0
    health = requests.get(f"http://127.0.0.1:{stack['ports']['mlflow']}/health", timeout=10)
    assert health.ok and "OK" in health.text


def test_cli_backfill_of_feature_refresh_builds_gold_for_those_days(stack):
    from deltalake import DeltaTable

    api = stack["api"]
    # Queued while the DAG is still paused: on SQLite the CLI's inserts then do not race the
    # scheduler starting the latest interval's run, which unpausing queues ("database is locked").
    _airflow(
        stack,
        "backfill",
        "create",
        "--dag-id",
        "dev_feature_refresh",
        "--from-date",
        BACKFILL[0],
        "--to-date",
        BACKFILL[1],
        "--max-active-runs",
        "1",
    )
    _airflow(stack, "dags", "unpause", "dev_feature_refresh")
    backfill_runs = []
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        backfill_runs = api.call("GET", "/dags/dev_feature_refresh/dagRuns", params={"run_type": "backfill"})[
            "dag_runs"
        ]
        if len(backfill_runs) == 2 and all(r["state"] in ("success", "failed") for r in backfill_runs):
            break
        time.sleep(3)
    assert sorted(r["state"] for r in backfill_runs) == ["success"] * 2, backfill_runs
    intervals = sorted(r["data_interval_start"][:10] for r in backfill_runs)
    assert intervals == ["2013-02-04", "2013-02-05"]
    gold = DeltaTable(str(stack["data_dir"] / "lakehouse" / "dev" / "gold" / "tiny_features")).to_pandas()
    assert sorted({str(d) for d in gold.reading_date}) == intervals
    assert gold.reading_id.is_unique and len(gold) > 2 * 20
    task_logs = [
        p.read_text()
        for p in (stack["data_dir"] / "airflow" / "logs" / "dag_id=dev_feature_refresh").rglob("*.log")
    ]
    computed_on = f"computing on the Spark Connect server {stack['state']['spark_remote']}"
    assert any(computed_on in log for log in task_logs)  # the stack's warm Spark
    forked = f"Forked from the job server {stack['state']['job_server']}"
    # and its warm Python: every job task forked from it, none started a new interpreter
    assert sum(forked in log for log in task_logs) >= 4 * 2 and not any(
        "Running command:" in log for log in task_logs
    )


def test_prod_promotion_approved_over_rest_moves_the_champion(stack):
    """The approver answers the HITL request (the viewer may look but not answer): the approval
    record and the audit row name the user Airflow authenticated, never a typed name."""
    from deltalake import DeltaTable

    api = stack["api"]
    run_id = _trigger_training(api)
    api.answer_approval("prod_training", run_id, "approve_promotion", "Approve", viewer=stack["viewer"])
    run = api.wait_run("prod_training", run_id)
    assert run["state"] == "success", api.task_states("prod_training", run_id)
    assert api.task_states("prod_training", run_id)["promote"] == "success"
    registry = _registry(stack)
    assert str(registry.get_model_version_by_alias("prod.ml.tiny_classifier", "Champion").version) == "1"
    audit = DeltaTable(str(stack["data_dir"] / "lakehouse" / "prod" / "ml" / "model_audit")).to_pandas()
    assert audit[["action", "to_version", "approved_by", "actor", "status"]].values.tolist() == [
        ["promote", "1", "admin", "unauthenticated", "done"]  # the embedded store authenticates nobody
    ]
    tags = registry.get_model_version("prod.ml.tiny_classifier", "1").tags
    assert (tags["approval.by"], tags["approval.via"], tags["approval.recorded_by"]) == (
        "admin",
        "airflow",
        "unauthenticated",
    )
    _the_stack_serves_the_champion(stack, "1")


def _the_stack_serves_the_champion(stack, version: str) -> None:
    """`make up`'s endpoint follows the alias the promotion moved, and scores prod's gold rows."""
    from deltalake import DeltaTable

    from jobs.config.loader import load_config
    from jobs.modeling.estimator import model_inputs

    url = stack["state"]["serving_url"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        health = requests.get(f"{url}/health", timeout=10)
        if health.ok and health.json()["serving"]["version"] == version:
            break
        time.sleep(1)
    assert health.ok, health.text
    gold = DeltaTable(str(stack["data_dir"] / "lakehouse" / "prod" / "gold" / "tiny_features")).to_pandas()
    rows = model_inputs(load_config("prod").use_case.model, gold).head(3)
    body = {"dataframe_split": json.loads(rows.to_json(orient="split", index=False))}
    answer = requests.post(f"{url}/invocations", json=body, timeout=30)
    assert answer.ok and len(answer.json()["predictions"]) == 3, answer.text
    assert answer.headers["x-model-version"] == version


def test_prod_promotion_rejected_over_rest_keeps_the_champion(stack):
    """The approver (Airflow role "user") triggers and answers; the viewer may look at the prod
    deployment DAG but not trigger it. The rejection names the approver."""
    api, viewer = stack["approver"], stack["viewer"]
    refused = viewer.request(
        "POST", "/dags/prod_deployment/dagRuns", json={"logical_date": None, "conf": {"candidate": "1"}}
    )
    assert refused.status_code == 403, refused.text
    assert viewer.call("GET", "/dags/prod_deployment")["dag_id"] == "prod_deployment"  # a viewer may look
    run_id = _trigger_training(api)
    answer = api.answer_approval("prod_training", run_id, "approve_promotion", "Reject")
    assert answer["chosen_options"] == ["Reject"]
    run = api.wait_run("prod_training", run_id)
    states = api.task_states("prod_training", run_id)
    assert run["state"] == "success" and states["promote"] == "skipped", states
    registry = _registry(stack)
    name = "prod.ml.tiny_classifier"
    assert str(registry.get_model_version_by_alias(name, "Champion").version) == "1"
    assert registry.get_model_version(name, "2").tags["model_validation_status"] == "PASSED"
    assert states["record_rejection"] == "success" and states["record_approval"] == "skipped", states
    assert states["clear_challenger"] == "success", states
    tags = registry.get_model_version(name, "2").tags
    assert (tags["approval.status"], tags["approval.by"], tags["approval.via"]) == (
        "rejected",
        "approver",
        "airflow",
    )
    with pytest.raises(Exception, match="not found"):  # a rejected candidate is no Challenger
        registry.get_model_version_by_alias(name, "Challenger")


def test_down_stops_exactly_what_up_started(stack):
    state = stack["state"]
    spark = json.loads((stack["data_dir"] / "run" / "spark_connect.json").read_text())
    assert state["spark_remote"] == spark["url"]
    jobs = json.loads((stack["data_dir"] / "run" / "job_server.json").read_text())
    assert state["job_server"] == jobs["socket"] and state["started"] == ["spark_connect", "job_server"]
    pids = [s["pid"] for s in state["services"].values()] + [spark["pid"], jobs["pid"]]
    bystander = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)"], start_new_session=True
    )
    try:
        down = subprocess.run(
            [sys.executable, str(ROOT / "scripts" / "stack.py"), "down"],
            env=stack["env"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert (
            down.returncode == 0
            and "stopped airflow, job_server, mlflow, serving, spark_connect" in down.stdout
        ), down.stdout + down.stderr
        for pgid in pids:
            with pytest.raises(ProcessLookupError):
                os.killpg(pgid, 0)
        assert bystander.poll() is None  # another process group is left alone
        assert not (stack["data_dir"] / "run" / "stack.json").exists()
    finally:
        bystander.kill()
