"""The assistant's monitoring as pure policy: a window's figures from the endpoint's answered
questions and their feedback, how well the evaluation questions cover the live ones (query drift),
and the decision — re-index (the knowledge base fails the questions) or re-evaluate (the gate's
questions or the Champion's knowledge no longer match what is asked and known).

On the DAG parse path (the DAG factories import it): pyspark, mlflow, pyarrow and the engines are
imported in the functions that use them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from jobs.config.assistant import AssistantMonitoringPolicy

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

NONE, REINDEX, REEVALUATE = "none", "reindex", "reevaluate"


def window_figures(answered: pd.DataFrame, ratings: pd.DataFrame) -> dict[str, float]:
    """Requests, no-answer rate, median top retrieval score, tokens and cost per request (where a
    generator reported them), feedback rate, mean rating and the share of low ratings (≤ 2)."""
    import numpy as np

    n = len(answered)
    tokens = answered.prompt_tokens.fillna(0) + answered.completion_tokens.fillna(0)
    priced = answered.cost_usd.dropna()
    return {
        "requests": float(n),
        "no_answer_rate": float(answered.no_answer.mean()) if n else 0.0,
        "top_score_p50": float(np.nanmedian(answered.top_score)) if answered.top_score.notna().any() else 0.0,
        "tokens_per_request": float(tokens.mean()) if n else 0.0,
        "cost_per_request_usd": float(priced.mean()) if len(priced) else 0.0,
        "feedback_rate": len(ratings) / n if n else 0.0,
        "mean_rating": float(ratings.rating.mean()) if len(ratings) else float("nan"),
        "low_rating_share": float((ratings.rating <= 2).mean()) if len(ratings) else 0.0,
    }


def uncovered_share(live: np.ndarray, reference: np.ndarray, min_similarity: float) -> float:
    """The share of live questions whose most similar evaluation question is below ``min_similarity``
    (cosine; unit vectors): traffic the gate's questions do not represent."""
    if not len(live) or not len(reference):
        return 0.0
    best = (live @ reference.T).max(axis=1)
    return float((best < min_similarity).mean())


@dataclass(frozen=True)
class AssistantDecision:
    action: str  # none | reindex | reevaluate
    reasons: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "act": self.action != NONE}


def decide(
    figures: dict[str, float],
    policy: AssistantMonitoringPolicy,
    champion_index: int | None,
    latest_index: int | None,
) -> AssistantDecision:
    """Re-index when retrieval fails the questions asked (no answer too often, weak top scores);
    else re-evaluate when the Champion answers from an older knowledge snapshot, the live questions
    drifted away from the evaluation set, or users rate the answers low."""
    stale = champion_index is not None and latest_index is not None and champion_index < latest_index
    reasons = (
        [f"the Champion answers from index v{champion_index}, the knowledge base is at v{latest_index}"]
        if stale
        else []
    )
    if figures.get("requests", 0) < policy.min_requests:
        return AssistantDecision(
            REEVALUATE if stale else NONE,
            reasons
            or [f"{figures.get('requests', 0):.0f} answered questions < {policy.min_requests}: not judged"],
        )
    retrieval = []
    if figures["no_answer_rate"] > policy.max_no_answer_rate:
        retrieval.append(f"no-answer rate {figures['no_answer_rate']:.1%} > {policy.max_no_answer_rate:.0%}")
    if figures["top_score_p50"] < policy.min_top_score_p50:
        retrieval.append(f"median top score {figures['top_score_p50']:.3f} < {policy.min_top_score_p50:g}")
    if retrieval:
        return AssistantDecision(REINDEX, retrieval + reasons)
    if figures.get("uncovered_share", 0.0) > policy.max_uncovered_share:
        reasons.append(
            f"{figures['uncovered_share']:.0%} of the questions are unlike the evaluation set's "
            f"(> {policy.max_uncovered_share:.0%}): extend the labelled questions"
        )
    rated = figures["feedback_rate"] * figures["requests"]
    if rated >= policy.min_ratings and figures["mean_rating"] < policy.min_mean_rating:
        reasons.append(
            f"mean rating {figures['mean_rating']:.2f} < {policy.min_mean_rating:g} over {rated:.0f} ratings"
        )
    return AssistantDecision(REEVALUATE if reasons else NONE, reasons)
