"""The assistant's monitoring DAG of one environment: a window of answered questions and their
feedback → figures and query drift → re-index or re-evaluate when the policy asks."""

from __future__ import annotations

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import DAG, task

from dag_factories.common import dag_kwargs, interval_schedule, resolve_window, table_asset, window_params
from dag_factories.compute import job_task
from jobs.assistant.monitoring_policy import REEVALUATE, REINDEX
from jobs.config.base import ConfigError
from jobs.config.loader import load_config

DOC = """
### Assistant monitoring — `{env}`

For each window (schedule `{schedule}`; Params for a backfill), `jobs.monitor_assistant` reads the
endpoint's answered questions (`{log}`) and their feedback (`{feedback}`) and writes the window's
figures to `{metrics}` (a rerun replaces them): requests, no-answer rate (limit {no_answer:.0%}),
median top retrieval score (at least {top_score}), the share of questions no evaluation question
resembles (query drift: similarity below {similarity} for more than {uncovered:.0%}), feedback rate
and mean rating (at least {rating} over {ratings}+ ratings), tokens and cost per request.

- **re-index** (retrieval fails the questions asked): triggers `{refresh}` — a new corpus version is
  chunked, embedded and indexed, and its Asset runs `{assistant}`.
- **re-evaluate** (the Champion answers from an older snapshot, the questions drifted, or users rate
  low): triggers `{assistant}` — the chain is rebuilt from the current prompt and knowledge and judged
  by the gate again. One trigger per window, however often this reruns.
"""


@task.branch
def route_action(result: dict) -> str:
    return f"trigger_{result['action']}"


def build_assistant_monitoring_dag(env: str) -> DAG:
    config = load_config(env)
    if config.assistant is None:
        raise ConfigError(f"{env}: assistant monitoring needs an `assistant:` section")
    name, policy = config.assistant.name, config.assistant.monitoring
    log, feedback = (
        table_asset(config, "ml", f"{name}_inference_log"),
        table_asset(config, "ml", f"{name}_feedback"),
    )
    metrics = table_asset(config, "monitoring", "assistant_metrics")
    schedule = config.schedules.assistant_monitoring
    kwargs = dag_kwargs(
        config, "assistant_monitoring", interval_schedule(schedule), "", ["llmops", "monitoring"]
    )
    kwargs["doc_md"] = DOC.format(
        env=env,
        schedule=schedule or "manual only",
        log=log.name,
        feedback=feedback.name,
        metrics=metrics.name,
        no_answer=policy.max_no_answer_rate,
        top_score=policy.min_top_score_p50,
        similarity=policy.min_question_similarity,
        uncovered=policy.max_uncovered_share,
        rating=policy.min_mean_rating,
        ratings=policy.min_ratings,
        refresh=f"{env}_knowledge_refresh",
        assistant=f"{env}_assistant",
    )
    with DAG(**kwargs, max_active_runs=1, params=window_params()) as dag:
        window = resolve_window()
        monitor = job_task(
            config,
            task_id="monitor",
            job="monitor_assistant",
            inlets=[log, feedback],
            outlets=[metrics],
            arguments=["--start", window["start"], "--end", window["end"], "--run-id", "{{ run_id }}"],
            skip_unless="act",
            doc_md="The window's figures and the policy's decision (skipped: nothing to do).",
        )
        end = "{{ ti.xcom_pull(task_ids='resolve_window')['end'] }}"
        triggers = {
            action: TriggerDagRunOperator(
                task_id=f"trigger_{action}",
                trigger_dag_id=target,
                trigger_run_id=f"assistant_{action}__{end}",
                logical_date=end,
                wait_for_completion=False,
                skip_when_already_exists=True,
            )
            for action, target in ((REINDEX, f"{env}_knowledge_refresh"), (REEVALUATE, f"{env}_assistant"))
        }
        window >> monitor >> route_action(monitor.output) >> list(triggers.values())
    return dag
