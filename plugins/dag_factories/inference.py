"""The inference DAGs of one environment: batch scoring per data interval, and the streaming query
drained every few minutes (``--available-now``). Both score with the version ``Champion`` points at
when they run, so a promotion needs no change here."""

from __future__ import annotations

from airflow.sdk import DAG

from dag_factories.common import dag_kwargs, interval_schedule, resolve_window, table_asset, window_params
from dag_factories.compute import job_task
from jobs.config.loader import load_config

BATCH_DOC = """
### Batch inference — `{env}`

Scores the rows of a date window `[start, end)` from `{gold}` with `{model}@{alias}`, resolved to
one concrete version at the start of the run, using `mlflow.pyfunc.spark_udf`. Predictions (model
inputs, P(delayed), label at the model's threshold, model name/version/run, scoring time) replace the
window's batch rows in `{predictions}`: reruns never duplicate, and re-scoring after a promotion
records the new version.

Scheduled runs score their data interval; manual runs take **start_date** and **end_date**.
Backfill: `airflow backfill create --dag-id {dag_id} --from-date 2013-04-01 --to-date 2013-04-30`.
No `{alias}` yet, or a model whose signature does not match the features: the task fails at once
with one sentence saying so.
"""

STREAMING_DOC = """
### Streaming inference — `{env}`

Every run drains the events that landed in `{landing}` since the last one (Structured
Streaming, `availableNow`), scores them with the version `{model}@{alias}` points at for each
micro-batch, and appends to `{predictions}` exactly once per micro-batch (checkpoint
`{checkpoint}` + a Delta transaction per batch id). Malformed events go to `{quarantine}`.

For a long-running service instead of this schedule:
`python -m jobs.streaming_inference --env {env}` (continuous, {trigger} s micro-batches).
"""


def build_batch_inference_dag(env: str) -> DAG:
    config = load_config(env)
    features = config.use_case.features
    predictions = table_asset(config, "ml", config.inference.predictions_table)
    gold = table_asset(config, "gold", features.table)
    kwargs = dag_kwargs(
        config, "batch_inference", interval_schedule(config.schedules.batch_inference), "", ["inference"]
    )
    kwargs["doc_md"] = BATCH_DOC.format(
        env=env,
        gold=gold.name,
        model=config.registered_model_name,
        alias=config.inference.alias,
        predictions=predictions.name,
        dag_id=kwargs["dag_id"],
    )
    with DAG(**kwargs, max_active_runs=1, params=window_params()) as dag:
        window = resolve_window()
        score = job_task(
            config,
            task_id="score",
            job="batch_inference",
            arguments=["--start", window["start"], "--end", window["end"], "--run-id", "{{ run_id }}"],
            inlets=[gold],
            outlets=[predictions],
            asset_extra={"start": window["start"], "end": window["end"], "mode": "batch"},
            doc_md="Gold features of the window → Champion scores → predictions (window replaced).",
        )
        window >> score
    return dag


def build_streaming_inference_dag(env: str) -> DAG:
    config = load_config(env)
    predictions = table_asset(config, "ml", config.inference.predictions_table)
    streaming = config.inference.streaming
    # A plain cron (no data interval): each run drains whatever has landed since the last one.
    kwargs = dag_kwargs(
        config, "streaming_inference", config.schedules.streaming_inference, "", ["inference"]
    )
    from jobs.config.env import checkpoint_dir
    from jobs.features.pipeline import QUARANTINE_TABLE

    kwargs["doc_md"] = STREAMING_DOC.format(
        env=env,
        landing=streaming.landing_dir,
        model=config.registered_model_name,
        alias=config.inference.alias,
        predictions=predictions.name,
        checkpoint=checkpoint_dir(config),
        quarantine=table_asset(config, "silver", QUARANTINE_TABLE).name,
        trigger=streaming.trigger_seconds,
    )
    with DAG(**kwargs, max_active_runs=1) as dag:
        job_task(
            config,
            task_id="drain_events",
            job="streaming_inference",
            arguments=["--available-now"],
            outlets=[predictions],
            asset_extra={"mode": "stream"},
            doc_md="Score the events that landed since the last run; one Delta commit per micro-batch.",
        )
    return dag
