"""The triggers' shared wait: ask in a worker thread every ``poke_interval`` until an answer is
final or ``timeout`` passes, and end with exactly one event."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any, ClassVar

from airflow.triggers.base import BaseTrigger, TriggerEvent


class FieldsTrigger(BaseTrigger):
    """A trigger that serializes as its ``classpath`` and the attributes named in ``fields`` (what
    its ``__init__`` takes), so the triggerer rebuilds the same trigger."""

    classpath: ClassVar[str]
    fields: ClassVar[tuple[str, ...]]

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return self.classpath, {name: getattr(self, name) for name in self.fields}


def defer_until_final(sensor: Any, trigger_class: type[BaseTrigger], **fields: Any) -> None:
    """Hand the sensor's wait to ``trigger_class`` (with the sensor's poke interval and timeout);
    Airflow resumes the sensor in ``execute_complete`` with the trigger's one event."""
    timeout = float(sensor.timeout)
    trigger = trigger_class(**fields, poke_interval=float(sensor.poke_interval), timeout=timeout)
    sensor.defer(trigger=trigger, method_name="execute_complete", timeout=timedelta(seconds=timeout))


async def poll_until_final(
    ask: Callable[[], Any],
    status_of: Callable[[Any], str | None],
    payload: Callable[[Any], dict[str, Any]],
    identity: dict[str, Any],
    poke_interval: float,
    timeout: float,
) -> AsyncIterator[TriggerEvent]:
    """``ask()`` (in a thread) until ``status_of(answer)`` names a final status; then one event
    ``{status, **identity, **payload(answer)}``; ``timeout`` with the last answer; ``error`` on a
    failure (one clear event instead of a crashed trigger)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            answer = await asyncio.to_thread(ask)
        except Exception as exc:
            yield TriggerEvent({"status": "error", **identity, "message": str(exc)})
            return
        status = status_of(answer)
        if status is not None:
            yield TriggerEvent({"status": status, **identity, **payload(answer)})
            return
        if time.monotonic() >= deadline:
            yield TriggerEvent({"status": "timeout", **identity, **payload(answer)})
            return
        await asyncio.sleep(poke_interval)
