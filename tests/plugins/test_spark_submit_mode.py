"""spark-submit mode through the apache-spark provider, against a stand-in ``spark-submit``
(tests/plugins/spark_submit_standin.py: a test double that becomes the driver on local[2], not
Spark's launcher). The feature-refresh DAG runs end to end under dag.test() and really builds gold
for a day; bad input fails at once; ``on_kill`` stops the driver."""

from __future__ import annotations

import json
import os
import shutil
import sys
import threading
import time
from datetime import date
from pathlib import Path

import pytest
import yaml

from jobs.common.window import Window

ROOT = Path(__file__).resolve().parents[2]
DAY = date(2013, 11, 5)  # a day no other test touches


@pytest.fixture(scope="module")
def spark_submit_mode(airflow_db, project_wheel, tmp_path_factory):
    """spark-submit mode with the stand-in first on PATH, the wheel built, and a config copy whose
    'cluster' keeps the local table engine (no Delta jars here) and adds no Delta conf."""
    root, wheel = tmp_path_factory.mktemp("spark-submit"), project_wheel
    bin_dir = root / "bin"
    bin_dir.mkdir()
    launcher = bin_dir / "spark-submit"
    launcher.write_text(
        f'#!/bin/sh\nexec {sys.executable} {Path(__file__).parent / "spark_submit_standin.py"} "$@"\n'
    )
    launcher.chmod(0o755)
    configs = root / "configs"
    shutil.copytree(ROOT / "include" / "configs", configs)
    base = yaml.safe_load((configs / "base.yaml").read_text())
    base["compute"]["spark_submit"].update({"conf": {}, "env_vars": {"RUNWAY_TABLE_ENGINE": "local"}})
    (configs / "base.yaml").write_text(yaml.safe_dump(base))
    patch = pytest.MonkeyPatch()
    for key, value in {
        "RUNWAY_COMPUTE": "spark-submit", "RUNWAY_WHEEL_FILE": str(wheel), "RUNWAY_CONFIG_DIR": str(configs),
        "RUNWAY_DAG_ENVS": "dev", "SPARK_SUBMIT_STANDIN_LOG": str(root / "submissions.jsonl"),
        "RUNWAY_DATA_DIR": str(root / "data"),  # its own tables: other tests' gold stays as they left it
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "AIRFLOW_CONN_SPARK_DEFAULT": json.dumps({"conn_type": "spark", "host": "local[2]"}),
    }.items():  # fmt: skip
        patch.setenv(key, value)
    yield {"wheel": wheel, "log": root / "submissions.jsonl", "configs": configs}
    patch.undo()


def _submissions(mode) -> list[dict]:
    log = mode["log"]
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_feature_refresh_runs_end_to_end_through_spark_submit(spark_submit_mode):
    from airflow.models import DagBag
    from deltalake import DeltaTable

    from jobs.common.config import load_config
    from jobs.seed import seed

    config = load_config("dev")
    assert config.compute.kind == "spark-submit"
    seed(config, Window(DAY, date(2013, 11, 6)))
    bag = DagBag(dag_folder=str(ROOT / "dags" / "feature_refresh.py"))
    dag = bag.dags["dev_feature_refresh"]
    assert {t.__class__.__name__ for t in dag.tasks} == {
        "_PythonDecoratedOperator",
        "RunwaySparkSubmitJobOperator",
    }
    run = dag.test(logical_date=None, run_conf={"start_date": str(DAY), "end_date": "2013-11-06"})
    states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    assert str(run.state) == "success", states

    submissions = _submissions(spark_submit_mode)
    assert [s["arguments"][:2] for s in submissions] == [
        ["feature_refresh", step] for step in ("bronze", "silver", "gate", "gold")
    ]
    for submission in submissions:
        assert submission["application"] == str(ROOT / "jobs" / "__main__.py")
        assert submission["options"]["--py-files"] == [str(spark_submit_mode["wheel"])]
        assert submission["options"]["--master"] == ["local[2]"]
        assert submission["options"]["--name"] == ["runway-dev-feature_refresh"]
        assert submission["arguments"][-2:] == ["--env", "dev"]
    gold = DeltaTable(str(Path(config.storage.lakehouse_root) / "dev" / "gold" / "tiny_features")).to_pandas()
    assert len(gold[gold.reading_date == DAY]) > 20
    result = run.get_task_instance("gold").xcom_pull(task_ids="gold")
    assert result["gold"]["rows"] == len(gold[gold.reading_date == DAY])  # the driver's result line, via XCom


def test_bad_input_fails_at_once_with_the_jobs_sentence(spark_submit_mode):
    from airflow.sdk.exceptions import AirflowFailException

    from dag_factories.compute import job_task
    from jobs.common.config import load_config

    operator = job_task(
        load_config("dev"),
        task_id="seed",
        job="seed",
        arguments=["--start", "2013-01-05", "--end", "2013-01-01"],
    )
    with pytest.raises(AirflowFailException, match=r"^bad input: "):
        operator.execute({})


def test_on_kill_stops_the_driver(spark_submit_mode):
    from dag_factories.compute import job_task
    from jobs.common.config import load_config

    before = len(_submissions(spark_submit_mode))
    operator = job_task(load_config("dev"), task_id="drain_events", job="streaming_inference", arguments=[])
    errors: list[BaseException] = []

    def run() -> None:
        try:
            operator.execute({})
        except BaseException as exc:  # noqa: BLE001 - the killed submission's failure is the point
            errors.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    deadline = time.monotonic() + 60
    while len(_submissions(spark_submit_mode)) == before and time.monotonic() < deadline:
        time.sleep(0.2)
    driver = _submissions(spark_submit_mode)[-1]["pid"]
    time.sleep(3)
    operator.on_kill()
    worker.join(timeout=60)
    assert not worker.is_alive() and errors
    with pytest.raises(ProcessLookupError):
        for _ in range(50):  # the driver is gone (a zombie is reaped by the provider's wait)
            os.kill(driver, 0)
            time.sleep(0.1)
