"""spark-submit mode on a real Spark standalone cluster (tests/conftest.py: a master and a worker on
loopback): the apache-spark provider's SparkSubmitOperator submits each job in client mode with the
wheel as --py-files; executors are separate JVMs and Python workers, so anything that only works on
a driver fails here.

- The feature-refresh DAG committed with native delta-spark (the shipped spark-submit config: the
  spark engine, tables by location, the jars make install fetched shipped with each job), and the
  refresh job committed with delta-rs from the driver (the local engine, for clusters without
  Delta): both give the tables a local run of the same days gives.
- Training, batch inference (spark_udf: in a standalone application every task runs on an
  executor) and a streaming drain on the cluster give the model and the predictions a local run
  of the same jobs gives.
- Bad input fails the task at once with the job's sentence; ``on_kill`` ends the application and
  every process of the submission, its Python driver included.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from datetime import date
from pathlib import Path
from urllib.parse import urlparse

import pytest

from jobs.core.window import Window
from tests.support import content_checksum, refresh_command

ROOT = Path(__file__).resolve().parents[2]
DAYS = Window(date(2013, 11, 12), date(2013, 11, 14))
GOLD = ("gold", "tiny_features")
PREDICTIONS = ("ml", "predictions")
VOLATILE = ("_ingested_at", "_source_file", "_run_id")  # when and where a row was loaded, by which run
# when a prediction was made, by which run of which MLflow run (the two registries' runs differ)
VOLATILE_PREDICTIONS = ("scored_at", "run_id", "model_run_id")
TRAINING = Window(date(2013, 1, 1), date(2013, 2, 12))  # the use case's 42 days
SCORED = Window(date(2013, 2, 12), date(2013, 2, 14))
STREAMED = Window(date(2013, 2, 14), date(2013, 2, 15))


def _submit_to(cluster, monkeypatch, wheel: Path, data_dir: Path, engine: str = "spark") -> None:
    """spark-submit mode against ``cluster`` (the provider's connection), the jobs' data under
    ``data_dir``; the table engine ``engine`` (the shipped config's RUNWAY_SPARK_SUBMIT_ENGINE)."""
    from jobs.core.paths import delta_jars

    if engine == "spark" and not delta_jars()[0]:
        pytest.skip(f"delta-spark's JVM jars are not on this machine: {delta_jars()[1]}")
    master = urlparse(cluster.url)
    for key, value in {
        "RUNWAY_COMPUTE": "spark-submit",
        "RUNWAY_WHEEL_FILE": str(wheel),
        "RUNWAY_DAG_ENVS": "dev",
        "RUNWAY_DATA_DIR": str(data_dir),
        "RUNWAY_SPARK_SUBMIT_ENGINE": engine,
        "RUNWAY_SPARK_REMOTE": "",
        "RUNWAY_DELTA_SNAPSHOT_PARTITIONS": "2",  # a 2-core worker
        # the pyspark package's spark-submit
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "AIRFLOW_CONN_SPARK_DEFAULT": json.dumps(
            {
                "conn_type": "spark",
                "host": f"spark://{master.hostname}",
                "port": master.port,
                "extra": {"deploy-mode": "client"},
            }
        ),
    }.items():
        monkeypatch.setenv(key, value)


def _checksum(spark, root: Path, table: tuple[str, str], volatile=VOLATILE):
    """The content checksum of a table under ``root``'s dev lakehouse, read with delta-rs (both
    engines write the same Delta protocol), without the columns that say when and by whom."""
    from deltalake import DeltaTable

    frame = DeltaTable(str(root / "lakehouse" / "dev" / table[0] / table[1])).to_pyarrow_table().to_pandas()
    df = spark.createDataFrame(frame)
    return content_checksum(df.drop(*[c for c in volatile if c in df.columns]))


def _run_dag(file_name: str, dag_id: str, **conf):
    from airflow.models import DagBag

    dag = DagBag(dag_folder=str(ROOT / "dags" / file_name)).dags[dag_id]
    run = dag.test(logical_date=None, run_conf=conf or None)
    states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    assert str(run.state) == "success", states
    return run


@pytest.fixture(scope="module")
def local_gold(tmp_path_factory, spark):
    """The same days refreshed by a local job (local engine, the session's warm Spark)."""
    from jobs.features.seed import seed
    from tests.support import make_config

    root = tmp_path_factory.mktemp("local-run")
    config = make_config(root)
    seed(config, DAYS)
    env = {
        **os.environ,
        "RUNWAY_DATA_DIR": str(root),
        "RUNWAY_COMPUTE": "local",
        "RUNWAY_TABLE_ENGINE": "local",
    }
    done = subprocess.run(
        refresh_command(str(DAYS.start), str(DAYS.end), "local"),
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return _checksum(spark, root, GOLD)


@pytest.mark.parametrize("engine", ["spark", "local"])
def test_feature_refresh_on_a_real_cluster_gives_the_local_runs_tables(
    engine, airflow_db, spark_cluster, project_wheel, local_gold, spark, tmp_path, monkeypatch
):
    from dag_factories.compute import job_task
    from jobs.config.loader import load_config
    from jobs.features.seed import seed

    _submit_to(spark_cluster, monkeypatch, project_wheel, tmp_path, engine)
    config = load_config("dev")
    assert config.compute.kind == "spark-submit"
    seed(config, DAYS)
    before = {app["id"] for app in spark_cluster.applications()}
    window = ["--start", str(DAYS.start), "--end", str(DAYS.end)]
    if engine == "spark":  # the shipped config: the DAG, each stage its own application
        _run_dag("feature_refresh.py", "dev_feature_refresh", start_date=window[1], end_date=window[3])
        stages = 4  # bronze, silver, gate and gold
    else:  # delta-rs from the driver: one application refreshing every stage
        job_task(config, task_id="refresh", job="feature_refresh", arguments=["all", *window]).execute({})
        stages = 1

    ran = [app for app in spark_cluster.applications() if app["id"] not in before]
    # each stage ran as an application with executors on the worker
    assert [app["name"] for app in ran] == ["runway-feature-refresh-dev"] * stages
    assert all(app["cores"] > 0 for app in ran)
    assert _checksum(spark, tmp_path, GOLD) == local_gold


@pytest.fixture(scope="module")
def refreshed(tmp_path_factory, spark) -> Path:
    """A data folder with the days training, scoring and streaming use refreshed into gold (local
    engine, in this process): each run below starts from a copy."""
    from jobs.features.refresh import JobContext, refresh
    from jobs.features.seed import seed
    from tests.support import make_config

    root = tmp_path_factory.mktemp("refreshed")
    config = make_config(root)
    everything = Window(TRAINING.start, STREAMED.end)
    seed(config, everything)
    refresh(JobContext.open(config, "refresh"), everything)
    return root


def _local_lifecycle(root: Path, spark, monkeypatch) -> dict:
    """Train, promote, batch-score and drain the stream in this process on the local engine."""
    import mlflow

    from jobs.config.loader import load_config
    from jobs.features.seed import emit_events
    from jobs.modeling.batch_scoring import score_window
    from jobs.modeling.streaming_scoring import run_stream
    from jobs.modeling.train import train
    from jobs.tablestore import open_table_store

    _own_mlflow(monkeypatch)
    monkeypatch.setenv("RUNWAY_DATA_DIR", str(root))
    monkeypatch.setenv("RUNWAY_COMPUTE", "local")
    config = load_config("dev")
    store = open_table_store(config, spark)
    tracking, registry = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    exported = {key: os.environ.get(key) for key in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    try:
        trained = train(config, store, TRAINING, run_id="local")
        _make_champion(config, trained["version"])
        score_window(config, store, SCORED, run_id="local")
        emit_events(config, STREAMED, files_per_day=4)
        assert run_stream(config, store, available_now=True)["predictions"] > 0
    finally:  # this process's MLflow as it was, and nothing exported to the jobs it starts next
        mlflow.set_tracking_uri(tracking)
        mlflow.set_registry_uri(registry)
        for key, value in exported.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return trained


def _own_mlflow(monkeypatch) -> None:
    """The tracking store and registry under the data folder (the config's default), whatever an earlier
    test left in MLflow's variables."""
    for key in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_ARTIFACT_ROOT"):
        monkeypatch.delenv(key, raising=False)


def _make_champion(config, version: str) -> None:
    import mlflow

    client = mlflow.MlflowClient(
        tracking_uri=config.mlflow.tracking_uri, registry_uri=config.mlflow.tracking_uri
    )
    client.set_registered_model_alias(config.registered_model_name, config.inference.alias, version)


def test_training_and_scoring_on_a_real_cluster_give_the_local_runs_model_and_predictions(
    airflow_db, spark_cluster, project_wheel, refreshed, spark, tmp_path, monkeypatch
):
    from dag_factories.compute import job_task
    from jobs.config.loader import load_config
    from jobs.features.seed import emit_events

    local, cluster = tmp_path / "local", tmp_path / "cluster"
    for root in (local, cluster):
        shutil.copytree(refreshed, root)
    expected = _local_lifecycle(local, spark, monkeypatch)

    _submit_to(spark_cluster, monkeypatch, project_wheel, cluster)
    _own_mlflow(monkeypatch)
    config = load_config("dev")
    before = {app["id"] for app in spark_cluster.applications()}
    train = job_task(
        config,
        task_id="train",
        job="train",
        arguments=["--start", str(TRAINING.start), "--end", str(TRAINING.end), "--run-id", "cluster"],
    )
    trained = train.execute({})
    # the same model from the same rows, registered as the first version of the cluster's own registry
    assert trained["metrics"] == expected["metrics"] and trained["threshold"] == expected["threshold"]
    assert trained["version"] == expected["version"] == "1"
    _make_champion(config, trained["version"])

    run = _run_dag(
        "inference.py", "dev_batch_inference", start_date=str(SCORED.start), end_date=str(SCORED.end)
    )
    scored = run.get_task_instance("score").xcom_pull(task_ids="score")
    # spark_udf: in a standalone application no task runs in the driver, every one on an executor
    assert scored["scorer"] == "spark_udf" and scored["rows"] > 0
    emit_events(config, STREAMED, files_per_day=4)
    run = _run_dag("inference.py", "dev_streaming_inference")
    drained = run.get_task_instance("drain_events").xcom_pull(task_ids="drain_events")
    assert drained["predictions"] > 0 and drained["quarantined"] == 0

    ran = [app for app in spark_cluster.applications() if app["id"] not in before]
    assert len(ran) == 3 and all(app["cores"] > 0 for app in ran), ran
    assert _checksum(spark, cluster, PREDICTIONS, VOLATILE_PREDICTIONS) == _checksum(
        spark, local, PREDICTIONS, VOLATILE_PREDICTIONS
    )


def test_bad_input_fails_the_task_at_once_with_the_jobs_sentence(
    spark_cluster, project_wheel, tmp_path, monkeypatch
):
    from airflow.sdk.exceptions import AirflowFailException

    from dag_factories.compute import job_task
    from jobs.config.loader import load_config

    _submit_to(spark_cluster, monkeypatch, project_wheel, tmp_path, engine="local")
    operator = job_task(
        load_config("dev"),
        task_id="seed",
        job="seed",
        arguments=["--start", "2013-01-05", "--end", "2013-01-01"],
    )
    with pytest.raises(AirflowFailException, match=r"^bad input: .*2013-01-05"):
        operator.execute({})


def _command_line(process) -> str:
    import psutil

    try:
        return " ".join(process.cmdline())
    except psutil.Error:  # gone or a zombie meanwhile
        return ""


def test_on_kill_ends_the_application_and_every_process_of_the_submission(
    spark_cluster, project_wheel, refreshed, tmp_path, monkeypatch
):
    """A six-week refresh on the local engine (delta-rs commits from the driver: a Python driver
    left running could still write) killed as Airflow kills a task, once its application runs."""
    import psutil

    from dag_factories.compute import job_task
    from jobs.config.loader import load_config

    shutil.copytree(refreshed, tmp_path / "data")
    _submit_to(spark_cluster, monkeypatch, project_wheel, tmp_path / "data", engine="local")
    before = {app["id"] for app in spark_cluster.applications()}
    operator = job_task(
        load_config("dev"),
        task_id="refresh",
        job="feature_refresh",
        arguments=["all", "--start", str(TRAINING.start), "--end", str(STREAMED.end)],
    )
    errors: list[BaseException] = []

    def run() -> None:
        try:
            operator.execute({})
        except BaseException as exc:  # noqa: BLE001 - the killed submission's failure is the point
            errors.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    deadline = time.monotonic() + 120
    while (
        not [a for a in spark_cluster.applications() if a["id"] not in before] and time.monotonic() < deadline
    ):
        time.sleep(0.5)
    submission = psutil.Process(operator._hook._submit_sp.pid)
    processes = [submission, *submission.children(recursive=True)]
    try:
        assert any("jobs/__main__.py" in _command_line(p) for p in processes[1:]), [
            _command_line(p) for p in processes
        ]
        operator.on_kill()
        worker.join(timeout=60)
        assert not worker.is_alive() and errors
        _, alive = psutil.wait_procs(processes, timeout=30)
        assert not alive, [_command_line(p) for p in alive]
    finally:
        for process in processes:  # whatever a failed assertion left running
            with contextlib.suppress(psutil.Error):
                process.kill()
    app = next(a for a in spark_cluster.applications() if a["id"] not in before)
    deadline = time.monotonic() + 30
    while app["state"] not in ("FINISHED", "KILLED") and time.monotonic() < deadline:
        time.sleep(0.5)
        app = next(a for a in spark_cluster.applications() if a["id"] == app["id"])
    assert app["state"] in ("FINISHED", "KILLED"), app
