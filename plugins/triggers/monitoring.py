"""Deferrable wait for a window's retraining decision, run by the triggerer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import TriggerEvent

from triggers.polling import FieldsTrigger, poll_until_final


class DriftPolicyTrigger(FieldsTrigger):
    """Evaluates the retraining policy for the window ending ``window_end`` until the window has
    been monitored, then yields one event: ``retrain`` (the policy holds) or ``hold`` (it does
    not); ``timeout`` after ``timeout`` seconds without monitoring results; ``error`` on a failure.
    Reads run in a worker thread to keep the event loop free."""

    classpath = "triggers.monitoring.DriftPolicyTrigger"
    fields = ("runway_env", "window_end", "poke_interval", "timeout")

    def __init__(self, *, runway_env: str, window_end: str, poke_interval: float, timeout: float) -> None:
        super().__init__()
        self.runway_env = runway_env
        self.window_end = str(window_end)
        self.poke_interval = float(poke_interval)
        self.timeout = float(timeout)

    def _decide(self) -> dict[str, Any]:
        from hooks.monitoring import MonitoringHook

        return MonitoringHook(self.runway_env).decide(self.window_end)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        def status_of(decision: dict[str, Any]) -> str | None:
            if not decision["ready"]:
                return None
            return "retrain" if decision["retrain"] else "hold"

        async for event in poll_until_final(
            self._decide,
            status_of,
            lambda decision: {"decision": decision},
            {"window_end": self.window_end},
            self.poke_interval,
            self.timeout,
        ):
            yield event
