"""Deferrable wait for a canary step's judgement, run by the triggerer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from airflow.triggers.base import TriggerEvent

from triggers.polling import FieldsTrigger, poll_until_final


class CanaryStepTrigger(FieldsTrigger):
    """Judges the canary step begun at ``since`` every ``poke_interval`` seconds; yields one event:
    ``breach`` at once, ``pass`` once the step held ``hold_seconds`` with enough traffic,
    ``timeout`` (not enough traffic in ``timeout`` seconds) or ``error``. Reads run in a thread."""

    classpath = "triggers.rollout.CanaryStepTrigger"
    fields = ("runway_env", "since", "candidate", "phase", "hold_seconds", "poke_interval", "timeout")

    def __init__(
        self,
        *,
        runway_env: str,
        since: str,
        candidate: str,
        phase: str,
        hold_seconds: float,
        poke_interval: float,
        timeout: float,
    ) -> None:
        super().__init__()
        self.runway_env, self.since, self.candidate, self.phase = (
            runway_env,
            str(since),
            str(candidate),
            phase,
        )
        self.hold_seconds, self.poke_interval, self.timeout = (
            float(hold_seconds),
            float(poke_interval),
            float(timeout),
        )

    def _judge(self) -> dict[str, Any]:
        from hooks.rollout import RolloutHook

        return RolloutHook(self.runway_env).judge(self.since, self.candidate, self.phase)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        def status_of(verdict: dict[str, Any]) -> str | None:
            status = step_status(verdict, self.since, self.hold_seconds)
            return None if status == "wait" else status

        async for event in poll_until_final(
            self._judge,
            status_of,
            lambda verdict: {"verdict": verdict},
            {"since": self.since},
            self.poke_interval,
            self.timeout,
        ):
            yield event


def step_status(verdict: dict[str, Any], since: str, hold_seconds: float) -> str:
    """``breach`` at once; ``pass`` when the verdict passes and the step has held long enough."""
    if verdict["state"] == "breach":
        return "breach"
    held = (datetime.now(UTC) - datetime.fromisoformat(since)).total_seconds() >= hold_seconds
    return "pass" if verdict["state"] == "pass" and held else "wait"
