"""spark-submit mode on a real Spark standalone cluster (tests/conftest.py: a master and a worker on
loopback): the apache-spark provider's SparkSubmitOperator submits each job of the feature-refresh
DAG in client mode with the wheel as --py-files; executors are separate JVMs and Python workers.
Committed with native delta-spark (the shipped spark-submit config: the spark engine, tables by
location, the jars make install fetched shipped with each job) and with delta-rs from the driver
(the local engine, for clusters without Delta): both give the tables a local run of the same days
gives."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path
from urllib.parse import urlparse

import pytest

from jobs.common.window import Window
from tests.support import content_checksum

ROOT = Path(__file__).resolve().parents[2]
DAYS = Window(date(2013, 11, 12), date(2013, 11, 14))
GOLD = ("gold", "tiny_features")
VOLATILE = ("_ingested_at", "_source_file", "_run_id")  # when and where a row was loaded, by which run


@pytest.fixture(scope="module")
def local_gold(tmp_path_factory, spark):
    """The same days refreshed by a local job (local engine, the session's warm Spark)."""
    from jobs.seed import seed
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
    done = subprocess.run([sys.executable, "-m", "jobs.feature_refresh", "all", "--env", "dev", "--start",
                           str(DAYS.start), "--end", str(DAYS.end), "--run-id", "local"], env=env,
                          capture_output=True, text=True, timeout=900)  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return _checksum(spark, root, "local")


def _checksum(spark, root: Path, engine: str):
    path = root / "lakehouse" / "dev" / GOLD[0] / GOLD[1]
    if engine == "spark":
        df = spark.read.format("delta").load(str(path))
    else:
        from deltalake import DeltaTable

        df = spark.createDataFrame(DeltaTable(str(path)).to_pyarrow_table().to_pandas())
    return content_checksum(df.drop(*[c for c in VOLATILE if c in df.columns]))


@pytest.mark.parametrize("engine", ["spark", "local"])
def test_feature_refresh_on_a_real_cluster_gives_the_local_runs_tables(
    engine, airflow_db, spark_cluster, project_wheel, local_gold, spark, tmp_path, monkeypatch
):
    from airflow.models import DagBag

    from jobs.common.config import load_config
    from jobs.common.paths import delta_jars
    from jobs.seed import seed

    if engine == "spark" and not delta_jars()[0]:
        pytest.skip(f"delta-spark's JVM jars are not on this machine: {delta_jars()[1]}")
    master = urlparse(spark_cluster.url)
    for key, value in {
        "RUNWAY_COMPUTE": "spark-submit", "RUNWAY_WHEEL_FILE": str(project_wheel), "RUNWAY_DAG_ENVS": "dev",
        "RUNWAY_DATA_DIR": str(tmp_path), "RUNWAY_SPARK_SUBMIT_ENGINE": engine, "RUNWAY_SPARK_REMOTE": "",
        "RUNWAY_DELTA_SNAPSHOT_PARTITIONS": "2",  # a 2-core worker
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",  # the pyspark package's spark-submit
        "AIRFLOW_CONN_SPARK_DEFAULT": json.dumps({"conn_type": "spark", "host": f"spark://{master.hostname}",
                                                  "port": master.port, "extra": {"deploy-mode": "client"}}),
    }.items():  # fmt: skip
        monkeypatch.setenv(key, value)
    config = load_config("dev")
    assert config.compute.kind == "spark-submit"
    seed(config, DAYS)
    before = {app["id"] for app in spark_cluster.applications()}
    dag = DagBag(dag_folder=str(ROOT / "dags" / "feature_refresh.py")).dags["dev_feature_refresh"]
    run = dag.test(logical_date=None, run_conf={"start_date": str(DAYS.start), "end_date": str(DAYS.end)})
    states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    assert str(run.state) == "success", states

    ran = [app for app in spark_cluster.applications() if app["id"] not in before]
    # bronze, silver, gate and gold each ran as an application with executors on the worker
    assert [app["name"] for app in ran] == ["runway-feature-refresh-dev"] * 4
    assert all(app["cores"] > 0 for app in ran)
    assert _checksum(spark, tmp_path, engine) == local_gold
