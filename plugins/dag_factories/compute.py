"""Which operator runs a job task, chosen at DAG parse time from the environment's
``compute.kind``: the same DAG shape in every mode, only the operator differs.

Imported at parse time: the Databricks provider is imported only in databricks mode.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseOperator

from jobs.config.base import ConfigError
from jobs.config.env import EnvConfig
from jobs.runnable import check_job


def job_task(config: EnvConfig, *, task_id: str, job: str, arguments: list[Any], **kwargs) -> BaseOperator:
    """``runway_job <job> <arguments> --env <env>``: a local process, a spark-submit or a Databricks run."""
    check_job(job)  # one name runway_job runs, in every mode
    kind = config.compute.kind
    if kind == "local":
        from operators.runway_job import RunwayJobOperator

        return RunwayJobOperator(task_id=task_id, job=job, arguments=arguments, env=config.env, **kwargs)
    if kind == "databricks":
        from operators.databricks_job import RunwayDatabricksJobOperator as remote_operator

        spec = databricks_spec(config)
    elif kind == "spark-submit":
        from operators.spark_submit_job import RunwaySparkSubmitJobOperator as remote_operator

        spec = spark_submit_spec(config)
    else:
        raise ConfigError(f"{config.env}: unknown compute.kind {kind!r}")
    return remote_operator(task_id=task_id, job=job, arguments=arguments, env=config.env, spec=spec, **kwargs)


def use_case_selector(config: EnvConfig) -> str:
    """How a remote process selects this config's use case: its name when it is shipped under
    include/use_cases (and so travels in the wheel), else its folder (client-mode drivers, tests)."""
    from jobs.core.paths import use_cases_dir

    folder = config.use_case.folder
    return folder.name if folder.parent == use_cases_dir().resolve() else str(folder)


def databricks_spec(config: EnvConfig) -> dict[str, Any]:
    """The run spec of ``compute.databricks``; the cluster learns its environment, use case and mode."""
    spec = config.compute.databricks.model_dump()
    spec["env_vars"] = {
        "RUNWAY_ENV": config.env,
        "RUNWAY_COMPUTE": "databricks",
        "RUNWAY_USE_CASE": use_case_selector(config),
        **spec["env_vars"],
    }
    return spec


def spark_submit_spec(config: EnvConfig) -> dict[str, Any]:
    """The submit spec of ``compute.spark_submit``, paths made absolute against the checkout; in
    client mode the driver finds configs and SQL in this checkout's include/."""
    from jobs.core.paths import PROJECT_ROOT, include_dir

    spec = config.compute.spark_submit.model_dump()
    for key in ("wheel", "application"):
        spec[key] = str((PROJECT_ROOT / spec[key]).resolve())
    spec["env_vars"] = {
        "RUNWAY_ENV": config.env,
        "RUNWAY_COMPUTE": "spark-submit",
        "RUNWAY_INCLUDE_DIR": str(include_dir()),
        "RUNWAY_USE_CASE": use_case_selector(config),
        **spec["env_vars"],
    }
    spec["conf"] = {k: v for k, v in spec["conf"].items() if v not in ("", None)}  # empty: the cluster's own
    native_delta = spec["env_vars"].get("RUNWAY_TABLE_ENGINE") == "spark"
    if not native_delta:  # a cluster without Delta: delta-rs commits from the driver
        from jobs.runtime.spark_session import DELTA_SESSION_CONF

        spec["conf"] = {k: v for k, v in spec["conf"].items() if k not in DELTA_SESSION_CONF}
    elif not (spec["jars"] or spec["packages"] or "spark.jars" in spec["conf"]):
        from jobs.core.paths import delta_jars

        jars, _ = delta_jars()  # the ones `make install` fetched: shipped with each job
        spec["jars"] = ",".join(jars) or None
    return spec
