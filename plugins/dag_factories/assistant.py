"""The assistant DAG of one environment: build a chain candidate (prompt version + retrieval
settings + index version), judge it with the evaluation gate, promote it by alias."""

from __future__ import annotations

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG, Param, task

from dag_factories.common import dag_kwargs, table_asset
from dag_factories.compute import job_task
from jobs.config.base import ConfigError
from jobs.config.loader import load_config

DOC = """
### Assistant — `{env}`

The LLMOps lifecycle of **{assistant}** (`{model}`), the same discipline as a model's:

1. **build_chain** (`jobs.build_assistant`): registers the prompt `include/assistants/{assistant}/prompt.txt`
   in MLflow's prompt registry as `{prompt}` (a new version only when its text changed) and the chain
   — that prompt version, retrieval k={k} (min score {min_score}), the index of the latest snapshot of
   `{chunks}` — as a version of `{model}`, its lineage in the tags. The same parts reuse their version.
2. **evaluate_chain** (`jobs.evaluate_assistant`): the labelled questions through the candidate and
   the Champion in one MLflow run (`mlflow.genai.evaluate`, a trace per question): recall@k ≥ {recall},
   MRR ≥ {mrr}, groundedness ≥ {grounded}, citation correctness ≥ {citations}, p95 latency ≤ {ratio:g}×
   the Champion's in the same run + {slack:g} ms (ceiling {p95:g} ms), and no metric more than
   {regression} below the Champion's; a figure that could not be computed is not judged (retried).
   Status, decision and Champion on the tags; a winner becomes `Challenger`. Generator: {generator}.
3. **promote** (`jobs.promote promote --model assistant`): `Champion` moves, audited in
   `{catalog}.ml.model_audit` like a model's; the prompt's `Champion` alias follows.{human}

Runs when `{chunks}` is refreshed and on demand (Params: k, min score). Roll back with the rollback
DAG (`model: assistant`).
"""


@task.branch
def route_decision(result: dict, human: bool) -> str:
    if result.get("decision") != "promote" or human:
        return "champion_kept"
    return "promote"


def build_assistant_dag(env: str) -> DAG:
    config = load_config(env)
    if config.assistant is None:
        raise ConfigError(f"{env}: the assistant DAG needs an `assistant:` section")
    target, assistant = config.assistant_target, config.assistant
    chunks = table_asset(config, "gold", assistant.chunks_table)
    human = config.promotion.approval == "human"
    gate, retrieval = assistant.gate, assistant.retrieval
    kwargs = dag_kwargs(config, "assistant", [chunks], "", ["llmops"])
    kwargs["doc_md"] = DOC.format(
        env=env,
        assistant=assistant.name,
        model=target.registered_model_name,
        prompt=target.prompt_name,
        k=retrieval.k,
        min_score=retrieval.min_score,
        chunks=chunks.name,
        recall=gate.min_recall_at_k,
        mrr=gate.min_mrr,
        grounded=gate.min_groundedness,
        citations=gate.min_citation_correctness,
        p95=gate.max_p95_latency_ms,
        ratio=gate.max_p95_ratio_vs_champion,
        slack=gate.latency_slack_ms,
        regression=gate.max_regression_vs_champion,
        catalog=config.catalog,
        generator=f"`{assistant.generator.model}` at the configured endpoint"
        if assistant.generator.endpoint
        else "none configured: extractive answers (the best passages, cited)",
        human="\n   In this environment a person approves first: the run stops after the gate, and "
        "`python -m jobs.promote approve|promote --model assistant` moves the alias."
        if human
        else "",
    )
    params = {
        "k": Param(
            None,
            type=["null", "integer"],
            minimum=1,
            title="Passages per question",
            description=f"Empty: assistant.retrieval.k ({retrieval.k}).",
        ),
        "min_score": Param(
            None,
            type=["null", "number"],
            title="Minimum similarity",
            description=f"Empty: assistant.retrieval.min_score ({retrieval.min_score}).",
        ),
    }
    with DAG(**kwargs, max_active_runs=1, params=params) as dag:
        run = ["--run-id", "{{ run_id }}"]
        overrides = [
            "--k",
            "{{ params.k if params.k else '' }}",
            "--min-score",
            "{{ params.min_score if params.min_score is not none else '' }}",
        ]
        build = job_task(
            config,
            task_id="build_chain",
            job="build_assistant",
            arguments=[*overrides, *run],
            doc_md="Prompt version + retrieval settings + index version → a registered chain version.",
        )
        version = "{{ ti.xcom_pull(task_ids='build_chain')['version'] }}"
        evaluate = job_task(
            config,
            task_id="evaluate_chain",
            job="evaluate_assistant",
            arguments=["--version", version, *run],
            doc_md="The evaluation gate: floors and the Champion, in one MLflow run.",
        )
        promote = job_task(
            config,
            task_id="promote",
            job="promote",
            arguments=["promote", "--model", "assistant", "--version", version, *run],
            doc_md="Champion moves to the chain (audited); the prompt's Champion follows.",
        )
        kept = EmptyOperator(
            task_id="champion_kept", doc_md="The candidate did not win, or a person decides."
        )
        build >> evaluate >> route_decision(evaluate.output, human) >> [promote, kept]
    return dag
