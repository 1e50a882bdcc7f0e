"""The feature-refresh DAG of one environment: landing → bronze → silver → quality gate → gold."""

from __future__ import annotations

from datetime import date, timedelta

from airflow.sdk import DAG

from dag_factories.common import dag_kwargs, interval_schedule, resolve_window, table_asset, window_params
from dag_factories.compute import job_task
from jobs.config.loader import load_config

DOC = """
### Feature refresh — `{env}`

Refreshes the **{catalog}** catalog's Delta tables for a date window `[start, end)`:

1. **bronze**: the landing files of each day (raw values + source file, ingest time, run id) into
   staged tables (`<source>__staged`); malformed lines go to `{catalog}.silver.quarantine`.
2. **silver**: typed, de-duplicated on natural keys{sample}, row-level expectations applied, into
   the staged silver tables; failing rows are quarantined with the checks they failed.
3. **quality_gate**: table-level expectations (columns, volume, null rates) on the staged rows. Pass:
   the staged days are published to bronze and silver and logged in `{catalog}.silver.gate_log`.
   Fail: nothing is published (the last good rows stay) and the run stops; the result JSON is under
   `{reports}`.
4. **gold**: features from `{sql}` (the use case's SQL) into `{gold}` (emits its Asset); refuses days whose
   latest gate did not pass.

Scheduled runs process their data interval. For a manual run, give **start_date** and **end_date**.
Backfill: `airflow backfill create --dag-id {dag_id} --from-date {first} --to-date {last}`.
Every write replaces exactly its window, so reruns and backfills are idempotent.
"""


def backfill_end(start: date) -> date:
    """The backfill example's last day: the end of the use case's first month of data."""
    return (start.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)


def build_feature_refresh_dag(env: str) -> DAG:
    config = load_config(env)
    features = config.use_case.features
    gold_asset = table_asset(config, "gold", features.table)
    kwargs = dag_kwargs(
        config, "feature_refresh", interval_schedule(config.schedules.feature_refresh), "", ["features"]
    )
    kwargs["doc_md"] = DOC.format(
        env=env,
        catalog=config.catalog,
        sql=config.use_case.file("sql", features.sql),
        gold=gold_asset.name,
        dag_id=kwargs["dag_id"],
        first=config.airflow.start_date,
        last=backfill_end(config.airflow.start_date),
        reports=f"{config.storage.reports_root}/{env}/data_quality",
        sample=f" (sample: {config.sample_fraction:.0%} of sampled sources)"
        if config.sample_fraction < 1
        else "",
    )
    with DAG(**kwargs, max_active_runs=1, params=window_params()) as dag:
        window = resolve_window()
        span = ["--start", window["start"], "--end", window["end"], "--run-id", "{{ run_id }}"]

        def step(task_id: str, name: str, **extra):
            return job_task(config, task_id=task_id, job="feature_refresh", arguments=[name, *span], **extra)

        bronze = step("bronze", "bronze", doc_md="Landing files → bronze Delta tables.")
        silver = step("silver", "silver", doc_md="Bronze → typed, de-duplicated, row-checked silver.")
        gate = step(
            "quality_gate", "gate", doc_md="Table-level expectations on silver; stops the run on failure."
        )
        gold = step(
            "gold",
            "gold",
            outlets=[gold_asset],
            asset_extra={"start": window["start"], "end": window["end"]},
            doc_md="Feature SQL → gold.",
        )
        window >> bronze >> silver >> gate >> gold
    return dag
