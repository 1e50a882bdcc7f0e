"""The dev training and rollback DAGs, run for real with dag.test() on real gold features:
first model → Champion; a worse one is stopped; an equal one is promoted; rollback restores."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import mlflow
import pytest

from jobs.config.loader import load_config
from jobs.core.window import Window
from jobs.features.refresh import JobContext, refresh
from jobs.features.seed import seed
from tests.support import edit_yaml

ROOT = Path(__file__).resolve().parents[2]
TRAINING = {"training_end": "2013-03-01", "window_days": 59}
WORSE = {"max_iter": 1, "max_leaf_nodes": 2, "learning_rate": 0.01}


@pytest.fixture(scope="module")
def dags(airflow_db, spark, tmp_path_factory):
    """Eight weeks of gold and the two DAGs, on a config copy that judges no slice: per-slice
    quality on one winter week is model luck, not what this test is about."""
    from airflow.models import DagBag

    configs = tmp_path_factory.mktemp("configs")
    shutil.copytree(ROOT / "include" / "configs", configs, dirs_exist_ok=True)
    edit_yaml(configs / "dev.yaml", lambda dev: dev.setdefault("validation", {}).update(slice_min_rows=3000))
    with pytest.MonkeyPatch.context() as patch:  # undone also when the set-up fails
        patch.setenv("RUNWAY_CONFIG_DIR", str(configs))
        config = load_config("dev")
        assert config.validation.slice_min_rows == 3000
        window = Window(date(2013, 1, 1), date(2013, 3, 1))
        seed(config, window)
        refresh(JobContext.open(config, "gold-for-training"), window)
        bag = DagBag(dag_folder=str(ROOT / "dags" / "training.py"))
        yield bag.dags["dev_training"], bag.dags["dev_rollback"], config


def states(run) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in run.get_task_instances()}


def test_champion_challenger_lifecycle_with_rollback(dags, spark):
    from jobs.release.champion import audit_trail
    from jobs.tablestore import open_table_store

    training, rollback, config = dags
    name = config.registered_model_name
    client = mlflow.MlflowClient(
        tracking_uri=config.mlflow.tracking_uri, registry_uri=config.mlflow.tracking_uri
    )

    first = training.test(logical_date=None, run_conf={**TRAINING, "reason": "manual", "hyperparameters": {}})
    assert first.state == "success", states(first)
    assert states(first)["champion_kept"] == "skipped"
    assert client.get_model_version_by_alias(name, "Champion").version == 1
    assert client.get_model_version(name, "1").tags["model_validation_status"] == "PASSED"

    worse = training.test(
        logical_date=None, run_conf={**TRAINING, "reason": "manual", "hyperparameters": WORSE}
    )
    assert worse.state == "failed" and states(worse)["validation_failed"] == "failed", states(worse)
    assert client.get_model_version(name, "2").tags["model_validation_status"] == "FAILED"
    assert "performance.vs_champion" in client.get_model_version(name, "2").tags["validation.failed"]
    assert client.get_model_version_by_alias(name, "Champion").version == 1  # Champion stays

    again = training.test(logical_date=None, run_conf={**TRAINING, "reason": "manual", "hyperparameters": {}})
    assert again.state == "success", states(again)
    assert client.get_model_version_by_alias(name, "Champion").version == 3  # as good: the newer one wins

    back = rollback.test(logical_date=None, run_conf={"reason": "test rollback"})
    assert back.state == "success", states(back)
    assert client.get_model_version_by_alias(name, "Champion").version == 1

    store = open_table_store(config, spark)
    moves = [
        (e["action"], e["from_version"], e["to_version"], e["approved_by"], e["actor"])
        for e in audit_trail(store, name)
    ]
    assert (
        moves
        == [  # the rollback for the run's triggering user (dag.test's), by an embedded store's nobody
            ("promote", None, "1", "auto", "unauthenticated"),
            ("promote", "1", "3", "auto", "unauthenticated"),
            ("rollback", "3", "1", "dag_test", "unauthenticated"),
        ]
    )
    comparisons = store.read(store.name("ml", "model_comparisons")).collect()
    assert {(r.challenger_version, r.decision) for r in comparisons} == {("1", "promote"), ("3", "promote")}
    run = client.get_run(client.get_model_version(name, "3").run_id)
    assert run.data.tags["trigger.reason"] == "manual" and run.data.tags["airflow.dag_id"] == "dev_training"
    assert run.data.params["model.max_iter"] == str(config.use_case.model.params["max_iter"])
