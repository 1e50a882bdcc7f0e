"""What every Runway DAG factory shares: defaults from config, window params, the window task.

Imported at DAG parse time: keep it light (no pyspark, mlflow, pandas, sklearn).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import Asset, CronDataIntervalTimetable, Param, task
from airflow.sdk.exceptions import AirflowFailException

from dag_factories.notifications import failure_notifier
from jobs.config.env import EnvConfig
from jobs.config.loader import deployed_envs  # noqa: F401 (re-exported for DAG files)

# Who asked for a run, as Airflow's auth manager knows them (the user who triggered it; empty for a
# scheduled or asset-triggered run): the person a job records, never a free-text Param.
TRIGGERED_BY = "{{ dag_run.triggering_user_name or '' }}"


def default_args(config: EnvConfig) -> dict[str, Any]:
    return {
        "owner": config.airflow.owner,
        "retries": config.airflow.retries,
        "retry_delay": timedelta(minutes=config.airflow.retry_delay_minutes),
        "on_failure_callback": failure_notifier(config.env),
    }


def interval_schedule(cron: str | None) -> CronDataIntervalTimetable | None:
    """A cron schedule whose runs cover the interval since the previous tick ([D, D+1) for daily).

    Airflow 3 reads a plain cron string as a trigger with an empty data interval; windowed jobs need
    the interval, so scheduled runs and backfills process exactly the day (hour, ...) they stand for.
    """
    return CronDataIntervalTimetable(cron, timezone="UTC") if cron else None


def dag_kwargs(
    config: EnvConfig, pipeline: str, schedule: Any, doc_md: str, tags: list[str]
) -> dict[str, Any]:
    """Keyword arguments of ``DAG(...)`` common to all pipelines of one environment."""
    return {
        "dag_id": f"{config.env}_{pipeline}",
        "schedule": schedule,
        "start_date": datetime.combine(config.airflow.start_date, datetime.min.time(), tzinfo=UTC),
        "catchup": False,
        "default_args": default_args(config),
        "tags": sorted({*config.airflow.tags, config.env, pipeline, *tags}),
        "doc_md": doc_md,
    }


def window_params() -> dict[str, Param]:
    """Params for a manual run over a date range; empty means the run's data interval."""
    return {
        "start_date": Param(
            None,
            type=["null", "string"],
            format="date",
            title="Start date",
            description="First day to process (YYYY-MM-DD). Leave empty to use the run's data interval.",
        ),
        "end_date": Param(
            None,
            type=["null", "string"],
            format="date",
            title="End date (exclusive)",
            description="Day after the last day to process (YYYY-MM-DD).",
        ),
    }


@task(multiple_outputs=True)
def resolve_window(
    params: dict | None = None, data_interval_start=None, data_interval_end=None
) -> dict[str, str]:
    """The run's date window ``[start, end)``: the Params if given, else the data interval.

    A bad window fails the task at once: retrying cannot fix it.
    """
    try:
        return _window(params or {}, data_interval_start, data_interval_end)
    except ValueError as exc:
        raise AirflowFailException(str(exc)) from None


def _window(params: dict, data_interval_start, data_interval_end) -> dict[str, str]:
    from jobs.core.window import Window

    start, end = params.get("start_date"), params.get("end_date")
    if start or end:
        if not (start and end):
            raise ValueError("give both start_date and end_date, or neither to use the data interval")
        window = Window.parse(str(start), str(end))
    elif data_interval_start is not None and data_interval_end is not None:
        start, end = data_interval_start.date().isoformat(), data_interval_end.date().isoformat()
        if start == end:
            raise ValueError("the run's data interval is empty: give start_date and end_date")
        window = Window.parse(start, end)
    else:
        raise ValueError("this run has no data interval: give start_date and end_date")
    return {"start": window.start.isoformat(), "end": window.end.isoformat()}


def table_asset(config: EnvConfig, schema: str, table: str) -> Asset:
    """The Airflow Asset standing for one Delta table of this environment."""
    from jobs.tablestore.base import TableName

    name = TableName.of(config, schema, table)
    return Asset(
        name=str(name), uri=f"runway://{name.catalog}/{name.schema}/{name.table}", group="delta_table"
    )
