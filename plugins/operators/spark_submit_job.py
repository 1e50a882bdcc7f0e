"""A Runway job on a self-managed Spark cluster: the apache-spark provider's SparkSubmitOperator
submits ``jobs/__main__.py <job> <arguments> --env <env>`` with the project's wheel as
``--py-files``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

from jobs.core.results import RESULT_MARKER, read_result
from operators._provider_compat import spark_submit_hook_seeing_lines
from operators.runway_job import RunwayJobTask


class RunwaySparkSubmitJobOperator(RunwayJobTask, SparkSubmitOperator):
    """Same contract as ``RunwayJobOperator``: templated ``arguments``, the job's small JSON result
    (its ``RUNWAY_RESULT`` line in the driver's output) as the return value; bad input or a failed
    quality gate (exit 2 or 3) fails at once, other failures may be retried; ``on_kill`` (the
    provider's) stops the submission and the driver."""

    template_fields: Sequence[str] = (*SparkSubmitOperator.template_fields, "arguments", "asset_extra")
    ui_color = "#fdf3d8"

    def __init__(
        self,
        *,
        job: str,
        arguments: list[Any],
        env: str,
        spec: dict[str, Any],
        asset_extra: dict[str, Any] | None = None,
        skip_unless: str | None = None,
        **kwargs,
    ) -> None:
        super().__init__(
            application=spec["application"],
            conn_id=spec["conn_id"],
            py_files=spec["wheel"],
            conf=spec.get("conf") or None,
            jars=spec.get("jars"),
            packages=spec.get("packages"),
            driver_memory=spec.get("driver_memory"),
            executor_memory=spec.get("executor_memory"),
            deploy_mode=spec.get("deploy_mode"),
            env_vars=spec.get("env_vars") or None,
            name=f"runway-{env}-{job}",
            **kwargs,
        )
        self._init_job_task(job, arguments, env, asset_extra, skip_unless)
        self.spec = spec
        self._result_lines: list[str] = []

    def execute(self, context) -> dict[str, Any]:
        from airflow.exceptions import AirflowException

        self.application_args = [self.job, *[str(a) for a in self.arguments], "--env", self.env]
        spark_submit_hook_seeing_lines(self, self._keep_result_line)
        try:
            super().execute(context)
        except AirflowException as exc:
            raise self._job_failure(read_result("\n".join(self._result_lines)), exc) from None
        report = read_result("\n".join(self._result_lines))
        return self._finish(context, report.get("result", {}) if report.get("ok") else {})

    def _keep_result_line(self, line: str) -> None:
        """Keep the driver's result line (the job's result travels in its output)."""
        if line.startswith(RESULT_MARKER):
            self._result_lines.append(line.strip())
