"""The rollout's gates as pure policy: the staging load test (a candidate against the Champion
measured in the same run) and a canary step (the candidate's arm against the Champion's, from the
inference table). Thin adapters (``jobs.load_test``, ``jobs.rollout``) measure and record."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from scipy.stats import wasserstein_distance

from jobs.config.traffic import SHADOW


@dataclass(frozen=True)
class LoadFigures:
    """One bounded load run against one version behind the endpoint."""

    requests: int
    failures: int
    rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float

    @property
    def error_rate(self) -> float:
        return self.failures / self.requests if self.requests else 1.0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "error_rate": round(self.error_rate, 6)}


@dataclass(frozen=True)
class LoadLimits:
    max_p99_ratio: float  # the candidate's p99 <= this x the Champion's, same run
    max_error_rate: float
    max_p99_ms: float  # absolute limits from config
    min_rps: float


@dataclass(frozen=True)
class Verdict:
    passed: bool
    reason: str
    figures: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_test_verdict(candidate: LoadFigures, champion: LoadFigures | None, limits: LoadLimits) -> Verdict:
    """Pass when the candidate answers without errors (within ``max_error_rate``), inside the
    absolute limits, and no slower at p99 than ``max_p99_ratio`` × the Champion's. The reason
    names every figure that failed."""
    failed = []
    if candidate.requests == 0:
        failed.append("the candidate answered no request")
    if candidate.error_rate > limits.max_error_rate:
        failed.append(f"error rate {candidate.error_rate:.2%} > {limits.max_error_rate:.2%}")
    if candidate.p99_ms > limits.max_p99_ms:
        failed.append(f"p99 {candidate.p99_ms:g} ms > {limits.max_p99_ms:g} ms")
    if candidate.rps < limits.min_rps:
        failed.append(f"throughput {candidate.rps:g} req/s < {limits.min_rps:g} req/s")
    if (
        champion is not None
        and champion.p99_ms > 0
        and candidate.p99_ms > limits.max_p99_ratio * champion.p99_ms
    ):
        failed.append(
            f"p99 {candidate.p99_ms:g} ms > {limits.max_p99_ratio:g} x the Champion's {champion.p99_ms:g} ms"
        )
    figures = {"candidate": candidate.as_dict(), "champion": champion.as_dict() if champion else None}
    if failed:
        return Verdict(False, "load test failed: " + "; ".join(failed), figures)
    versus = f" (Champion p99 {champion.p99_ms:g} ms)" if champion else ""
    return Verdict(
        True,
        f"load test passed: p99 {candidate.p99_ms:g} ms{versus}, {candidate.rps:g} req/s, "
        f"{candidate.failures} errors",
        figures,
    )


@dataclass(frozen=True)
class ArmFigures:
    """One arm's answered traffic since a canary step began (from the inference table)."""

    requests: int
    errors: int
    p99_ms: float
    predictions: tuple[float, ...] = ()
    labelled: int = 0  # answered rows whose label is known (joined on the entity's keys) ...
    correct: int = 0  # ... and how many of them the arm's label got right

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "errors": self.errors,
            "error_rate": round(self.error_rate, 6),
            "p99_ms": self.p99_ms,
            "mean_prediction": round(sum(self.predictions) / len(self.predictions), 6)
            if self.predictions
            else None,
        }


@dataclass(frozen=True)
class CanaryLimits:
    min_requests: int  # the candidate's answered requests before a step is judged
    max_error_rate_diff: float  # the candidate's error rate minus the Champion's
    max_p99_ratio: float
    max_prediction_drift: float  # normed Wasserstein distance between the arms' predictions
    max_accuracy_drop: float = 0.02  # breach when the accuracy difference's 95 % interval lies below -this
    min_labelled: int = 50  # labelled rows per arm before accuracy is judged
    min_agreement: float = 0.0  # shadow phase: the share of rows whose label the shadow agrees on
    max_p99_ms: float = float("inf")  # the candidate's p99 ceiling, at every step


@dataclass(frozen=True)
class CanaryVerdict:
    state: str  # "wait" (too few requests yet), "pass" or "breach"
    reason: str
    figures: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _latency_breach(
    champion: ArmFigures, candidate: ArmFigures, limits: CanaryLimits, against_champion: bool
) -> str | None:
    """The candidate's p99 over the ceiling, or (``against_champion``) over the ratio allowed."""
    if candidate.p99_ms > limits.max_p99_ms:
        return f"p99 {candidate.p99_ms:g} ms > the {limits.max_p99_ms:g} ms ceiling"
    if against_champion and champion.p99_ms > 0 and candidate.p99_ms > limits.max_p99_ratio * champion.p99_ms:
        return (
            f"p99 {candidate.p99_ms:g} ms > {limits.max_p99_ratio:g} x the Champion's {champion.p99_ms:g} ms"
        )
    return None


def _ceiling(limits: CanaryLimits) -> str:
    return (
        "without a ceiling"
        if limits.max_p99_ms == float("inf")
        else f"within the {limits.max_p99_ms:g} ms ceiling"
    )


def shadow_pairs(rows):
    """The shadow's answered rows beside the answers they shadowed (pandas: request_id, row_index,
    prediction, predicted_label and their ``_shadow`` twins)."""
    shadow = rows[(rows.route == SHADOW) & (rows.status == 200)]
    answered = rows[(rows.route != SHADOW) & (rows.status == 200)]
    return answered.merge(shadow, on=["request_id", "row_index"], suffixes=("", "_shadow"))


def prediction_drift(champion: tuple[float, ...], candidate: tuple[float, ...]) -> float:
    """Wasserstein distance between the arms' predictions, in units of the Champion's spread."""

    if len(champion) < 2 or len(candidate) < 2:
        return 0.0
    mean = sum(champion) / len(champion)
    spread = (sum((p - mean) ** 2 for p in champion) / (len(champion) - 1)) ** 0.5
    return float(wasserstein_distance(champion, candidate)) / max(spread, 1e-9)


def accuracy_difference(candidate: ArmFigures, champion: ArmFigures) -> tuple[float, float, float] | None:
    """(candidate − Champion accuracy, its 95 % interval's low and high end; normal approximation),
    None when an arm has no labelled rows."""
    if not candidate.labelled or not champion.labelled:
        return None
    p1, p2 = candidate.correct / candidate.labelled, champion.correct / champion.labelled
    half = 1.96 * (p1 * (1 - p1) / candidate.labelled + p2 * (1 - p2) / champion.labelled) ** 0.5
    return p1 - p2, p1 - p2 - half, p1 - p2 + half


def canary_verdict(
    champion: ArmFigures,
    candidate: ArmFigures,
    limits: CanaryLimits,
    agreement: float | None = None,
    concurrent: bool = True,
) -> CanaryVerdict:
    """Errors breach at once (a step never waits for more failures than the limit allows); the rest
    is judged once the candidate answered ``min_requests``: error rate difference, the p99 ceiling,
    and against a Champion arm of at least ``min_requests`` (fewer are no baseline) the drift
    between the arms' predictions and, when the Champion answered at the same time as the candidate
    (``concurrent``; a baseline from before the step met another moment's load), the p99 ratio;
    where labels arrived the accuracy difference with its confidence interval, and in a shadow
    phase the shadow's agreement with the answers."""
    figures = {"champion": champion.summary(), "candidate": candidate.summary()}
    excess = candidate.error_rate - champion.error_rate
    allowed_errors = limits.max_error_rate_diff * max(candidate.requests, limits.min_requests)
    if (
        candidate.errors > allowed_errors + champion.error_rate * candidate.requests
        and excess > limits.max_error_rate_diff
    ):
        return CanaryVerdict(
            "breach",
            f"candidate error rate {candidate.error_rate:.2%} exceeds the Champion's "
            f"{champion.error_rate:.2%} by more than {limits.max_error_rate_diff:.2%}",
            figures,
        )
    if candidate.requests < limits.min_requests:
        return CanaryVerdict(
            "wait", f"{candidate.requests} of {limits.min_requests} candidate requests", figures
        )
    failed, compared = [], champion.requests >= limits.min_requests  # a few rows are no baseline
    if slow := _latency_breach(champion, candidate, limits, compared and concurrent):
        failed.append(slow)
    drift = prediction_drift(champion.predictions, candidate.predictions) if compared else 0.0
    figures["prediction_drift"] = round(drift, 4) if compared else None
    if drift > limits.max_prediction_drift:
        failed.append(f"prediction drift between the arms {drift:.2f} > {limits.max_prediction_drift:g}")
    accuracy = accuracy_difference(candidate, champion)
    if accuracy and min(candidate.labelled, champion.labelled) >= limits.min_labelled:
        diff, low, high = accuracy
        figures["accuracy_difference"] = {"value": round(diff, 4), "ci95": [round(low, 4), round(high, 4)]}
        if high < -limits.max_accuracy_drop:
            failed.append(
                f"accuracy {diff:+.3f} against the Champion, 95 % interval [{low:+.3f}, {high:+.3f}] "
                f"below -{limits.max_accuracy_drop:g}"
            )
    if agreement is not None:
        figures["shadow_agreement"] = round(agreement, 4)
        if agreement < limits.min_agreement:
            failed.append(
                f"the shadow agrees with the answers on {agreement:.1%} of rows < {limits.min_agreement:.0%}"
            )
    if failed:
        return CanaryVerdict("breach", "; ".join(failed), figures)
    if not compared:
        versus = f"p99 and drift not compared: the Champion answered {champion.requests} requests"
    elif concurrent:
        versus = f"p99 {candidate.p99_ms:g} vs {champion.p99_ms:g} ms, drift {drift:.2f}"
    else:
        versus = (
            f"p99 {candidate.p99_ms:g} ms {_ceiling(limits)}, not compared with the Champion's "
            f"from before the step, drift {drift:.2f}"
        )
    return CanaryVerdict(
        "pass",
        f"candidate within limits over {candidate.requests} requests "
        f"(errors {candidate.error_rate:.2%} vs {champion.error_rate:.2%}, {versus})",
        figures,
    )
