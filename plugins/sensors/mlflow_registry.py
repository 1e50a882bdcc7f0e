"""Wait until a model version's tag (by default its validation status) reaches a value."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue
from airflow.sdk.exceptions import AirflowFailException, AirflowSensorTimeout

from jobs.release.registry import FAILED, PASSED, STATUS_TAG


class ModelVersionTagSensor(BaseSensorOperator):
    """Succeeds when ``tag_key`` of the version (a number, or the version an alias points at) is one
    of ``target_values``; fails at once on one of ``failure_values``.

    ``deferrable=True`` hands the wait to the triggerer (ModelVersionTagTrigger) and frees the worker.
    """

    template_fields: Sequence[str] = ("model_name", "version", "alias", "tag_key", "target_values")

    def __init__(
        self,
        *,
        model_name: str,
        version: str | int | None = None,
        alias: str | None = None,
        tag_key: str = STATUS_TAG,
        target_values: Sequence[str] = (PASSED,),
        failure_values: Sequence[str] = (FAILED,),
        mlflow_conn_id: str | None = None,
        runway_env: str | None = None,
        deferrable: bool = False,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.model_name = model_name
        self.version = version
        self.alias = alias
        self.tag_key = tag_key
        self.target_values = list(target_values)
        self.failure_values = list(failure_values)
        self.mlflow_conn_id = mlflow_conn_id
        self.runway_env = runway_env
        self.deferrable = deferrable

    @property
    def hook(self):
        from hooks.mlflow_registry import MlflowRegistryHook

        return MlflowRegistryHook(mlflow_conn_id=self.mlflow_conn_id, runway_env=self.runway_env)

    def _check(self, value: str | None, version: str) -> bool:
        if value in self.failure_values:
            raise AirflowFailException(f"{self.model_name} v{version}: {self.tag_key} is {value}")
        return value in self.target_values

    def poke(self, context) -> PokeReturnValue:
        registry = self.hook.registry(self.model_name)
        version = registry.resolve(self.version, self.alias)
        value = registry.tag(version, self.tag_key)
        self.log.info(
            "%s v%s: %s = %s (waiting for %s)",
            self.model_name,
            version,
            self.tag_key,
            value,
            self.target_values,
        )
        done = self._check(value, version)
        return PokeReturnValue(
            is_done=done, xcom_value={"version": version, "value": value} if done else None
        )

    def execute(self, context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        from triggers.mlflow_registry import ModelVersionTagTrigger
        from triggers.polling import defer_until_final

        hook = self.hook
        registry = hook.registry(self.model_name)
        version = registry.resolve(self.version, self.alias)
        value = registry.tag(version, self.tag_key)
        if self._check(value, version):
            return {"version": version, "value": value}
        tracking_uri, registry_uri = hook.get_uris()
        defer_until_final(
            self,
            ModelVersionTagTrigger,
            model_name=self.model_name,
            version=version,
            tag_key=self.tag_key,
            target_values=self.target_values,
            failure_values=self.failure_values,
            tracking_uri=tracking_uri,
            registry_uri=registry_uri,
        )

    def execute_complete(self, context, event: dict[str, Any]) -> dict[str, Any]:
        status = event.get("status")
        where = f"{event.get('model_name')} v{event.get('version')}: {event.get('tag_key')}"
        if status == "success":
            return {"version": event["version"], "value": event["value"]}
        if status == "failed":
            raise AirflowFailException(f"{where} is {event.get('value')}")
        if status == "timeout":
            raise AirflowSensorTimeout(f"{where} is still {event.get('value')!r} after {self.timeout}s")
        raise AirflowFailException(f"{where}: {event.get('message', 'trigger error')}")
