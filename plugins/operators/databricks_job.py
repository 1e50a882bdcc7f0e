"""A Runway job as a Databricks run: the project's wheel, its ``runway_job`` entry point, one
``python_wheel_task`` per Airflow task, submitted with the Databricks provider's
``DatabricksSubmitRunOperator`` (runs/submit, runs/get, runs/get-output, runs/cancel)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from airflow.providers.databricks.operators.databricks import DatabricksSubmitRunOperator
from airflow.sdk.exceptions import AirflowFailException

from jobs.core.results import read_result
from operators._provider_compat import WheelTaskSubmitJson
from operators.runway_job import RunwayJobTask

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


class RunwayDatabricksJobOperator(RunwayJobTask, WheelTaskSubmitJson, DatabricksSubmitRunOperator):
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
        self._init_job_task(job, arguments, env, asset_extra, skip_unless)
        self.spec = spec

    def submit_json(self, context) -> dict[str, Any]:
        """The runs/submit body of this try (``wheel_task_payload``)."""
        ti = context["ti"]
        return wheel_task_payload(
            job=self.job,
            arguments=[*self.arguments, "--env", self.env],
            task_key=self.task_id,
            run_name=f"runway {self.dag_id}.{self.task_id} {ti.run_id}",
            spec=self.spec,
            token=f"{self.dag_id}|{self.task_id}|{ti.run_id}|{ti.try_number}",
        )

    def execute(self, context) -> dict[str, Any]:
        """Submit and wait (or defer, with ``deferrable=True``); the job's result either way."""
        from airflow.exceptions import AirflowException

        self._completed: dict[str, Any] | None = None
        try:
            super().execute(context)
        except AirflowFailException:
            raise
        except AirflowException as exc:
            raise self._failure(exc) from None
        if self._completed is not None:  # deferrable, and the run had ended: completed in line
            return self._completed
        return self._result(context)

    def execute_complete(self, context, event: dict[str, Any]) -> dict[str, Any]:
        """The deferred path's end (the trigger saw the run end): the same result or failure as the
        waiting path, so ``default_deferrable`` never drops Runway's result."""
        from airflow.exceptions import AirflowException

        self.run_id = event["run_id"]
        try:
            super().execute_complete(context, event)
        except AirflowException as exc:
            raise self._failure(exc) from None
        self._completed = self._result(context)
        return self._completed

    def _result(self, context) -> dict[str, Any]:
        _, output = self._run_output()
        report = read_result(output.get("logs", ""))
        return self._finish(context, report.get("result", {}) if report.get("ok") else {})

    def _run_output(self) -> tuple[dict[str, Any], dict[str, Any]]:
        run = self._hook.get_run(self.run_id)
        task_run_id = (run.get("tasks") or [{}])[0].get("run_id", self.run_id)
        return run, self._hook.get_run_output(task_run_id)

    def _failure(self, exc: Exception) -> Exception:
        """The remote run failed: say where it is and why (the job's own report when it left one)."""
        try:
            run, output = self._run_output()
        except Exception:  # noqa: BLE001 - the original failure is what matters
            return exc
        state = run.get("state", {})
        where = (
            f"Databricks run {self.run_id} ({run.get('run_page_url')}): {state.get('result_state')}, "
            f"{state.get('state_message')!r}"
        )
        return self._job_failure(read_result(output.get("logs", "")), output.get("error") or exc, where)
