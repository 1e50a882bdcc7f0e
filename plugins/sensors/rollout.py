"""Hold a canary step and judge it from the inference table."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue
from airflow.sdk.exceptions import AirflowFailException, AirflowSensorTimeout


class CanaryStepSensor(BaseSensorOperator):
    """Succeeds (the verdict as XCom) once the candidate's arm has answered enough requests since
    ``since`` and the step has held ``hold_seconds`` within the limits; fails at once on a breach
    (error rate, p99, prediction drift between the arms: ``jobs.release.gates``), so that the
    rollback downstream runs. ``deferrable=True`` hands the wait to the triggerer."""

    template_fields: Sequence[str] = ("since", "candidate")
    ui_color = "#fde8e8"

    def __init__(
        self,
        *,
        runway_env: str,
        since: str,
        candidate: str,
        hold_seconds: float,
        phase: str = "canary",
        deferrable: bool = False,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.runway_env, self.since, self.candidate, self.phase = runway_env, since, candidate, phase
        self.hold_seconds, self.deferrable = hold_seconds, deferrable

    def _settle(self, verdict: dict[str, Any]) -> dict[str, Any] | None:
        from triggers.rollout import step_status

        status = step_status(verdict, self.since, self.hold_seconds)
        if status == "breach":
            raise AirflowFailException(f"{self.phase} breach: {verdict['reason']}")
        if status == "pass":
            self.log.info("%s step passed: %s", self.phase, verdict["reason"])
            return verdict
        return None

    def poke(self, context) -> PokeReturnValue:
        from hooks.rollout import RolloutHook

        verdict = self._settle(RolloutHook(self.runway_env).judge(self.since, self.candidate, self.phase))
        return PokeReturnValue(is_done=verdict is not None, xcom_value=verdict)

    def execute(self, context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        from hooks.rollout import RolloutHook
        from triggers.polling import defer_until_final
        from triggers.rollout import CanaryStepTrigger

        verdict = self._settle(RolloutHook(self.runway_env).judge(self.since, self.candidate, self.phase))
        if verdict is not None:
            return verdict
        defer_until_final(
            self,
            CanaryStepTrigger,
            runway_env=self.runway_env,
            since=str(self.since),
            candidate=str(self.candidate),
            phase=self.phase,
            hold_seconds=self.hold_seconds,
        )

    def execute_complete(self, context, event: dict[str, Any]) -> dict[str, Any]:
        status = event.get("status")
        if status in ("pass", "breach"):
            return self._settle(event["verdict"])
        if status == "timeout":
            raise AirflowSensorTimeout(
                f"the canary step since {event.get('since')} did not get enough traffic "
                f"within {self.timeout}s: {event['verdict']['reason']}"
            )
        raise AirflowFailException(
            f"canary step since {event.get('since')}: {event.get('message', 'trigger error')}"
        )
