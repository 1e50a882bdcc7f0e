"""The assistant's evaluation gate: labelled questions answered and scored against the Champion."""

from __future__ import annotations

import json
import logging
import os
from typing import TYPE_CHECKING, Any

import mlflow
from mlflow.genai.scorers import scorer

from jobs.assistant.chain import generator_from
from jobs.assistant.gate import (
    METRICS,
    GateLimits,
    LabelledQuestion,
    NotJudgedError,
    gate_verdict,
    load_questions,
    question_scores,
    summary,
)
from jobs.config.env import EnvConfig
from jobs.core.errors import BadInputError
from jobs.release.promotion import COMPARED_WITH_TAG, DECISION_TAG, PROMOTE
from jobs.release.registry import CHALLENGER, FAILED, PASSED, PENDING, STATUS_TAG, ModelRegistry
from jobs.runtime.mlflow_setup import configure_mlflow

if TYPE_CHECKING:
    from jobs.assistant.gate import LabelledQuestion
    from jobs.config.targets import ModelTarget
    from jobs.release.registry import ModelRegistry


log = logging.getLogger("runway.evaluate_assistant")

KEEP = "keep"


def scorers(config: EnvConfig) -> list[Any]:
    """Runway's deterministic scorers, and a judge through the configured chat endpoint if any."""

    def metric(name: str):
        def score(inputs, outputs, expectations) -> float:
            labelled = LabelledQuestion(inputs["question"], tuple(expectations["relevant"]))
            return question_scores(outputs, labelled)[name]

        score.__name__ = name
        return scorer(score)

    deterministic = [metric(name) for name in METRICS]
    judge = generator_from(config.assistant.generator.model_dump())
    if judge is None:
        return deterministic

    @scorer
    def judged_groundedness(inputs, outputs) -> float:
        context = "\n\n".join(p["text"] for p in outputs["passages"])
        verdict, _ = judge.complete(
            f"Context:\n{context}\n\nAnswer:\n{outputs['answer']}\n\nIs every claim of the "
            "answer supported by the context? Reply with one word: yes or no."
        )
        return 1.0 if verdict.strip().lower().startswith("yes") else 0.0

    return [*deterministic, judged_groundedness]


def evaluate_chain(
    config: EnvConfig, target: ModelTarget, version: str, questions: list[LabelledQuestion], role: str
) -> dict[str, float]:
    """One chain version over the questions, in a child run; the summary of its scores."""

    for variable, workers in EVALUATION_WORKERS.items():
        os.environ.setdefault(variable, workers)

    chain = mlflow.pyfunc.load_model(
        f"models:/{target.registered_model_name}/{version}"
    ).unwrap_python_model()  # loaded
    latencies: list[float] = []

    def predict_fn(question: str) -> dict[str, Any]:
        answer = chain.chain.answer(question)
        latencies.append(answer["latency_ms"])
        return answer

    data = [
        {"inputs": {"question": q.question}, "expectations": {"relevant": list(q.relevant)}}
        for q in questions
    ]
    with mlflow.start_run(run_name=f"{role} v{version}", nested=True):
        mlflow.set_tags({"assistant.role": role, "assistant.version": version})
        result = mlflow.genai.evaluate(data=data, predict_fn=predict_fn, scorers=scorers(config))
    per_question = result.tables["eval_results"]
    names = [
        c.removesuffix("/value")
        for c in per_question.columns
        if c.endswith("/value") and c != "relevant/value"
    ]
    scores = [{n: float(row[f"{n}/value"]) for n in names} for _, row in per_question.iterrows()]
    return summary(scores, latencies[-len(questions) :]) | {
        n: round(float(per_question[f"{n}/value"].mean()), 4) for n in names if n == "judged_groundedness"
    }


def verdict_of(config: EnvConfig, candidate: dict[str, float], champion: dict[str, float] | None):

    gate = config.assistant.gate
    floors = {
        "recall_at_k": gate.min_recall_at_k,
        "mrr": gate.min_mrr,
        "groundedness": gate.min_groundedness,
        "citation_correctness": gate.min_citation_correctness,
    }
    limits = GateLimits(
        floors,
        gate.max_p95_latency_ms,
        gate.max_regression_vs_champion,
        gate.max_p95_ratio_vs_champion,
        gate.latency_slack_ms,
    )
    return gate_verdict(candidate, champion, limits)


# mlflow.genai.evaluate's thread pools (predict and scorers: 10 each by default) and its async
# trace writers (10) together outgrew a SQLite tracking store's connection pool (5 + 10) on a busy
# machine: traces were lost, every score NaN. Two of each keep well inside it; set to override.
EVALUATION_WORKERS = {"MLFLOW_GENAI_EVAL_MAX_WORKERS": "2", "MLFLOW_ASYNC_TRACE_LOGGING_MAX_WORKERS": "2"}


def evaluate(config: EnvConfig, version: str, run_id: str) -> dict[str, Any]:
    """Judge ``version`` and record the verdict on its tags (and the Challenger alias); a figure
    that could not be computed leaves it unjudged (``NotJudgedError``, retried)."""

    target = config.assistant_target
    registry = ModelRegistry.for_config(config, target)
    tags = registry.version(version).tags
    champion = registry.alias_version(target.champion_alias)
    if champion == str(version) or (
        tags.get(STATUS_TAG, PENDING) != PENDING and tags.get(COMPARED_WITH_TAG, "") == (champion or "")
    ):  # the Champion itself, or judged already against this Champion
        log.info(
            "v%s was already judged against %s: %s", version, champion or "no Champion", tags[STATUS_TAG]
        )
        return _outcome(target, version, tags, champion, changed=False)

    questions = load_questions(config)
    experiment_id = configure_mlflow(config, target)
    mlflow.set_experiment(experiment_id=experiment_id)  # the questions' traces go to the active experiment
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"evaluate v{version}") as run:
        mlflow.set_tags({"airflow.run_id": run_id, "assistant.version": version})
        ours = evaluate_chain(config, target, version, questions, "candidate")
        theirs = (
            evaluate_chain(config, target, champion, questions, "champion")
            if champion and champion != version
            else None
        )
        mlflow.log_metrics(
            {f"candidate.{k}": v for k, v in ours.items()}
            | {f"champion.{k}": v for k, v in (theirs or {}).items()}
        )
        try:
            verdict = verdict_of(config, ours, theirs)
        except NotJudgedError as exc:
            mlflow.set_tag("evaluation.not_judged", str(exc)[:4900])
            raise
        mlflow.log_dict(
            {"candidate": ours, "champion": theirs, "reasons": verdict.reasons}, "evaluation.json"
        )
    status = PASSED if verdict.passed else FAILED
    record = {
        "evaluation.run_id": run.info.run_id,
        "evaluation.metrics": json.dumps(ours, sort_keys=True),
        "evaluation.reasons": "; ".join(verdict.reasons)[:4900] or "none",
        DECISION_TAG: PROMOTE if verdict.promote else KEEP,
        COMPARED_WITH_TAG: champion or "",
    }
    registry.set_tags(version, record)
    registry.set_tags(version, {STATUS_TAG: status})  # last: a reader of the status sees the rest
    if verdict.promote:
        registry.set_alias(CHALLENGER, version)
    else:
        registry.delete_alias(CHALLENGER, only_from=version)
    log.info(
        "%s v%s: %s, %s (%s)",
        target.registered_model_name,
        version,
        status,
        record[DECISION_TAG],
        record["evaluation.reasons"],
    )
    return _outcome(target, version, {**tags, **record, STATUS_TAG: status}, champion, changed=True)


def _outcome(
    target: ModelTarget, version: str, tags: dict[str, str], champion: str | None, changed: bool
) -> dict[str, Any]:
    return {
        "model_name": target.registered_model_name,
        "version": str(version),
        "status": tags.get(STATUS_TAG),
        "decision": tags.get(DECISION_TAG),
        "champion": champion,
        "changed": changed,
        "metrics": json.loads(tags.get("evaluation.metrics") or "{}"),
        "reasons": tags.get("evaluation.reasons"),
    }


def latest_version(registry: ModelRegistry) -> str:
    versions = registry.client.search_model_versions(f"name='{registry.model_name}'")
    if not versions:
        raise BadInputError(f"{registry.model_name} has no version: run the assistant's build first")
    return str(max(int(v.version) for v in versions))
