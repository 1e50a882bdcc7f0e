"""The dev monitoring DAG with dag.test(): a drifting window records an alert and starts dev_training
with the drift conf; a quiet window ends skipped and starts nothing. The ``monitor`` task itself
(Evidently on real predictions) is covered in tests/jobs/test_monitoring.py; here it is marked
successful and the monitoring table holds real rows written through the job's own writer."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest

from jobs.config.loader import load_config
from jobs.core.window import Window

ROOT = Path(__file__).resolve().parents[2]
DAY = timedelta(days=1)


def _rows(drift_share: float) -> list[dict]:
    return [
        {
            "metric": "dataset_drift_share",
            "column": None,
            "value": drift_share,
            "threshold": 0.1,
            "violated": drift_share >= 0.1,
            "method": "share of features",
        },
        {
            "metric": "feature_drift",
            "column": "temp",
            "value": 4.0 * drift_share,
            "threshold": 1.0,
            "violated": drift_share >= 0.1,
            "method": "Wasserstein distance (normed)",
        },
    ]


@pytest.fixture(scope="module")
def monitoring_dag(airflow_db, spark):
    from airflow.models import DagBag

    from jobs.modeling.monitoring import _write_metrics
    from jobs.tablestore import open_table_store

    config = load_config("dev")
    store = open_table_store(config, spark)
    for day, share in ((date(2013, 7, 1), 0.0), (date(2013, 7, 2), 0.3), (date(2013, 7, 3), 0.4)):
        _write_metrics(
            config,
            store,
            Window(day, day + DAY),
            "predictions",
            _rows(share),
            version="1",
            report=Path("report.html"),
            mlflow_run_id="m",
            run_id="seeded",
        )
    bag = DagBag(dag_folder=str(ROOT / "dags" / "monitoring.py"))
    return bag.dags["dev_monitoring"], config, store


def _training_runs():
    from airflow.models import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        runs = session.scalars(select(DagRun).where(DagRun.dag_id == "dev_training")).all()
        return {run.run_id: {**(run.conf or {}), "logical_date": run.logical_date} for run in runs}


def _states(run) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in run.get_task_instances()}


def test_a_quiet_window_ends_skipped_and_starts_no_training(monitoring_dag):
    dag, _, _ = monitoring_dag
    before = _training_runs()
    run = dag.test(
        logical_date=None,
        run_conf={"start_date": "2013-07-01", "end_date": "2013-07-02"},
        mark_success_pattern="^monitor$",
    )
    states = _states(run)
    assert (
        states["check_drift"] == "skipped"
        and states["retrain"] == "skipped"
        and states["record_alert"] == "skipped"
    )
    assert str(run.state) == "success" and _training_runs() == before


def test_a_drifting_window_alerts_and_starts_training_with_the_drift_conf(monitoring_dag):
    dag, config, store = monitoring_dag
    run = dag.test(
        logical_date=None,
        run_conf={"start_date": "2013-07-03", "end_date": "2013-07-04"},
        mark_success_pattern="^monitor$",
    )
    states = _states(run)
    assert {states[t] for t in ("check_drift", "record_alert", "retrain", "notify")} == {"success"}, states
    conf = _training_runs()["drift__2013-07-04"]
    assert conf["reason"] == "drift" and conf["training_end"] == "2013-07-04"
    assert conf["logical_date"].date() == date(2013, 7, 4)  # dated in data time, not when it ran
    assert conf["windows"] == ["[2013-07-02, 2013-07-03)", "[2013-07-03, 2013-07-04)"]
    assert conf["values"]["[2013-07-03, 2013-07-04)"]["dataset_drift_share"] == pytest.approx(0.4)
    alerts = store.read_pandas(store.name("monitoring", "alerts"))
    assert len(alerts) == 1 and alerts.training_run_id.tolist() == ["drift__2013-07-04"]
    assert "2 of the last 3 windows violate" in alerts.reason.iloc[0]


def test_prod_watches_batch_predictions_and_the_endpoints_traffic(monitoring_dag):
    """monitoring.sources chooses the monitor tasks: prod watches both, dev batch predictions only."""
    from airflow.models import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags" / "monitoring.py"))
    for env, expected in (
        ("dev", {"monitor": "predictions"}),
        ("prod", {"monitor": "predictions", "monitor_online": "inference_log"}),
    ):
        dag = bag.dags[f"{env}_monitoring"]
        config = load_config(env)
        monitors = {t.task_id: t for t in dag.tasks if t.task_id.startswith("monitor")}
        assert set(monitors) == set(expected), env
        for task_id, source in expected.items():
            task = monitors[task_id]
            assert task.downstream_task_ids == {"check_drift"} and "resolve_window" in task.upstream_task_ids
            assert f"--source {source}" in " ".join(map(str, task.arguments)), task.arguments
            table = (
                config.inference.predictions_table
                if source == "predictions"
                else config.serving.inference_log.table
            )
            assert [a.name for a in task.inlets] == [f"{config.catalog}.ml.{table}"], task.inlets
