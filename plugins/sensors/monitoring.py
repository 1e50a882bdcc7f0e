"""Wait for a window's monitoring results and succeed when the retraining policy holds."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue
from airflow.sdk.exceptions import AirflowFailException, AirflowSensorTimeout, AirflowSkipException


class DriftPolicySensor(BaseSensorOperator):
    """Succeeds (the decision as XCom) when the environment's retraining policy holds for the window
    ending ``window_end``: at least N of the last M monitored windows violate a drift or quality
    threshold, the latest among them, and no drift retrain ran within the cooldown. When the policy
    does not hold the task is skipped, not failed. It waits only while the window has not been
    monitored yet; ``deferrable=True`` hands that wait to the triggerer (DriftPolicyTrigger).
    """

    template_fields: Sequence[str] = ("window_end",)
    ui_color = "#fdf1e6"

    def __init__(self, *, runway_env: str, window_end: str, deferrable: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.runway_env = runway_env
        self.window_end = window_end
        self.deferrable = deferrable

    @property
    def hook(self):
        from hooks.monitoring import MonitoringHook

        return MonitoringHook(self.runway_env)

    def _settle(self, decision: dict[str, Any]) -> dict[str, Any] | None:
        """The decision when it is final (retrain), a skip when the policy does not hold, else None."""
        if not decision["ready"]:
            return None
        if not decision["retrain"]:
            raise AirflowSkipException(
                f"no retrain for the window ending {self.window_end}: {decision['reason']}"
            )
        self.log.info("retrain: %s (windows %s)", decision["reason"], decision["windows"])
        return decision

    def poke(self, context) -> PokeReturnValue:
        decision = self._settle(self.hook.decide(self.window_end))
        return PokeReturnValue(is_done=decision is not None, xcom_value=decision)

    def execute(self, context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        from triggers.monitoring import DriftPolicyTrigger
        from triggers.polling import defer_until_final

        decision = self._settle(self.hook.decide(self.window_end))
        if decision is not None:
            return decision
        defer_until_final(
            self, DriftPolicyTrigger, runway_env=self.runway_env, window_end=str(self.window_end)
        )

    def execute_complete(self, context, event: dict[str, Any]) -> dict[str, Any]:
        status = event.get("status")
        if status in ("retrain", "hold"):
            return self._settle(event["decision"])
        if status == "timeout":
            message = f"the window ending {event.get('window_end')} was not monitored within {self.timeout}s"
            if self.soft_fail:
                raise AirflowSkipException(message)
            raise AirflowSensorTimeout(message)
        raise AirflowFailException(
            f"retraining policy for the window ending {event.get('window_end')}: "
            f"{event.get('message', 'trigger error')}"
        )
