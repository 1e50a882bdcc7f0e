"""The drift-policy sensor and its trigger against real monitoring rows in a Delta table: poke and
deferrable modes, serialization, and exactly one event per run (retrain, hold, timeout, error)."""

from __future__ import annotations

import asyncio
import importlib
import json
from datetime import date, timedelta
from pathlib import Path

import pytest
from airflow.sdk.exceptions import AirflowSkipException, TaskDeferred

from jobs.core.window import Window
from sensors.monitoring import DriftPolicySensor
from triggers.monitoring import DriftPolicyTrigger

DAY = timedelta(days=1)


@pytest.fixture
def monitored(tmp_path, spark, monkeypatch):
    """dev's monitoring table under tmp_path: a quiet day, then two drifting ones (2 of 3 → retrain)."""
    from jobs.config import loader as config_module
    from jobs.modeling.monitoring import _write_metrics
    from jobs.tablestore import open_table_store
    from tests.support import make_config

    monkeypatch.setenv("RUNWAY_DATA_DIR", str(tmp_path))
    config_module._load.cache_clear()
    config = make_config(tmp_path)
    store = open_table_store(config, spark)
    for day, share in ((date(2013, 7, 1), 0.0), (date(2013, 7, 2), 0.2), (date(2013, 7, 3), 0.3)):
        row = {
            "metric": "dataset_drift_share",
            "column": None,
            "value": share,
            "threshold": 0.1,
            "violated": share >= 0.1,
            "method": "share of features",
        }
        _write_metrics(
            config,
            store,
            Window(day, day + DAY),
            "predictions",
            [row],
            version="1",
            report=Path("r.html"),
            mlflow_run_id="m",
            run_id="seeded",
        )
    yield config
    config_module._load.cache_clear()


def sensor(window_end: str, **kwargs) -> DriftPolicySensor:
    return DriftPolicySensor(
        task_id="check_drift", runway_env="dev", window_end=window_end, poke_interval=0.1, timeout=5, **kwargs
    )


def test_poke_succeeds_with_the_decision_skips_when_the_policy_does_not_hold_and_waits_otherwise(monitored):
    done = sensor("2013-07-04").poke({})
    assert done.is_done and done.xcom_value["retrain"] and len(done.xcom_value["windows"]) == 2
    with pytest.raises(AirflowSkipException, match="latest window .* violates no threshold"):
        sensor("2013-07-02").poke({})
    assert not sensor("2013-07-09").poke({}).is_done  # not monitored yet: keep waiting


def test_deferrable_mode_defers_a_serializable_trigger_only_while_waiting(monitored):
    assert sensor("2013-07-04", deferrable=True).execute({})["retrain"]  # decided at once: no deferral
    with pytest.raises(TaskDeferred) as deferred:
        sensor("2013-07-09", deferrable=True).execute({})
    classpath, kwargs = deferred.value.trigger.serialize()
    module, _, name = classpath.rpartition(".")
    rebuilt = getattr(importlib.import_module(module), name)(**json.loads(json.dumps(kwargs)))
    assert rebuilt.serialize() == (classpath, kwargs) and kwargs["window_end"] == "2013-07-09"
    assert deferred.value.method_name == "execute_complete"


async def events(trigger: DriftPolicyTrigger) -> list[dict]:
    return [event.payload async for event in trigger.run()]


def trigger(window_end: str, env: str = "dev", timeout: float = 5) -> DriftPolicyTrigger:
    return DriftPolicyTrigger(runway_env=env, window_end=window_end, poke_interval=0.1, timeout=timeout)


def test_the_trigger_yields_exactly_one_event(monitored):
    retrain = asyncio.run(events(trigger("2013-07-04")))
    assert [e["status"] for e in retrain] == ["retrain"] and retrain[0]["decision"]["retrain"]
    hold = asyncio.run(events(trigger("2013-07-02")))
    assert [e["status"] for e in hold] == ["hold"]
    timeout = asyncio.run(events(trigger("2013-07-09", timeout=0.3)))
    assert [e["status"] for e in timeout] == ["timeout"]
    error = asyncio.run(events(trigger("2013-07-04", env="qa")))
    assert [e["status"] for e in error] == ["error"] and "qa" in error[0]["message"]


def test_the_sensor_maps_trigger_events_to_success_skip_and_failure(monitored):
    decision = asyncio.run(events(trigger("2013-07-04")))[0]
    assert sensor("2013-07-04").execute_complete({}, decision)["retrain"]
    with pytest.raises(AirflowSkipException):
        sensor("2013-07-02").execute_complete({}, asyncio.run(events(trigger("2013-07-02")))[0])
    with pytest.raises(AirflowSkipException, match="not monitored within"):
        sensor("2013-07-09", soft_fail=True).execute_complete(
            {}, {"status": "timeout", "window_end": "2013-07-09"}
        )
    from airflow.sdk.exceptions import AirflowFailException, AirflowSensorTimeout

    with pytest.raises(AirflowSensorTimeout):
        sensor("2013-07-09").execute_complete({}, {"status": "timeout", "window_end": "2013-07-09"})
    with pytest.raises(AirflowFailException, match="boom"):
        sensor("2013-07-04").execute_complete(
            {}, {"status": "error", "window_end": "2013-07-04", "message": "boom"}
        )


def test_the_decide_job_makes_the_sensors_decision_for_remote_modes(monitored, capsys):
    """`jobs.monitoring decide` (check_drift on a cluster) returns what the sensor's hook decides,
    and a window not monitored yet is missing input (exit 4: a retry may find it)."""
    from hooks.monitoring import MonitoringHook
    from jobs.core.errors import EXIT_MISSING_INPUT
    from jobs.core.results import read_result
    from jobs.monitoring import main
    from jobs.runtime.cli import run_cli

    assert run_cli(main, ["decide", "--env", "dev", "--start", "2013-07-03", "--end", "2013-07-04"]) == 0
    result = read_result(capsys.readouterr().out)
    assert result["ok"] and result["result"] == MonitoringHook("dev").decide("2013-07-04")
    assert result["result"]["retrain"] and len(result["result"]["windows"]) == 2
    assert (
        run_cli(main, ["decide", "--env", "dev", "--start", "2013-07-08", "--end", "2013-07-09"])
        == EXIT_MISSING_INPUT
    )
    assert "not monitored yet" in capsys.readouterr().err
