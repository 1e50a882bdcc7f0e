"""A Runway job as a Databricks run: the project's wheel, its ``runway_job`` entry point, one
``python_wheel_task`` per Airflow task, submitted with the Databricks provider's
``DatabricksSubmitRunOperator`` (runs/submit, runs/get, runs/get-output, runs/cancel)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from airflow.providers.databricks.operators.databricks import DatabricksSubmitRunOperator
from airflow.sdk.exceptions import AirflowFailException

from jobs.common.cli import RESULT_MARKER
from operators.runway_job import skip_unless

PACKAGE = "runway_mlops"
ENTRY_POINT = "runway_job"


def wheel_task_payload(
    *, job: str, arguments: list[str], task_key: str, run_name: str, spec: dict[str, Any], token: str
) -> dict[str, Any]:
    """The runs/submit body for one job (pure: what the golden payload tests pin).

    ``spec`` is the environment's ``compute.databricks`` config: the wheel, the cluster (new with
    an optional policy, or existing), environment variables, timeout, permissions.
    """
    task: dict[str, Any] = {
        "task_key": task_key,
        "python_wheel_task": {
            "package_name": PACKAGE,
            "entry_point": ENTRY_POINT,
            "parameters": [job, *[str(a) for a in arguments]],
        },
        "libraries": [{"whl": spec["wheel"]}],
    }
    if spec.get("existing_cluster_id"):
        task["existing_cluster_id"] = spec["existing_cluster_id"]
    else:
        cluster = dict(spec["new_cluster"])
        if spec.get("policy_id"):
            cluster["policy_id"] = spec["policy_id"]
            cluster.setdefault("apply_policy_default_values", True)
        env_vars = {**cluster.get("spark_env_vars", {}), **spec.get("env_vars", {})}
        if env_vars:
            cluster["spark_env_vars"] = env_vars
        task["new_cluster"] = cluster
    payload: dict[str, Any] = {
        "run_name": run_name,
        "tasks": [task],
        "timeout_seconds": int(spec.get("timeout_seconds", 0)),
        # At most one run per Airflow try: a retried submit call never starts the job twice.
        "idempotency_token": hashlib.sha256(token.encode()).hexdigest()[:64],
    }
    if spec.get("access_control_list"):
        payload["access_control_list"] = spec["access_control_list"]
    return payload


def result_from_logs(logs: str) -> dict[str, Any]:
    """The job's result from the run's stdout (its last ``RUNWAY_RESULT`` line)."""
    payload = job_report(logs)
    return payload.get("result", {}) if payload.get("ok") else {}


class RunwayDatabricksJobOperator(DatabricksSubmitRunOperator):
    """Run ``runway_job <job> <arguments> --env <env>`` on Databricks and push the job's result.

    Same contract as ``RunwayJobOperator``: templated ``arguments``, the small JSON result as the
    return value. The provider logs the run page URL, raises with the run's state message on
    failure, and cancels the run in ``on_kill``.
    """

    template_fields: Sequence[str] = (
        *DatabricksSubmitRunOperator.template_fields,
        "arguments",
        "asset_extra",
    )
    ui_color = "#fbe9e0"

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
            json={},
            databricks_conn_id=spec.get("conn_id", "databricks_default"),
            polling_period_seconds=int(spec.get("polling_period_seconds", 30)),
            **kwargs,
        )
        self.job = job
        self.arguments = arguments
        self.env = env
        self.spec = spec
        self.asset_extra = asset_extra or {}
        self.skip_unless = skip_unless

    def _prepare_submit_json(self, context) -> dict[str, Any]:
        ti = context["ti"]
        self.json = wheel_task_payload(
            job=self.job,
            arguments=[*self.arguments, "--env", self.env],
            task_key=self.task_id,
            run_name=f"runway {self.dag_id}.{self.task_id} {ti.run_id}",
            spec=self.spec,
            token=f"{self.dag_id}|{self.task_id}|{ti.run_id}|{ti.try_number}",
        )
        payload = super()._prepare_submit_json(context)
        # The job's parameters are its command line, Params already rendered into it: the provider's
        # injection of DAG Params as named_parameters would clash with them.
        for task in payload.get("tasks", []):
            task.get("python_wheel_task", {}).pop("named_parameters", None)
        return payload

    def execute(self, context) -> dict[str, Any]:
        from airflow.exceptions import AirflowException

        try:
            super().execute(context)
        except AirflowFailException:
            raise
        except AirflowException as exc:
            raise self._failure(exc) from None
        run, output = self._run_output()
        for outlet in self.outlets if self.asset_extra else []:
            context["outlet_events"][outlet].extra.update(self.asset_extra)
        return skip_unless(result_from_logs(output.get("logs", "")), self.skip_unless, self.task_id)

    def _run_output(self) -> tuple[dict[str, Any], dict[str, Any]]:
        run = self._hook.get_run(self.run_id)
        task_run_id = (run.get("tasks") or [{}])[0].get("run_id", self.run_id)
        return run, self._hook.get_run_output(task_run_id)

    def _failure(self, exc: Exception) -> Exception:
        """The remote run failed: say where it is and why. A job that reported bad input or a
        failed quality gate fails the task at once, as locally; anything else may be retried."""
        from airflow.exceptions import AirflowException

        from hooks.runway_job import NON_RETRYABLE_EXIT_CODES

        try:
            run, output = self._run_output()
        except Exception:  # noqa: BLE001 - the original failure is what matters
            return exc
        state = run.get("state", {})
        where = f"run {self.run_id} ({run.get('run_page_url')}): {state.get('result_state')}, {state.get('state_message')!r}"
        report = job_report(output.get("logs", ""))
        reason = NON_RETRYABLE_EXIT_CODES.get(report.get("exit_code"))
        if reason:
            return AirflowFailException(f"{reason}: {report.get('error')} — Databricks {where}")
        detail = report.get("error") or output.get("error") or str(exc)
        return AirflowException(f"{self.job} failed: {detail} — Databricks {where}")


def job_report(logs: str) -> dict[str, Any]:
    """The job's last ``RUNWAY_RESULT`` payload, success or not."""
    lines = [line for line in (logs or "").splitlines() if line.startswith(RESULT_MARKER)]
    return json.loads(lines[-1][len(RESULT_MARKER) :]) if lines else {}
