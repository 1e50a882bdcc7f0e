"""The MLflow registry hook, operators, sensor and trigger against a real MLflow registry (sqlite)."""

from __future__ import annotations

import asyncio
import importlib
import json
import threading
import time

import pytest
from airflow.sdk.exceptions import AirflowFailException, AirflowSensorTimeout, TaskDeferred

from hooks.mlflow_registry import MlflowRegistryHook
from operators.mlflow_registry import DeleteModelAliasOperator, SetModelVersionTagsOperator
from sensors.mlflow_registry import ModelVersionTagSensor
from triggers.mlflow_registry import ModelVersionTagTrigger

MODEL = "dev.ml.tiny_classifier"


@pytest.fixture
def registry(tmp_path, monkeypatch):
    """A registry with two versions of MODEL, reachable through the connection ``mlflow_test``."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_TEST", json.dumps({"conn_type": "mlflow", "host": uri}))
    hook = MlflowRegistryHook(tracking_uri=uri)
    hook.get_conn().create_registered_model(MODEL)
    for n in (1, 2):
        (tmp_path / f"model{n}").mkdir()
        hook.get_conn().create_model_version(MODEL, source=str(tmp_path / f"model{n}"))
    return hook.registry(MODEL)


def op_kwargs(task_id: str) -> dict:
    return {"task_id": task_id, "model_name": MODEL, "mlflow_conn_id": "mlflow_test"}


def test_hook_builds_its_client_lazily_and_resolves_uris(registry, monkeypatch):
    hook = MlflowRegistryHook(mlflow_conn_id="mlflow_test")
    assert hook._client is None
    assert hook.get_uris()[0] == registry.where
    assert hook.registry(MODEL).by_alias("Champion") is None
    from jobs.config.loader import load_config

    from_config = MlflowRegistryHook(runway_env="staging")
    assert from_config.get_uris()[0] == load_config("staging").mlflow.tracking_uri
    assert from_config._client is None


def test_set_alias_is_idempotent_and_resolves_aliases(registry):
    assert registry.set_alias("Champion", "1") is None
    assert registry.set_alias("Champion", "1") == "1"  # nothing written the second time
    assert registry.resolve(alias="Champion") == "1"
    assert registry.set_alias("Champion", "2") == "1" and registry.by_alias("Champion").version == 2


def test_set_alias_refuses_a_missing_version_or_alias(registry):
    from jobs.core.errors import BadInputError

    with pytest.raises(BadInputError, match="v9"):
        registry.set_alias("Champion", "9")
    with pytest.raises(BadInputError, match="no alias 'Challenger'"):
        registry.resolve(alias="Challenger")
    assert registry.by_alias("Champion") is None


def test_delete_alias_is_idempotent_and_leaves_another_versions_alias(registry):
    registry.set_alias("Challenger", 2)
    kept = DeleteModelAliasOperator(**op_kwargs("only"), alias="Challenger", only_version="1").execute({})
    assert kept["changed"] is False and registry.alias_version("Challenger") == "2"
    assert DeleteModelAliasOperator(**op_kwargs("a"), alias="Challenger").execute({})["previous"] == "2"
    assert DeleteModelAliasOperator(**op_kwargs("b"), alias="Challenger").execute({})["changed"] is False
    assert registry.by_alias("Challenger") is None


def test_tags_and_description_are_set_once(registry):
    registry.set_alias("Challenger", 2)
    task = SetModelVersionTagsOperator(
        **op_kwargs("t"),
        alias="Challenger",
        tags={"model_validation_status": "PASSED", "auc": 0.71},
        description="validated",
    )
    first, again = task.execute({}), task.execute({})
    assert (
        first["changed_tags"] == {"model_validation_status": "PASSED", "auc": "0.71"}
        and first["description_changed"]
    )
    assert again["changed_tags"] == {} and not again["description_changed"]
    version = registry.version(2)
    assert version.tags["auc"] == "0.71" and version.description == "validated"


def sensor(**kwargs) -> ModelVersionTagSensor:
    return ModelVersionTagSensor(**op_kwargs("wait"), version="2", poke_interval=0.2, timeout=5, **kwargs)


def test_sensor_pokes_until_the_tag_passes_and_fails_fast_on_failure(registry):
    registry.set_tags(2, {"model_validation_status": "PENDING"})
    assert sensor().poke({}).is_done is False
    registry.set_tags(2, {"model_validation_status": "PASSED"})
    done = sensor().poke({})
    assert done.is_done and done.xcom_value == {"version": "2", "value": "PASSED"}
    registry.set_tags(2, {"model_validation_status": "FAILED"})
    with pytest.raises(AirflowFailException, match="model_validation_status is FAILED"):
        sensor().poke({})


def test_deferrable_sensor_hands_a_serializable_trigger_to_the_triggerer(registry):
    registry.set_tags(2, {"model_validation_status": "PENDING"})
    with pytest.raises(TaskDeferred) as deferred:
        sensor(deferrable=True).execute({})
    trigger = deferred.value.trigger
    classpath, kwargs = trigger.serialize()
    module, _, name = classpath.rpartition(".")
    rebuilt = getattr(importlib.import_module(module), name)(**json.loads(json.dumps(kwargs)))
    assert rebuilt.serialize() == (classpath, kwargs)
    assert kwargs["tracking_uri"] == registry.where and kwargs["version"] == "2"
    assert deferred.value.method_name == "execute_complete"


async def first_event(trigger: ModelVersionTagTrigger):
    async for event in trigger.run():
        return event.payload


def make_trigger(registry, timeout: float = 5) -> ModelVersionTagTrigger:
    return ModelVersionTagTrigger(
        model_name=MODEL,
        version="2",
        tag_key="model_validation_status",
        target_values=["PASSED"],
        failure_values=["FAILED"],
        tracking_uri=registry.where,
        registry_uri=registry.where,
        poke_interval=0.1,
        timeout=timeout,
    )


def test_trigger_yields_success_once_the_tag_changes(registry):
    registry.set_tags(2, {"model_validation_status": "PENDING"})
    later = threading.Timer(0.5, lambda: registry.set_tags(2, {"model_validation_status": "PASSED"}))
    later.start()
    started = time.monotonic()
    event = asyncio.run(first_event(make_trigger(registry)))
    assert event["status"] == "success" and event["value"] == "PASSED"
    assert time.monotonic() - started >= 0.4
    assert sensor().execute_complete({}, event) == {"version": "2", "value": "PASSED"}


def test_trigger_reports_failure_and_timeout(registry):
    registry.set_tags(2, {"model_validation_status": "PENDING"})
    timeout = asyncio.run(first_event(make_trigger(registry, timeout=0.3)))
    assert timeout["status"] == "timeout"
    with pytest.raises(AirflowSensorTimeout):
        sensor().execute_complete({}, timeout)
    registry.set_tags(2, {"model_validation_status": "FAILED"})
    failed = asyncio.run(first_event(make_trigger(registry)))
    assert failed["status"] == "failed"
    with pytest.raises(AirflowFailException, match="is FAILED"):
        sensor().execute_complete({}, failed)


def test_a_registry_that_does_not_answer_is_transient_never_not_set(monkeypatch):
    """A closed port: reads raise RegistryUnavailableError (retried), never "the alias is not set"."""
    from jobs.core.errors import EXIT_TRANSIENT
    from jobs.release.registry import ModelRegistry, RegistryUnavailableError

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    down = ModelRegistry.at("http://127.0.0.1:9", None, MODEL)
    for read in (
        lambda: down.by_alias("Champion"),
        lambda: down.version(1),
        lambda: down.set_alias("Champion", 1),
    ):
        with pytest.raises(RegistryUnavailableError, match="127.0.0.1:9 did not answer") as raised:
            read()
        assert raised.value.exit_code == EXIT_TRANSIENT
