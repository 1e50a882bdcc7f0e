"""The monitoring DAG of one environment: monitor the window → retraining policy (sensor) →
alert row + notification → start the environment's training DAG with ``reason: drift``."""

from __future__ import annotations

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import DAG, task

from dag_factories.common import dag_kwargs, interval_schedule, resolve_window, table_asset, window_params
from dag_factories.compute import job_task
from jobs.config.loader import load_config
from sensors.monitoring import DriftPolicySensor

DOC = """
### Monitoring — `{env}`

For a window `[start, end)` of each watched source — {watched} (`monitoring.sources` in config;
the inference log by request time):

1. **monitor**: Evidently compares the scored inputs and predictions with the training window of
   the model version that made them (per-feature drift, the share of drifted features, prediction
   drift) and, once labels have arrived (joined on the entity's keys), the window's ROC AUC, F1 and
   calibration error. Rows go to `{metrics}` with their source (replaced on a rerun); the HTML
   report is under `{reports}/<source>` and in an MLflow monitoring run.
2. **check_drift**: the retraining policy — at least {n} of the last {m} windows violate
   ({checks}) in any watched source, the latest included, and no drift retrain within {cooldown}
   days. Otherwise the run ends here, *skipped* (not failed).
3. **record_alert** (`{alerts}`), **notify** (webhook/e-mail from config) and **retrain**: starts
   `{training}` with conf `{{"reason": "drift", "windows": [...], "values": {{...}}}}`; training
   records the reason in MLflow. The nightly scheduled retrain stays.

Scheduled runs monitor the day that ended; manual runs take **start_date** and **end_date**.
"""


@task
def drift_conf(decision: dict, end: str) -> dict:
    """The training run's conf: why it runs, which windows, what they measured, and up to when."""
    return {
        "reason": "drift",
        "windows": decision["windows"],
        "values": decision["values"],
        "training_end": end,
    }


@task
def notify(decision: dict, env: str, start: str, end: str) -> bool:
    from hooks.notification import WebhookNotificationHook
    from jobs.config.loader import load_config

    config = load_config(env)
    text = f"[{start}, {end}): {decision['reason']}. Windows: {', '.join(decision['windows'])}."
    return WebhookNotificationHook(config.notifications.webhook_url).send(
        f"Runway {env}: drift triggered a retrain of {config.registered_model_name}", text
    )


def build_monitoring_dag(env: str) -> DAG:
    config = load_config(env)
    policy = config.monitoring.policy
    sources = {  # what each watched source reads: batch and streaming scoring, the endpoint's requests
        "predictions": ("monitor", table_asset(config, "ml", config.inference.predictions_table)),
        "inference_log": ("monitor_online", table_asset(config, "ml", config.serving.inference_log.table)),
    }
    watched = {source: sources[source] for source in config.monitoring.sources}
    metrics = table_asset(config, "monitoring", "metrics")
    alerts = table_asset(config, "monitoring", "alerts")
    kwargs = dag_kwargs(
        config, "monitoring", interval_schedule(config.schedules.monitoring), "", ["monitoring"]
    )
    kwargs["doc_md"] = DOC.format(
        env=env,
        watched=", ".join(f"`{asset.name}` (task `{task_id}`)" for task_id, asset in watched.values()),
        metrics=metrics.name,
        alerts=alerts.name,
        reports=f"{config.storage.reports_root}/{env}/monitoring",
        n=policy.violations,
        m=policy.of_last,
        checks=", ".join(policy.checks),
        cooldown=policy.cooldown_days,
        training=f"{env}_training",
    )
    with DAG(**kwargs, max_active_runs=1, params=window_params()) as dag:
        window = resolve_window()
        span = ["--start", window["start"], "--end", window["end"], "--run-id", "{{ run_id }}"]
        monitors = [
            job_task(
                config,
                task_id=task_id,
                job="monitoring",
                arguments=["monitor", "--source", source, *span],
                inlets=[asset],
                outlets=[metrics],
                doc_md=f"Drift and quality of the window's {source} against the Champion's training "
                "reference.",
            )
            for source, (task_id, asset) in watched.items()
        ]
        if config.compute.kind == "local":  # the metrics table is readable here: a (deferrable) sensor
            check = DriftPolicySensor(
                task_id="check_drift",
                runway_env=env,
                window_end=window["end"],
                deferrable=True,
                poke_interval=30,
                timeout=30 * 60,
                soft_fail=True,
                doc_md="Succeeds when the retraining policy holds; skipped otherwise.",
            )
        else:  # the tables live on the cluster: the same decision, computed there
            check = job_task(
                config,
                task_id="check_drift",
                job="monitoring",
                arguments=["decide", *span],
                skip_unless="retrain",
                doc_md="Succeeds when the retraining policy holds; skipped otherwise.",
            )
        training_run_id = "drift__{{ ti.xcom_pull(task_ids='resolve_window')['end'] }}"
        alert = job_task(
            config,
            task_id="record_alert",
            job="monitoring",
            outlets=[alerts],
            arguments=[
                "alert",
                *span,
                "--decision",
                "{{ ti.xcom_pull(task_ids='check_drift') | tojson }}",
                "--training-run-id",
                training_run_id,
            ],
            doc_md="One alert row per window in the alerts table.",
        )
        retrain = TriggerDagRunOperator(
            task_id="retrain",
            trigger_dag_id=f"{env}_training",
            trigger_run_id=training_run_id,  # one drift retrain per window, however often this reruns
            logical_date="{{ ti.xcom_pull(task_ids='resolve_window')['end'] }}",  # data time, not now()
            conf=drift_conf(check.output, window["end"]),
            wait_for_completion=False,
            skip_when_already_exists=True,
        )
        (
            window
            >> monitors
            >> check
            >> alert
            >> [retrain, notify(check.output, env, window["start"], window["end"])]
        )
    return dag
