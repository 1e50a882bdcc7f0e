"""Deferrable wait for a canary step's judgement, run by the triggerer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from triggers.polling import poll_until_final

CLASSPATH = "triggers.rollout.CanaryStepTrigger"


class CanaryStepTrigger(BaseTrigger):
    """Judges the canary step begun at ``since`` every ``poke_interval`` seconds; yields one event:
    ``breach`` at once, ``pass`` once the step held ``hold_seconds`` with enough traffic,
    ``timeout`` (not enough traffic in ``timeout`` seconds) or ``error``. Reads run in a thread."""

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

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return CLASSPATH, {
            "runway_env": self.runway_env,
            "since": self.since,
            "candidate": self.candidate,
            "phase": self.phase,
            "hold_seconds": self.hold_seconds,
            "poke_interval": self.poke_interval,
            "timeout": self.timeout,
        }

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
