"""Databricks mode against a local stand-in for the Jobs API (tests/plugins/databricks_standin.py:
a test double, not Databricks). With ``compute.kind: databricks`` every job task becomes a
``python_wheel_task`` run of the project's wheel; here each DAG runs end to end under dag.test()
against the stand-in, the submitted payloads are pinned as golden JSON and checked against the
Jobs API's documented fields, and a failed run and a cancelled one (``on_kill``) behave."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.plugins.databricks_standin import JobsApiStandIn, Outcome, payload_problems

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).parent / "golden" / "databricks"
RESULTS = {  # what each job prints as its result line on the (pretend) cluster
    ("feature_refresh", "bronze"): {"rows": 900},
    ("feature_refresh", "silver"): {"rows": 890},
    ("feature_refresh", "gate"): {"passed": True},
    ("feature_refresh", "gold"): {"rows": 880},
    ("batch_inference", None): {"rows": 880, "model_version": "1"},
    ("streaming_inference", None): {"batches": 1, "rows": 12},
    ("train", None): {"version": "1", "run_id": "r1"},
    ("validate_model", None): {"status": "PASSED", "model_name": "dev.ml.tiny_classifier", "version": "1"},
    ("promote", "compare"): {
        "decision": "promote",
        "challenger_version": "1",
        "champion_version": None,
        "metric": "roc_auc",
        "challenger_value": 0.7,
        "champion_value": None,
        "window": "w",
    },
    ("promote", "promote"): {"moved": True, "to_version": "1"},
    ("promote", "rollback"): {"moved": True, "to_version": "0"},
    ("monitoring", "monitor"): {
        "rows": 900,
        "dataset_drift_share": 0.3,
        "violations": ["dataset_drift_share"],
    },
    ("monitoring", "decide"): {
        "retrain": True,
        "ready": True,
        "reason": "2 of the last 3 windows violate",
        "windows": ["[2013-07-01, 2013-07-02)"],
        "values": {},
    },
    ("monitoring", "alert"): {"table": "dev.monitoring.alerts", "version": 0},
    ("maintenance", None): {"tables": {}, "retention_hours": 168},
}
HOLD = {
    "retrain": False,
    "ready": True,
    "reason": "1 of the last 3 windows violate",
    "windows": [],
    "values": {},
}
BAD_INPUT = "no labelled rows in dev.gold.tiny_features for [2013-03-01, 2013-04-01)"
FAILING = {
    "train": Outcome(
        result="FAILED",
        state_message="Workload failed, see run output for details",
        error="SystemExit: 2",
        logs="RUNWAY_RESULT " + json.dumps({"ok": False, "exit_code": 2, "error": BAD_INPUT}) + "\n",
    )
}


def _job_and_step(payload: dict) -> tuple[str, str | None]:
    parameters = payload["tasks"][0]["python_wheel_task"]["parameters"]
    step = parameters[1] if len(parameters) > 1 and not parameters[1].startswith("--") else None
    return parameters[0], step


def _record_status(version: str, status: str) -> None:
    """What a validation run on Databricks leaves in the registry the training DAG's sensor reads
    (here the session's local registry, standing in for the workspace's)."""
    from contextlib import suppress

    from jobs.config.loader import load_config
    from jobs.release.registry import STATUS_TAG, ModelRegistry

    registry = ModelRegistry.for_config(load_config("dev"))
    with suppress(Exception):  # created by an earlier run
        registry.client.create_registered_model(registry.model_name)
    while not registry.client.search_model_versions(
        f"name='{registry.model_name}' and version_number={version}"
    ):
        registry.client.create_model_version(registry.model_name, source="dbfs:/standin/model")
    registry.set_tags(version, {STATUS_TAG: status})


def script(payload: dict) -> Outcome:
    job, step = _job_and_step(payload)
    if os.environ.get("STANDIN_FAIL") == job:
        return FAILING[job]
    if os.environ.get("STANDIN_HANG") == job:
        return Outcome(result="HANG")
    result = RESULTS.get((job, step), RESULTS.get((job, None)))
    if job == "validate_model":  # the remote job records the status in the workspace's registry
        _record_status(result["version"], result["status"])
    if (job, step) == ("monitoring", "decide") and os.environ.get("STANDIN_HOLD"):
        result = HOLD
    logs = "spark: starting\n" + "RUNWAY_RESULT " + json.dumps({"ok": True, "result": result}) + "\n"
    return Outcome(logs=logs)


@pytest.fixture(scope="module")
def standin():
    with JobsApiStandIn(script) as api:
        yield api


@pytest.fixture(scope="module")
def databricks_dags(standin, airflow_db, tmp_path_factory):
    """The DAG files parsed with ``compute.kind: databricks`` and the stand-in as the connection."""
    from airflow.models import DagBag

    with pytest.MonkeyPatch.context() as patch:  # undone also when the set-up fails
        patch.setenv("RUNWAY_COMPUTE", "databricks")
        patch.setenv("RUNWAY_DATABRICKS_POLL_SECONDS", "0")
        patch.setenv("AIRFLOW_CONN_DATABRICKS_DEFAULT", standin.connection_uri)
        patch.setenv("RUNWAY_DAG_ENVS", "dev")
        # Its own registry: the stand-in records validation statuses in it, as the workspace's would.
        patch.setenv(
            "RUNWAY_DEV_MLFLOW_TRACKING_URI",
            f"sqlite:///{tmp_path_factory.mktemp('databricks-mlflow') / 'mlflow.db'}",
        )
        bags = {
            name: DagBag(dag_folder=str(ROOT / "dags" / f"{name}.py"))
            for name in (
                "feature_refresh",
                "training",
                "inference",
                "monitoring",
                "maintenance",
                "deployment",
            )
        }
        assert not any(bag.import_errors for bag in bags.values()), {
            k: b.import_errors for k, b in bags.items()
        }
        yield {dag_id: dag for bag in bags.values() for dag_id, dag in bag.dags.items()}


def _states(run) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in run.get_task_instances()}


def _normalised(payload: dict) -> dict:
    """A payload without what differs per run (the run id in its name, the token derived from it)
    or per checkout (the test use case's folder)."""
    payload = json.loads(json.dumps(payload).replace(str(ROOT), "<project>"))
    payload["run_name"] = " ".join(payload["run_name"].split(" ")[:2])
    payload["idempotency_token"] = f"<{len(payload['idempotency_token'])} hex chars>"
    parameters = payload["tasks"][0]["python_wheel_task"]["parameters"]
    if "--run-id" in parameters:
        parameters[parameters.index("--run-id") + 1] = "<airflow run id>"
    return payload


CONF = {
    "dev_feature_refresh": {"start_date": "2013-03-01", "end_date": "2013-03-02"},
    "dev_batch_inference": {"start_date": "2013-04-01", "end_date": "2013-04-02"},
    "dev_streaming_inference": {},
    "dev_training": {"training_end": "2013-04-01", "reason": "manual", "hyperparameters": {}},
    "dev_rollback": {"reason": "test"},
    "dev_monitoring": {"start_date": "2013-06-01", "end_date": "2013-06-02"},
    "dev_maintenance": {},
}


@pytest.mark.parametrize("dag_id", list(CONF))
def test_dag_runs_end_to_end_in_databricks_mode_with_golden_payloads(dag_id, databricks_dags, standin):
    dag = databricks_dags[dag_id]
    before = len(standin.submitted())
    run = dag.test(logical_date=None, run_conf=CONF[dag_id])
    assert str(run.state) == "success", _states(run)
    payloads = standin.submitted()[before:]
    job_tasks = [t for t in dag.tasks if t.__class__.__name__ == "RunwayDatabricksJobOperator"]
    assert job_tasks and {p["tasks"][0]["task_key"] for p in payloads} == {
        t.task_id for t in job_tasks if _states(run)[t.task_id] == "success"
    }
    assert standin.rejected == []
    for payload in payloads:
        assert payload_problems(payload) == []
        wheel = payload["tasks"][0]["python_wheel_task"]
        assert wheel["package_name"] == "runway_mlops" and wheel["entry_point"] == "runway_job"
        assert wheel["parameters"][-2:] == ["--env", "dev"] and "named_parameters" not in wheel
        golden = GOLDEN / f"{dag_id}.{payload['tasks'][0]['task_key']}.json"
        if os.environ.get("UPDATE_GOLDEN"):
            golden.parent.mkdir(parents=True, exist_ok=True)
            golden.write_text(json.dumps(_normalised(payload), indent=2, sort_keys=True) + "\n")
        assert _normalised(payload) == json.loads(golden.read_text()), golden.name


def test_every_job_a_dag_sends_is_one_runway_job_runs(databricks_dags, capsys):
    """The deployment DAG sent load_test, rollout and online_report, which the wheel's entry point
    answered with "unknown job": every job task's payload names a job ``runway_job`` runs (its
    --help answers), and the deployment DAG's payloads are pinned as golden JSON too."""
    from jobs.__main__ import main as runway_job
    from jobs.runnable import JOBS
    from operators.databricks_job import wheel_task_payload

    sent = set()
    for dag_id, dag in sorted(databricks_dags.items()):
        for task in dag.tasks:
            if task.__class__.__name__ != "RunwayDatabricksJobOperator":
                continue
            payload = wheel_task_payload(
                job=task.job,
                arguments=[*task.arguments, "--env", task.env],
                task_key=task.task_id,
                run_name=f"runway {dag_id}.{task.task_id} <run>",
                spec=task.spec,
                token="<token>",
            )
            sent.add(payload["tasks"][0]["python_wheel_task"]["parameters"][0])
            if dag_id == "dev_deployment":
                golden = GOLDEN / f"{dag_id}.{task.task_id}.json"
                if os.environ.get("UPDATE_GOLDEN"):
                    golden.write_text(json.dumps(_normalised(payload), indent=2, sort_keys=True) + "\n")
                assert _normalised(payload) == json.loads(golden.read_text()), golden.name
    assert {"load_test", "rollout", "online_report", "promote", "train"} <= sent
    assert sent <= set(JOBS)
    for job in sorted(sent):
        with pytest.raises(SystemExit) as exited:
            runway_job([job, "--help"])
        assert exited.value.code == 0, (job, capsys.readouterr())


def test_a_dag_naming_a_job_runway_job_does_not_run_is_refused_at_parse_time():
    from dag_factories.compute import job_task
    from jobs.config.loader import load_config
    from jobs.runnable import UnknownJobError

    with pytest.raises(UnknownJobError, match="unknown job 'load_tests': runway_job runs seed, "):
        job_task(load_config("dev"), task_id="x", job="load_tests", arguments=[])


def test_training_results_flow_through_xcom_in_databricks_mode(databricks_dags, standin):
    run = databricks_dags["dev_training"].test(logical_date=None, run_conf=CONF["dev_training"])
    states = _states(run)
    assert states["promote"] == "success" and states["champion_kept"] == "skipped", states
    promote = [p for p in standin.submitted() if p["tasks"][0]["task_key"] == "promote"][-1]
    parameters = promote["tasks"][0]["python_wheel_task"]["parameters"]
    assert parameters[:2] == ["promote", "promote"]
    assert parameters[parameters.index("--version") + 1] == "1"  # the compared version, through XCom
    validate = [p for p in standin.submitted() if p["tasks"][0]["task_key"] == "validate"][-1]
    version = validate["tasks"][0]["python_wheel_task"]["parameters"]
    assert version[version.index("--version") + 1] == "1"  # the train run's result, through XCom


def test_a_failed_run_fails_the_task_with_its_url_and_state_message(
    databricks_dags, standin, capfd, monkeypatch
):
    monkeypatch.setenv("STANDIN_FAIL", "train")
    run = databricks_dags["dev_training"].test(logical_date=None, run_conf=CONF["dev_training"])
    states = _states(run)
    assert (
        str(run.state) == "failed" and states["train"] == "failed" and states["validate"] == "upstream_failed"
    )
    output = capfd.readouterr()
    text = output.out + output.err
    failed = [r for r in standin.runs.values() if r.outcome.result == "FAILED"][-1]
    message = next(line for line in text.splitlines() if "bad input: " + BAD_INPUT in line)
    assert (
        standin.page_url(failed.run_id) in message
        and "Workload failed, see run output for details" in message
    )
    assert len([r for r in standin.runs.values() if r.outcome.result == "FAILED"]) == 1  # bad input: no retry


def test_on_kill_cancels_the_remote_run(databricks_dags, standin, monkeypatch):
    monkeypatch.setenv("STANDIN_HANG", "batch_inference")
    task = databricks_dags["dev_batch_inference"].get_task("score")
    operator = task.__class__(
        task_id="score",
        job=task.job,
        arguments=["--start", "2013-04-01", "--end", "2013-04-02"],
        env="dev",
        spec=task.spec,
    )
    ti = SimpleNamespace(run_id="manual__kill", try_number=1, xcom_push=lambda **_: None, stats_tags={})
    context = {"ti": ti, "params": {}, "outlet_events": {}}
    errors: list[BaseException] = []

    def run() -> None:
        try:
            operator.execute(context)
        except BaseException as exc:  # noqa: BLE001 - the cancelled run's failure is the point
            errors.append(exc)

    worker = threading.Thread(target=run)
    before = len(standin.runs)
    worker.start()
    deadline = time.monotonic() + 30
    while len(standin.runs) == before and time.monotonic() < deadline:
        time.sleep(0.1)
    run_id = max(standin.runs)
    time.sleep(0.5)
    operator.on_kill()
    worker.join(timeout=30)
    assert not worker.is_alive()
    assert ("POST", "/api/2.2/jobs/runs/cancel", {"run_id": run_id}) in standin.requests
    assert standin.runs[run_id].cancelled and errors and "CANCELED" in str(errors[0])


def test_payload_check_rejects_what_the_jobs_api_does_not_document():
    good = json.loads((GOLDEN / "dev_training.train.json").read_text())
    assert payload_problems(good) == []
    bad = json.loads(json.dumps(good))
    bad["tasks"][0]["python_wheel_task"]["named_parameters"] = {"env": "dev"}
    bad["tasks"][0]["new_cluster"]["num_worker"] = 2
    bad["cluster"] = {}
    problems = payload_problems(bad)
    assert len(problems) == 3 and any("exclusive" in p for p in problems), problems


def test_wheel_entry_point_dispatches_to_the_jobs():
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "jobs", "nope"], capture_output=True, text=True)
    assert done.returncode == 2 and "unknown job 'nope'" in done.stderr
    done = subprocess.run(
        [sys.executable, "-m", "jobs", "promote", "compare", "--env", "nowhere"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and "nowhere" in done.stderr  # the job's own config error, one line


def test_monitoring_decides_on_the_cluster_and_skips_when_the_policy_does_not_hold(
    databricks_dags, monkeypatch
):
    dag = databricks_dags["dev_monitoring"]
    assert dag.get_task("check_drift").__class__.__name__ == "RunwayDatabricksJobOperator"  # no local read
    monkeypatch.setenv("STANDIN_HOLD", "1")
    run = dag.test(logical_date=None, run_conf={"start_date": "2013-06-02", "end_date": "2013-06-03"})
    states = _states(run)
    assert str(run.state) == "success" and states["monitor"] == "success", states
    assert {states[t] for t in ("check_drift", "record_alert", "retrain", "notify")} == {"skipped"}, states


@pytest.mark.parametrize("deferrable", [False, True])
def test_the_jobs_result_comes_back_whether_the_task_waits_or_defers(databricks_dags, standin, deferrable):
    """With Airflow's default_deferrable on, the task used to hand the wait to the triggerer and
    return nothing: Runway's result (rows, model version) was dropped."""
    import asyncio

    from airflow.sdk.exceptions import TaskDeferred

    task = databricks_dags["dev_batch_inference"].get_task("score")

    def operator():
        return task.__class__(
            task_id="score",
            job=task.job,
            arguments=["--start", "2013-04-01", "--end", "2013-04-02"],
            env="dev",
            spec=task.spec,
            deferrable=deferrable,
        )

    ti = SimpleNamespace(
        run_id=f"manual__deferrable_{deferrable}", try_number=1, xcom_push=lambda **_: None, stats_tags={}
    )
    context = {"ti": ti, "params": {}, "outlet_events": {}}
    try:
        result = operator().execute(context)
    except TaskDeferred as deferred:
        assert deferrable and deferred.method_name == "execute_complete"
        trigger = deferred.trigger

        async def first_event():
            async for event in trigger.run():
                return event.payload

        result = operator().execute_complete(
            context, asyncio.run(first_event())
        )  # a fresh instance, as on resume
    assert result == RESULTS[("batch_inference", None)]


def test_the_cluster_runs_the_use_case_airflow_selected(monkeypatch):
    """Before: the cluster's environment did not say which use case, so a deployment selecting
    seattle_weather through RUNWAY_USE_CASE ran base.yaml's default (flights) on Databricks."""
    from dag_factories.compute import databricks_spec, spark_submit_spec
    from jobs.config.loader import load_config
    from tests.conftest import TEST_USE_CASE

    monkeypatch.setenv("RUNWAY_USE_CASE", "seattle_weather")
    assert (
        databricks_spec(load_config("prod"))["env_vars"]["RUNWAY_USE_CASE"] == "seattle_weather"
    )  # in the wheel
    monkeypatch.setenv("RUNWAY_USE_CASE", str(TEST_USE_CASE))
    assert spark_submit_spec(load_config("dev"))["env_vars"]["RUNWAY_USE_CASE"] == str(TEST_USE_CASE)


def test_the_traffic_renders_as_a_serving_endpoint_config_the_api_takes():
    """Rendered through the SDK's own types, pinned as golden JSON, and sent with the SDK's
    serving_endpoints.update_config to the stand-in, which checks the documented fields; what
    Databricks cannot carry (the shadow, the sticky key) is named, not dropped silently."""
    from databricks.sdk import WorkspaceClient

    from jobs.config.traffic import Traffic, to_databricks
    from tests.plugins.databricks_standin import TOKEN, JobsApiStandIn, Outcome

    traffic = Traffic.from_dict(
        {
            "routes": [
                {"name": "champion", "alias": "Champion", "percent": 90},
                {"name": "candidate", "version": 7, "percent": 10},
            ],
            "shadow": {"alias": "Challenger"},
            "sticky_key": "flight_id",
        }
    )
    config, notes = to_databricks(
        traffic,
        "prod.ml.flight_delay_classifier",
        {"champion": "6", "candidate": "7"},
        endpoint="flight-delay",
        catalog="prod",
        schema="ml",
    )
    body = config.as_dict()
    golden = GOLDEN / "serving_endpoint_config.json"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(json.dumps(body, indent=2, sort_keys=True) + "\n")
    assert body == json.loads(golden.read_text())
    assert [n.split(" ")[0] for n in notes] == ["shadow", "sticky_key"]
    with JobsApiStandIn(lambda payload: Outcome("SUCCESS")) as api:
        client = WorkspaceClient(host=f"http://127.0.0.1:{api.port}", token=TOKEN)
        client.serving_endpoints.update_config(
            config.name,
            served_entities=config.served_entities,
            traffic_config=config.traffic_config,
            auto_capture_config=config.auto_capture_config,
        )
        assert api.rejected == []
        [(method, path, sent)] = api.requests
    assert (method, path) == ("PUT", "/api/2.0/serving-endpoints/flight-delay/config")
    assert sent == {k: v for k, v in body.items() if k != "name"}  # the name goes in the path
    from tests.plugins.databricks_standin import endpoint_config_problems

    bad = {
        **sent,
        "traffic_config": {
            "routes": [
                {"served_entity_name": "champion", "traffic_percentage": 50},
                {"served_entity_name": "shadow", "traffic_percentage": 50},
            ]
        },
    }
    assert endpoint_config_problems(bad) == ["route to unknown served entity shadow"]
    assert endpoint_config_problems({**sent, "shadow_config": {}}) == ["unknown field shadow_config"]


@pytest.mark.parametrize("env", ["dev", "staging", "prod"])
def test_no_job_on_databricks_writes_to_the_drivers_disk(env, monkeypatch):
    """Every path a job uses on the cluster (tables, landing zone, streaming checkpoints and landing
    folder, quality and monitoring reports, the serving WAL, MLflow artifacts) comes from the
    cluster's environment as a Unity Catalog Volume: a job cluster's local disk is gone after the run."""
    from dag_factories.compute import databricks_spec
    from jobs.config.loader import load_config

    monkeypatch.setenv("RUNWAY_COMPUTE", "databricks")
    cluster_env = databricks_spec(load_config(env))["env_vars"]  # what the run's processes see
    with monkeypatch.context() as cluster:
        for key in ("RUNWAY_DATA_DIR", "MLFLOW_ARTIFACT_ROOT", "RUNWAY_SERVING_WAL_ROOT"):
            cluster.delenv(key, raising=False)  # nothing of this machine's leaks into the cluster's
        for key, value in cluster_env.items():
            cluster.setenv(key, value)
        config = load_config(env)
        paths = {
            "lakehouse": config.storage.lakehouse_root,
            "landing": config.storage.landing_root,
            "reports": config.storage.reports_root,
            "checkpoints": config.storage.checkpoint_root,
            "stream landing": config.inference.streaming.landing_dir,
            "serving WAL": config.serving.inference_log.wal_root,
            "MLflow artifacts": config.mlflow.artifact_root,
        }
    assert {name: str(path) for name, path in paths.items() if not str(path).startswith("/Volumes/")} == {}
