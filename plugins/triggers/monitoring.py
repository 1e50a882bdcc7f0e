"""Deferrable wait for a window's retraining decision, run by the triggerer."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

CLASSPATH = "triggers.monitoring.DriftPolicyTrigger"


class DriftPolicyTrigger(BaseTrigger):
    """Evaluates the retraining policy for the window ending ``window_end`` until the window has
    been monitored, then yields one event: ``retrain`` (the policy holds) or ``hold`` (it does
    not); ``timeout`` after ``timeout`` seconds without monitoring results; ``error`` on a failure.
    Reads run in a worker thread to keep the event loop free."""

    def __init__(self, *, runway_env: str, window_end: str, poke_interval: float, timeout: float) -> None:
        super().__init__()
        self.runway_env = runway_env
        self.window_end = str(window_end)
        self.poke_interval = float(poke_interval)
        self.timeout = float(timeout)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return CLASSPATH, {
            "runway_env": self.runway_env,
            "window_end": self.window_end,
            "poke_interval": self.poke_interval,
            "timeout": self.timeout,
        }

    def _decide(self) -> dict[str, Any]:
        from hooks.monitoring import MonitoringHook

        return MonitoringHook(self.runway_env).decide(self.window_end)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                decision = await asyncio.to_thread(self._decide)
            except Exception as exc:  # one clear event instead of a crashed trigger
                yield TriggerEvent({"status": "error", "window_end": self.window_end, "message": str(exc)})
                return
            if decision["ready"]:
                status = "retrain" if decision["retrain"] else "hold"
                yield TriggerEvent({"status": status, "window_end": self.window_end, "decision": decision})
                return
            if time.monotonic() >= deadline:
                yield TriggerEvent({"status": "timeout", "window_end": self.window_end, "decision": decision})
                return
            await asyncio.sleep(self.poke_interval)
