"""The assistant's evaluation gate and answer parsing as pure policy."""

from __future__ import annotations

import pytest

from jobs.assistant.chain import Passage, citations_in, extractive_answer, render_prompt
from jobs.assistant.gate import (
    GateLimits,
    NotJudgedError,
    citation_correct,
    gate_verdict,
    groundedness,
    labelled_questions,
    retrieval_scores,
    summary,
)
from jobs.core.errors import TransientError

LIMITS = GateLimits(
    {"recall_at_k": 0.8, "mrr": 0.6, "groundedness": 0.9, "citation_correctness": 0.8}, 2000, 0.02
)
GOOD = {
    "recall_at_k": 1.0,
    "mrr": 0.9,
    "groundedness": 1.0,
    "citation_correctness": 0.9,
    "p95_latency_ms": 40,
}


def test_retrieval_groundedness_and_citations_are_scored_per_question():
    assert retrieval_scores(["if", "for", "while"], ("while",)) == (1.0, pytest.approx(1 / 3))
    assert retrieval_scores(["if"], ("while",)) == (0.0, 0.0)
    passage = "The break statement terminates the nearest enclosing loop."
    assert groundedness("Break terminates the nearest enclosing loop. [break]", [passage], ["break"]) == 1.0
    assert groundedness("Break terminates the loop. Python was named after Monty Python.", [passage]) == 0.5
    assert citation_correct(["break"], ["break", "for"], ("break",)) == 1.0
    assert (
        citation_correct(["lambda"], ["break"], ("break", "lambda")) == 0.0
    )  # cites what it did not retrieve
    assert citation_correct([], ["break"], ("break",)) == 0.0


def test_only_document_ids_count_as_citations_and_extractive_answers_cite_their_passages():
    text = 'lambda_expr ::= "lambda" [parameter_list] ":" expression. Lambdas create functions. [lambda]'
    assert citations_in(text, {"lambda", "for"}) == ["lambda"]  # the grammar's brackets are not citations
    passages = [
        Passage("c1", "break", "The break statement ends the loop. It may occur in for or while loops.", 0.9),
        Passage("c2", "pass", "Pass is a null operation.", 0.8),
    ]
    answer = extractive_answer("How does the break statement end a loop?", passages, sentences=1)
    assert answer == "The break statement ends the loop. [break]"
    prompt = render_prompt("Q: {{question}}\n{{context}}", "why?", passages)
    assert prompt.startswith("Q: why?\n[break] The break statement") and "[pass] Pass is" in prompt


def test_the_gate_holds_floors_latency_and_no_worse_than_the_champion():
    assert gate_verdict(GOOD, None, LIMITS).promote
    low = gate_verdict({**GOOD, "groundedness": 0.5, "p95_latency_ms": 2500}, None, LIMITS)
    assert not low.passed and low.reasons == [
        "groundedness 0.500 < floor 0.9",
        "p95 latency 2500 ms > 2000 ms",
    ]
    worse = gate_verdict(
        {**GOOD, "recall_at_k": 0.9}, GOOD, LIMITS
    )  # passes its floors, loses to the Champion
    assert (
        worse.passed
        and not worse.promote
        and worse.reasons == ["recall_at_k 0.900 < Champion's 1.000 - 0.02"]
    )
    assert gate_verdict({**GOOD, "recall_at_k": 0.99}, GOOD, LIMITS).promote  # within the tolerance


@pytest.mark.parametrize(
    "metric", ["recall_at_k", "mrr", "groundedness", "citation_correctness", "p95_latency_ms"]
)
def test_a_figure_that_could_not_be_computed_is_not_judged_never_passed(metric):
    """Every scorer failed under a busy tracking store: NaN everywhere, and NaN < floor is False, so
    the floors let it through. Such a candidate (or Champion) is not judged: retried, not passed."""
    for broken in (float("nan"), None, float("inf")):
        with pytest.raises(
            NotJudgedError, match=f"not judged: the candidate's {metric} could not be computed"
        ):
            gate_verdict({**GOOD, metric: broken}, None, LIMITS)
        with pytest.raises(NotJudgedError, match=f"the Champion's {metric}"):
            gate_verdict(GOOD, {**GOOD, metric: broken}, LIMITS)
    assert issubclass(NotJudgedError, TransientError)  # a retryable exit, not a failed gate
    scores = [{"recall_at_k": 1.0, "mrr": 1.0, "groundedness": 1.0}]  # a scorer that left no value
    with pytest.raises(NotJudgedError, match="citation_correctness, p95_latency_ms"):
        gate_verdict(summary(scores, []), None, LIMITS)


def test_latency_is_judged_against_the_champions_in_the_same_run():
    """A busy machine slowed a good chain to p95 2712 ms against an absolute 2000 ms: FAILED. Both
    chains are measured in one run, so the candidate is judged against the Champion's p95 (2x +
    100 ms), the absolute limit only a ceiling."""
    busy = {**GOOD, "p95_latency_ms": 2712}
    assert (
        gate_verdict(busy, {**GOOD, "p95_latency_ms": 2500}, LIMITS).passed is False
    )  # LIMITS' ceiling: 2000
    limits = GateLimits(LIMITS.floors, 10_000, 0.02)
    assert gate_verdict(busy, {**GOOD, "p95_latency_ms": 2500}, limits).promote
    slower = gate_verdict(busy, {**GOOD, "p95_latency_ms": 900}, limits)
    assert not slower.passed and slower.reasons == [
        "p95 latency 2712 ms > 2 x the Champion's 900 ms + 100 ms (1900 ms)"
    ]
    assert gate_verdict(
        {**GOOD, "p95_latency_ms": 130}, {**GOOD, "p95_latency_ms": 20}, limits
    ).passed  # noise
    assert not gate_verdict(
        {**GOOD, "p95_latency_ms": 12_000}, None, limits
    ).passed  # the ceiling holds alone


def test_the_questions_file_is_checked_entry_by_entry():
    assert (
        labelled_questions([{"question": " What  is\nit? ", "relevant": ["a"]}], "q.yaml")[0].question
        == "What is it?"
    )
    with pytest.raises(ValueError, match="q.yaml: entry 1 needs a question and its relevant documents"):
        labelled_questions([{"question": "a", "relevant": ["x"]}, {"question": "b"}], "q.yaml")
    with pytest.raises(ValueError, match="a non-empty list"):
        labelled_questions({}, "q.yaml")


def test_the_monitoring_policy_reindexes_on_failing_retrieval_and_reevaluates_on_drift_staleness_or_ratings():
    import numpy as np

    from jobs.assistant.monitoring_policy import REEVALUATE, REINDEX, decide, uncovered_share
    from jobs.config.assistant import AssistantMonitoringPolicy

    policy = AssistantMonitoringPolicy()
    calm = {
        "requests": 100,
        "no_answer_rate": 0.05,
        "top_score_p50": 0.86,
        "feedback_rate": 0.1,
        "mean_rating": 4.2,
        "uncovered_share": 0.1,
    }
    assert decide(calm, policy, 3, 3).action == "none"
    assert decide({**calm, "no_answer_rate": 0.4}, policy, 3, 3).action == REINDEX
    stale = decide(calm, policy, 2, 3)
    assert stale.action == REEVALUATE and stale.reasons == [
        "the Champion answers from index v2, the knowledge base is at v3"
    ]
    drifted = decide({**calm, "uncovered_share": 0.6}, policy, 3, 3)
    assert drifted.action == REEVALUATE and "extend the labelled questions" in drifted.reasons[0]
    assert decide({**calm, "mean_rating": 2.1}, policy, 3, 3).action == REEVALUATE  # 10 ratings ≥ min_ratings
    assert (
        decide({**calm, "mean_rating": 2.1, "feedback_rate": 0.02}, policy, 3, 3).action == "none"
    )  # 2 ratings
    quiet = decide({**calm, "requests": 3, "no_answer_rate": 1.0}, policy, 3, 3)
    assert quiet.action == "none" and "not judged" in quiet.reasons[0]
    eye = np.eye(4, dtype=np.float32)
    assert uncovered_share(eye[:2], eye[:1], 0.9) == 0.5 and uncovered_share(eye[:0], eye, 0.9) == 0.0
