"""The assistant's routes on the serving endpoint: ``POST /assistant/ask`` and ``POST /assistant/feedback``.

The chain version answering follows the chain's aliases and ``runway.traffic`` tag exactly as the
model routes do (``ModelFollower``: A/B routes, a shadow, refusal of a version that cannot load),
so a chain's canary and shadow use the same machinery as a model's. Every question is answered
inside an MLflow trace (in the assistant's experiment: retrieval and generation as child spans)
and logged through its own write-ahead log to ``<catalog>.ml.<assistant>_inference_log``
(question, retrieved chunk ids and scores, answer, mode, citations, tokens, cost, latency, trace
id). Feedback (a rating from a user, with a comment) becomes an MLflow feedback assessment on the
request's trace and a row of ``<catalog>.ml.<assistant>_feedback`` (one per request and user:
giving it again replaces it).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NamedTuple

import mlflow
import pyarrow as pa
from mlflow.entities import AssessmentSource, AssessmentSourceType

from jobs.config.traffic import NO_ROUTE, SHADOW, assign
from jobs.core.errors import BadInputError
from jobs.runtime.mlflow_setup import configure_mlflow
from jobs.serving.follower import ModelFollower
from jobs.serving.inference_log import InferenceLog
from jobs.serving.protocol import load_json
from jobs.tablestore.arrow import small_schema

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from jobs.config.env import EnvConfig
    from jobs.serving.follower import ModelFollower, Served
    from jobs.serving.inference_log import InferenceLog
    from jobs.serving.shadow import ShadowWorker
    from jobs.tablestore import TableStore

log = logging.getLogger("runway.serving.assistant")

ASSISTANT_LOG_SCHEMA = (
    "request_id string, requested_at timestamp, route string, model_name string, model_version string, "
    "status int, latency_ms double, error string, user_id string, question string, answer string, mode "
    "string, "
    "no_answer boolean, chunk_ids string, scores string, top_score double, citations string, prompt_tokens "
    "int, "
    "completion_tokens int, cost_usd double, trace_id string"
)
FEEDBACK_SCHEMA = (
    "request_id string, user_id string, rating int, comment string, trace_id string, "
    "model_version string, given_at timestamp"
)
MAX_QUESTION_CHARS = 2000
RECENT_TRACES = 10_000  # request id -> (trace id, version) kept in memory for feedback


def log_table(rows: list[dict[str, Any]]) -> pa.Table:

    schema = small_schema(ASSISTANT_LOG_SCHEMA)
    typed = [{**r, "requested_at": datetime.fromisoformat(r["requested_at"])} for r in rows]
    return pa.Table.from_pylist([{f: r.get(f) for f in schema.names} for r in typed], schema=schema)


def warm_chain(pyfunc, rows: pd.DataFrame) -> None:
    """A chain version's warm-up: it answers its example question (loads the embedder and index)."""
    pyfunc.predict(rows[["question"]].head(1))


def parse_question(body: bytes | None) -> tuple[str, str | None]:
    """(question, user id) of an ask body, or ``BadInputError`` naming what is wrong."""
    payload = load_json(body)
    question = payload.get("question") if isinstance(payload, dict) else None
    if not isinstance(question, str) or not question.strip():
        raise BadInputError("the body needs a non-empty string `question`")
    if len(question) > MAX_QUESTION_CHARS:
        raise BadInputError(f"the question exceeds {MAX_QUESTION_CHARS} characters")
    user = payload.get("user_id")
    return question.strip(), str(user) if user is not None else None


def parse_feedback(body: bytes | None) -> dict[str, Any]:
    payload = load_json(body)
    if not isinstance(payload, dict) or not payload.get("request_id") or not payload.get("user_id"):
        raise BadInputError("feedback needs `request_id` (from the answer) and `user_id`")
    rating = payload.get("rating")
    if not isinstance(rating, int) or isinstance(rating, bool) or not 1 <= rating <= 5:
        raise BadInputError("`rating` must be an integer from 1 to 5")
    return {
        "request_id": str(payload["request_id"]),
        "user_id": str(payload["user_id"]),
        "rating": rating,
        "comment": str(payload.get("comment") or "")[:2000],
    }


@dataclass(frozen=True)
class Asked:
    """A question as it arrived: what each of its log rows (answer, shadow copy) repeats."""

    request_id: str
    at: datetime
    started: float  # perf_counter at arrival: the row's latency
    question: str | None = None
    user: str | None = None


class Outcome(NamedTuple):
    """What a chain made of a question: the answer (None on an error) and its trace."""

    status: int
    answer: dict[str, Any] | None = None
    trace_id: str | None = None
    error: str | None = None


class AssistantEndpoint:
    """What the assistant's routes need: the chain follower, its log, the feedback table."""

    def __init__(
        self,
        config: EnvConfig,
        store: TableStore,
        follower: ModelFollower,
        inference_log: InferenceLog,
        shadow: ShadowWorker,
    ) -> None:
        self.config, self.target = config, config.assistant_target
        self.store, self.follower, self.inference_log, self.shadow = store, follower, inference_log, shadow
        self.feedback_table = store.name("ml", f"{config.assistant.name}_feedback")
        self._traces: OrderedDict[str, tuple[str | None, str]] = OrderedDict()
        self._experiment_id: str | None = None

    def start(self) -> None:

        self._experiment_id = configure_mlflow(self.config, self.target)
        mlflow.set_experiment(experiment_id=self._experiment_id)  # the requests' traces go there
        self.follower.check()
        self.follower.start()

    async def ask(self, body: bytes | None) -> tuple[int, dict[str, Any]]:

        asked = Asked(uuid.uuid4().hex, datetime.now(UTC), time.perf_counter())
        state = self.follower.state
        try:
            question, user = parse_question(body)
        except BadInputError as exc:
            return self._refused(asked, Outcome(400, error=str(exc)))
        asked = replace(asked, question=question, user=user)
        if state is None:
            return self._refused(
                asked,
                Outcome(503, error="no chain version is served yet (the alias has none, or it is loading)"),
            )
        route = assign(state.traffic, user if state.traffic.sticky_key else None)
        served = state.arms[route.name]
        outcome = await asyncio.get_running_loop().run_in_executor(None, self._answer, served, asked)
        self.inference_log.append([self._row(asked, route.name, served, outcome)])
        if outcome.status != 200:
            return outcome.status, {"error": outcome.error, "request_id": asked.request_id}
        self._remember(asked.request_id, outcome.trace_id, served.model.version)
        if state.shadow is not None:
            copy = state.shadow
            self.shadow.submit(
                lambda: self._shadow(copy, replace(asked, started=time.perf_counter()), SHADOW)
            )
        answer = outcome.answer
        return 200, {
            **{k: answer[k] for k in ("answer", "mode", "citations", "no_answer")},
            "request_id": asked.request_id,
            "trace_id": outcome.trace_id,
            "version": served.model.version,
            "route": route.name,
            "passages": [{k: p[k] for k in ("chunk_id", "doc_id", "score")} for p in answer["passages"]],
            "prompt_tokens": answer["prompt_tokens"],
            "completion_tokens": answer["completion_tokens"],
        }

    def _answer(self, served: Served, asked: Asked) -> Outcome:
        """The chain's answer to ``asked`` inside a trace of this request."""

        chain = served.pyfunc.unwrap_python_model().chain
        try:
            with mlflow.start_span(name="assistant.ask", span_type="CHAIN") as span:
                span.set_inputs({"question": asked.question})
                span.set_attributes({"request_id": asked.request_id, "model_version": served.model.version})
                answer = chain.answer(asked.question)
                span.set_outputs({"answer": answer["answer"], "mode": answer["mode"]})
                trace_id = span.trace_id
            return Outcome(200, answer, trace_id)
        except BadInputError as exc:
            return Outcome(400, error=str(exc))
        except Exception as exc:  # the generator or the index failed: the client gets a 502, the log says why
            log.exception("the chain v%s failed", served.model.version)
            return Outcome(502, error=f"{type(exc).__name__}: {str(exc)[:300]}")

    def _shadow(self, served: Served, asked: Asked, route: str) -> None:
        self.inference_log.append([self._row(asked, route, served, self._answer(served, asked))])

    def _refused(self, asked: Asked, outcome: Outcome) -> tuple[int, dict[str, Any]]:
        """An answer without the chain (a bad body, nothing served yet), logged like the others."""
        self.inference_log.append([self._row(asked, NO_ROUTE, None, outcome)])
        return outcome.status, {"error": outcome.error, "request_id": asked.request_id}

    def _row(self, asked: Asked, route: str, served: Served | None, outcome: Outcome) -> dict[str, Any]:
        generator = self.config.assistant.generator
        row = {
            "request_id": asked.request_id,
            "requested_at": asked.at.isoformat(),
            "route": route,
            "status": outcome.status,
            "model_name": self.target.registered_model_name,
            "model_version": served.model.version if served is not None else None,
            "latency_ms": round((time.perf_counter() - asked.started) * 1000, 3),
            "error": outcome.error,
            "user_id": asked.user,
            "question": asked.question,
            "trace_id": outcome.trace_id,
        }
        answer = outcome.answer
        if answer is None:
            return row
        passages = answer["passages"]
        prompt, completion = answer["prompt_tokens"], answer["completion_tokens"]
        cost = (
            (
                prompt * generator.usd_per_1k_prompt_tokens
                + completion * generator.usd_per_1k_completion_tokens
            )
            / 1000
            if prompt is not None and completion is not None
            else None
        )
        return {
            **row,
            "answer": answer["answer"],
            "mode": answer["mode"],
            "no_answer": answer["no_answer"],
            "chunk_ids": json.dumps([p["chunk_id"] for p in passages]),
            "scores": json.dumps([round(p["score"], 4) for p in passages]),
            "top_score": passages[0]["score"] if passages else None,
            "citations": json.dumps(answer["citations"]),
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "cost_usd": cost,
        }

    def _remember(self, request_id: str, trace_id: str | None, version: str) -> None:
        self._traces[request_id] = (trace_id, version)
        while len(self._traces) > RECENT_TRACES:
            self._traces.popitem(last=False)

    async def feedback(self, body: bytes | None) -> tuple[int, dict[str, Any]]:
        try:
            given = parse_feedback(body)
        except BadInputError as exc:
            return 400, {"error": str(exc)}
        return await asyncio.get_running_loop().run_in_executor(None, self._record_feedback, given)

    def _record_feedback(self, given: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """The rating on the request's trace (MLflow feedback) and in Delta (one row per request and user)."""

        trace_id, version = self._traces.get(given["request_id"]) or self._logged(given["request_id"])
        if trace_id is None:
            return 404, {"error": f"no answered request {given['request_id']!r} is known to this endpoint"}
        mlflow.flush_trace_async_logging()  # the answer's trace may still be on its way to the store
        mlflow.log_feedback(
            trace_id=trace_id,
            name="user_rating",
            value=given["rating"],
            rationale=given["comment"] or None,
            source=AssessmentSource(AssessmentSourceType.HUMAN, given["user_id"]),
        )
        row = {**given, "trace_id": trace_id, "model_version": version, "given_at": datetime.now(UTC)}
        self.store.merge(
            self.feedback_table,
            self.store.small_frame([row], FEEDBACK_SCHEMA),
            ["request_id", "user_id"],
            metadata={"job": "serving.assistant_feedback"},
        )
        return 200, {"recorded": True, "request_id": given["request_id"], "trace_id": trace_id}

    def _logged(self, request_id: str) -> tuple[str | None, str]:
        """A request answered before this process started: its trace id from the inference table."""
        table = self.inference_log.table
        if not self.store.exists(table):
            return None, ""
        rows = self.store.read_pandas(
            table, columns=["request_id", "trace_id", "model_version", "status", "route"]
        )
        found = rows[(rows.request_id == request_id) & (rows.status == 200) & (rows.route != "shadow")]
        return (found.trace_id.iloc[0], found.model_version.iloc[0]) if len(found) else (None, "")


def create_assistant_endpoint(
    config: EnvConfig, store: TableStore, shadow: ShadowWorker
) -> AssistantEndpoint:

    target, settings = config.assistant_target, config.serving
    follower = ModelFollower(
        config, target.champion_alias, settings.poll_seconds, warm_up=warm_chain, store=store, target=target
    )
    table = store.name("ml", f"{config.assistant.name}_inference_log")
    folder = settings.wal_dir(config.env).with_name(f"{config.env}-{config.assistant.name}")
    inference_log = InferenceLog(
        folder,
        store,
        table,
        flush_rows=settings.inference_log.flush_rows,
        flush_seconds=settings.inference_log.flush_seconds,
        to_arrow=log_table,
    )
    return AssistantEndpoint(config, store, follower, inference_log, shadow)
