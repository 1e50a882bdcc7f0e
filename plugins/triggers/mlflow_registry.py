"""Deferrable wait on a model version's tag, run by the triggerer."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from airflow.triggers.base import TriggerEvent

from triggers.polling import FieldsTrigger


class ModelVersionTagTrigger(FieldsTrigger):
    """Polls a version's tag until it takes a target value (success) or a failure value (failed),
    or ``timeout`` seconds pass (timeout). Yields exactly one event.

    The registry URIs are resolved by the sensor before deferring, so the triggerer needs no
    connection lookup; MLflow calls run in a worker thread to keep the event loop free.
    """

    classpath = "triggers.mlflow_registry.ModelVersionTagTrigger"
    fields = (
        "model_name",
        "version",
        "tag_key",
        "target_values",
        "failure_values",
        "tracking_uri",
        "registry_uri",
        "poke_interval",
        "timeout",
    )

    def __init__(
        self,
        *,
        model_name: str,
        version: str,
        tag_key: str,
        target_values: list[str],
        failure_values: list[str],
        tracking_uri: str,
        registry_uri: str | None,
        poke_interval: float,
        timeout: float,
    ) -> None:
        super().__init__()
        self.model_name = model_name
        self.version = str(version)
        self.tag_key = tag_key
        self.target_values = list(target_values)
        self.failure_values = list(failure_values)
        self.tracking_uri = tracking_uri
        self.registry_uri = registry_uri
        self.poke_interval = poke_interval
        self.timeout = timeout

    def _read_tag(self) -> str | None:
        from jobs.release.registry import ModelRegistry

        return ModelRegistry.at(self.tracking_uri, self.registry_uri, self.model_name).tag(
            self.version, self.tag_key
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        deadline = time.monotonic() + self.timeout
        base = {"model_name": self.model_name, "version": self.version, "tag_key": self.tag_key}
        while True:
            try:
                value = await asyncio.to_thread(self._read_tag)
            except Exception as exc:  # the registry is unreachable or the version is gone
                yield TriggerEvent({**base, "status": "error", "message": f"{type(exc).__name__}: {exc}"})
                return
            if value in self.target_values:
                yield TriggerEvent({**base, "status": "success", "value": value})
                return
            if value in self.failure_values:
                yield TriggerEvent({**base, "status": "failed", "value": value})
                return
            if time.monotonic() >= deadline:
                yield TriggerEvent({**base, "status": "timeout", "value": value})
                return
            await asyncio.sleep(self.poke_interval)
