"""The operator behind every Runway pipeline task: runs one step of a job in ``jobs/``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException


def skip_unless(result: dict[str, Any], key: str | None, task_id: str) -> dict[str, Any]:
    """With ``key`` set, a job whose result has ``key`` false skips the task (and, through the
    trigger rules, what follows); the result says why (``reason``)."""
    if key and not result.get(key):
        raise AirflowSkipException(f"{task_id}: {result.get('reason') or f'{key} is false'}")
    return result


class RunwayJobTask:
    """What every Runway job operator (local, spark-submit, Databricks) carries and does with the
    job's outcome, whatever runs the job."""

    def _init_job_task(
        self,
        job: str,
        arguments: list[Any],
        env: str,
        asset_extra: dict[str, Any] | None,
        skip_unless: str | None,
    ) -> None:
        self.job = job
        self.arguments = arguments
        self.env = env
        self.asset_extra = asset_extra or {}
        self.skip_unless = skip_unless

    def _finish(self, context, result: dict[str, Any]) -> dict[str, Any]:
        """Tag the outlet Assets' events (e.g. the window refreshed), skip if asked, push the result."""
        for outlet in self.outlets if self.asset_extra else []:
            context["outlet_events"][outlet].extra.update(self.asset_extra)
        return skip_unless(result, self.skip_unless, self.task_id)

    def _job_failure(self, report: dict[str, Any], fallback: object, where: str = "") -> Exception:
        """A remote job's failure from its result payload: bad input or a failed quality gate fails
        the task at once, as locally; anything else may be retried."""
        from airflow.exceptions import AirflowException

        from jobs.core.errors import NON_RETRYABLE_EXIT_CODES

        suffix = f" — {where}" if where else ""
        reason = NON_RETRYABLE_EXIT_CODES.get(report.get("exit_code"))
        if reason:
            return AirflowFailException(f"{reason}: {report.get('error')}{suffix}")
        return AirflowException(f"{self.job} failed: {report.get('error') or fallback}{suffix}")


class RunwayJobOperator(RunwayJobTask, BaseOperator):
    """Run ``python -m jobs.<job> <arguments> --env <env>`` and push its small JSON result.

    Failures a retry cannot fix (bad input, a failed data-quality gate) fail the task at once;
    others (a crash, a landing file not there yet) use the task's retries. ``asset_extra`` is added
    to the events of the task's outlet Assets (consumers read, say, which window was refreshed).
    """

    template_fields: Sequence[str] = ("arguments", "asset_extra")
    ui_color = "#e8f1fb"

    def __init__(
        self,
        *,
        job: str,
        arguments: list[Any],
        env: str,
        asset_extra: dict[str, Any] | None = None,
        skip_unless: str | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self._init_job_task(job, arguments, env, asset_extra, skip_unless)
        self._hook = None

    def job_arguments(self) -> list[Any]:
        """The job's command-line arguments (rendered); subclasses add their own fields."""
        return list(self.arguments)

    @property
    def hook(self):
        if self._hook is None:
            from hooks.runway_job import LocalJobHook

            self._hook = LocalJobHook()
        return self._hook

    def execute(self, context) -> dict[str, Any]:
        from hooks.runway_job import RunwayJobError

        try:
            result = self.hook.run(self.job, [*self.job_arguments(), "--env", self.env])
        except RunwayJobError as exc:
            if exc.retryable:
                raise
            raise AirflowFailException(str(exc)) from None
        return self._finish(context, result)

    def on_kill(self) -> None:
        if self._hook is not None:
            self._hook.kill()
