"""DAG integrity: every file parses, every environment's DAG is well-formed, parsing stays light."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest

from jobs.config.base import ENVIRONMENTS, PIPELINES

ROOT = Path(__file__).resolve().parents[2]
DAGS = ROOT / "dags"
HEAVY = ["pyspark", "mlflow", "sklearn", "pandas", "great_expectations", "evidently", "deltalake", "pyarrow"]


@pytest.fixture(scope="module")
def dagbag():
    from airflow.models import DagBag

    return DagBag(dag_folder=str(DAGS))


def test_every_dag_file_imports_cleanly(dagbag):
    assert dagbag.import_errors == {}
    assert dagbag.size() > 0


@pytest.mark.parametrize("env", ENVIRONMENTS)
@pytest.mark.parametrize("pipeline", PIPELINES)
def test_each_environment_has_a_well_formed_dag(dagbag, env, pipeline):
    dag = dagbag.dags.get(f"{env}_{pipeline}")
    assert dag is not None, f"{env}_{pipeline} missing"
    assert {"runway", env, pipeline} <= set(dag.tags)
    assert dag.catchup is False
    assert isinstance(dag.start_date, datetime) and dag.start_date.year == 2013
    assert dag.doc_md and env in dag.doc_md
    for task in dag.tasks:
        assert task.owner == "runway"
        assert task.retries >= 2


def test_dag_ids_are_unique_across_files(dagbag):
    files = {}
    for dag_id, dag in dagbag.dags.items():
        files.setdefault(dag_id, set()).add(dag.fileloc)
    assert all(len(f) == 1 for f in files.values())


def _parse_in_subprocess(extra_env: dict[str, str]) -> dict:
    script = textwrap.dedent(
        f"""
        import json, sys, time
        from airflow.models import DagBag
        started = time.perf_counter()
        bag = DagBag(dag_folder={str(DAGS)!r})
        heavy = sorted(m for m in {HEAVY!r} if m in sys.modules)
        errors = {{k: str(v) for k, v in bag.import_errors.items()}}
        print(json.dumps({{"dags": sorted(bag.dag_ids), "errors": errors,
                           "heavy": heavy, "seconds": time.perf_counter() - started}}))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, **extra_env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_parsing_the_dag_folder_imports_no_heavy_module():
    parsed = _parse_in_subprocess({})
    assert parsed["errors"] == {}
    assert len(parsed["dags"]) >= len(ENVIRONMENTS) * len(PIPELINES)
    assert parsed["heavy"] == [], f"DAG parsing imported {parsed['heavy']}"


def test_a_config_error_surfaces_as_a_clear_import_error(tmp_path):
    import shutil

    configs = tmp_path / "configs"
    shutil.copytree(ROOT / "include" / "configs", configs)
    (configs / "staging.yaml").write_text((configs / "staging.yaml").read_text() + "\nsample_fractoin: 0.5\n")
    parsed = _parse_in_subprocess({"RUNWAY_CONFIG_DIR": str(configs)})
    messages = "\n".join(parsed["errors"].values())
    assert "staging.yaml: sample_fractoin: unknown key" in messages


def test_the_window_comes_from_params_or_the_data_interval():

    from dag_factories.common import _window

    day = datetime(2013, 3, 1, tzinfo=UTC)
    assert _window({}, day, day.replace(day=2)) == {"start": "2013-03-01", "end": "2013-03-02"}
    assert _window({"start_date": "2013-01-01", "end_date": "2013-02-01"}, None, None) == {
        "start": "2013-01-01",
        "end": "2013-02-01",
    }
    for params, message in [
        ({"start_date": "2013-01-01"}, "give both"),
        ({"start_date": "2013-02-01", "end_date": "2013-01-01"}, "must be after its start"),
        ({}, "no data interval"),
    ]:
        with pytest.raises(ValueError, match=message):
            _window(params, None, None)
    with pytest.raises(ValueError, match="empty"):
        _window({}, day, day)


def test_training_window_and_reason_come_from_params_drift_assets_or_the_run_date():
    from types import SimpleNamespace

    from dag_factories.training import resolve_training

    resolve = resolve_training.function
    day = datetime(2013, 5, 1, 3, tzinfo=UTC)
    manual = SimpleNamespace(conf={}, run_type="manual")
    assert resolve(
        {"training_end": "2013-04-01", "window_days": 30, "reason": "manual"}, manual, None, None, 90
    ) == {"start": "2013-03-02", "end": "2013-04-01", "reason": "manual", "hyperparameters": "{}"}
    drift = SimpleNamespace(conf={"reason": "drift", "training_end": "2013-07-01"}, run_type="manual")
    assert resolve({}, drift, None, None, 90)["reason"] == "drift"
    events = {"asset": [SimpleNamespace(extra={"start": "2013-06-01", "end": "2013-06-02"})]}
    by_asset = resolve({}, SimpleNamespace(conf={}, run_type="asset_triggered"), None, events, 90)
    assert (by_asset["end"], by_asset["reason"]) == ("2013-06-02", "asset")
    scheduled = resolve({}, SimpleNamespace(conf={}, run_type="DagRunType.SCHEDULED"), day, None, 90)
    assert (scheduled["start"], scheduled["end"], scheduled["reason"]) == (
        "2013-01-31",
        "2013-05-01",
        "schedule",
    )
