"""The assistant's evaluation gate as pure policy: per-question scores on the labelled questions
(retrieval hit and reciprocal rank, groundedness, citation correctness), their summary, and the
verdict — floors from config and "no worse than the Champion" on the same questions in one run."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import yaml

from jobs.assistant.chain import SENTENCE_END, without_citations, words
from jobs.core.errors import BadInputError, TransientError

METRICS = ("recall_at_k", "mrr", "groundedness", "citation_correctness")  # higher is better
SUPPORTED_SHARE = 0.6  # of a sentence's words that one retrieved passage must hold


@dataclass(frozen=True)
class LabelledQuestion:
    question: str
    relevant: tuple[str, ...]  # the documents whose passages answer it


def retrieval_scores(retrieved: list[str], relevant: tuple[str, ...]) -> tuple[float, float]:
    """(1 if a relevant document is among the retrieved passages' documents else 0, the reciprocal
    rank of the first relevant one)."""
    for rank, doc in enumerate(retrieved, start=1):
        if doc in relevant:
            return 1.0, 1.0 / rank
    return 0.0, 0.0


def groundedness(answer: str, passages: list[str], cited: list[str] = ()) -> float:
    """The share of the answer's sentences that one retrieved passage supports (at least
    ``SUPPORTED_SHARE`` of the sentence's words in it); its ``cited`` markers are not its words."""
    sentences = [s for s in SENTENCE_END.split(without_citations(answer, set(cited))) if words(s)]
    if not sentences:
        return 0.0
    held = [words(p) for p in passages]
    supported = sum(
        any(len(words(s) & h) >= SUPPORTED_SHARE * len(words(s)) for h in held) for s in sentences
    )
    return supported / len(sentences)


def citation_correct(citations: list[str], retrieved: list[str], relevant: tuple[str, ...]) -> float:
    """1 when the answer cites only retrieved passages and at least one relevant document."""
    return float(
        bool(citations) and set(citations) <= set(retrieved) and bool(set(citations) & set(relevant))
    )


def question_scores(answer: dict[str, Any], labelled: LabelledQuestion) -> dict[str, float]:
    """One answer's scores (``answer``: the chain's output with ``passages`` as dicts)."""
    docs = [p["doc_id"] for p in answer["passages"]]
    hit, reciprocal = retrieval_scores(docs, labelled.relevant)
    return {
        "recall_at_k": hit,
        "mrr": reciprocal,
        "groundedness": groundedness(
            answer["answer"], [p["text"] for p in answer["passages"]], answer["citations"]
        ),
        "citation_correctness": citation_correct(answer["citations"], docs, labelled.relevant),
    }


class NotJudgedError(TransientError):
    """A figure of the gate could not be computed (a scorer or the tracking store failed): the
    version is not judged — an infrastructure error, retried — never passed."""


@dataclass(frozen=True)
class GateLimits:
    floors: dict[str, float]  # metric -> minimum
    max_p95_latency_ms: float  # a generous ceiling: what no machine, busy or not, excuses
    max_regression: float  # per metric, against the Champion on the same questions
    max_p95_ratio: float = 2.0  # p95 against the Champion's, measured in the same run ...
    latency_slack_ms: float = 100.0  # ... plus this: tens of milliseconds are noise, not a regression


def not_computed(figures: dict[str, float] | None, names: tuple[str, ...]) -> list[str]:
    """The figures of ``names`` that are missing or not a finite number."""
    if figures is None:
        return []
    return [n for n in names if not isinstance(figures.get(n), int | float) or not math.isfinite(figures[n])]


@dataclass(frozen=True)
class GateVerdict:
    passed: bool
    promote: bool  # passed and no worse than the Champion
    reasons: list[str] = field(default_factory=list)


def gate_verdict(
    candidate: dict[str, float], champion: dict[str, float] | None, limits: GateLimits
) -> GateVerdict:
    """Floors and the latency limits decide ``passed``; a passed candidate no worse than the Champion
    (by ``max_regression`` on every metric) is promoted. Latency is judged against the Champion's of
    the same run (a busy machine slows both), the absolute limit only as a ceiling. A figure that
    could not be computed raises ``NotJudgedError``: no verdict at all."""
    names = (*dict.fromkeys((*METRICS, *limits.floors)), "p95_latency_ms")
    missing = {
        role: not_computed(figures, names)
        for role, figures in (("candidate", candidate), ("Champion", champion))
    }
    if any(missing.values()):
        shown = "; ".join(f"the {role}'s {', '.join(which)}" for role, which in missing.items() if which)
        raise NotJudgedError(
            f"not judged: {shown} could not be computed (a scorer or the tracking store failed)"
        )
    reasons = [
        f"{m} {candidate[m]:.3f} < floor {floor:g}"
        for m, floor in limits.floors.items()
        if not candidate[m] >= floor
    ]
    p95 = candidate["p95_latency_ms"]
    if p95 > limits.max_p95_latency_ms:
        reasons.append(f"p95 latency {p95:.0f} ms > {limits.max_p95_latency_ms:g} ms")
    elif champion and p95 > (
        bound := limits.max_p95_ratio * champion["p95_latency_ms"] + limits.latency_slack_ms
    ):
        reasons.append(
            f"p95 latency {p95:.0f} ms > {limits.max_p95_ratio:g} x the Champion's "
            f"{champion['p95_latency_ms']:.0f} ms + {limits.latency_slack_ms:g} ms ({bound:.0f} ms)"
        )
    if reasons:
        return GateVerdict(False, False, reasons)
    worse = [
        f"{m} {candidate[m]:.3f} < Champion's {champion[m]:.3f} - {limits.max_regression:g}"
        for m in METRICS
        if champion and not candidate[m] >= champion[m] - limits.max_regression
    ]
    return GateVerdict(True, not worse, worse)


def summary(scores: list[dict[str, float]], latencies: list[float]) -> dict[str, float]:
    """Mean of each metric over the questions, and the p95 latency; NaN where a question's score
    (or every latency) is missing: the gate then does not judge."""

    nan = float("nan")
    means = {m: round(float(np.mean([s.get(m, nan) for s in scores])), 4) if scores else nan for m in METRICS}
    return {**means, "p95_latency_ms": round(float(np.percentile(latencies, 95)), 1) if latencies else nan}


def labelled_questions(raw: Any, where: str) -> list[LabelledQuestion]:
    """The questions file's entries (``- question: ...`` / ``relevant: [doc ids]``), checked."""
    if not isinstance(raw, list) or not raw:
        raise ValueError(f"{where}: a non-empty list of questions is expected")
    out = []
    for i, item in enumerate(raw):
        if (
            not isinstance(item, dict)
            or not str(item.get("question", "")).strip()
            or not item.get("relevant")
        ):
            raise ValueError(f"{where}: entry {i} needs a question and its relevant documents")
        out.append(
            LabelledQuestion(
                re.sub(r"\s+", " ", str(item["question"])).strip(), tuple(str(d) for d in item["relevant"])
            )
        )
    return out


def load_questions(config) -> list[LabelledQuestion]:
    """The assistant's labelled questions (``assistant.questions_file``), checked."""

    path = config.assistant.file(config.assistant.questions_file)
    if not path.is_file():
        raise BadInputError(f"the assistant's labelled questions {path} are missing")
    try:
        return labelled_questions(yaml.safe_load(path.read_text()), str(path))
    except ValueError as exc:
        raise BadInputError(str(exc)) from None
