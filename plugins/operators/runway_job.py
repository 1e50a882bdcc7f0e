"""The operator behind every Runway pipeline task: runs one step of a job in ``jobs/``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException


class RunwayJobOperator(BaseOperator):
    """Run ``python -m jobs.<job> <arguments> --env <env>`` and push its small JSON result.

    Failures a retry cannot fix (bad input, a failed data-quality gate) fail the task at once;
    others (a crash, a landing file not there yet) use the task's retries.
    """

    template_fields: Sequence[str] = ("arguments",)
    ui_color = "#e8f1fb"

    def __init__(self, *, job: str, arguments: list[Any], env: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.job = job
        self.arguments = arguments
        self.env = env
        self._hook = None

    @property
    def hook(self):
        if self._hook is None:
            from hooks.runway_job import LocalJobHook

            self._hook = LocalJobHook()
        return self._hook

    def execute(self, context) -> dict[str, Any]:
        from hooks.runway_job import RunwayJobError

        try:
            return self.hook.run(self.job, [*self.arguments, "--env", self.env])
        except RunwayJobError as exc:
            if exc.retryable:
                raise
            raise AirflowFailException(str(exc)) from None

    def on_kill(self) -> None:
        if self._hook is not None:
            self._hook.kill()
