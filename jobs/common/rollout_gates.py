"""The rollout's gates as pure policy: the staging load test (a candidate against the Champion
measured in the same run) and a canary step (the candidate's arm against the Champion's, from the
inference table). Thin adapters (``jobs.load_test``, ``jobs.rollout``) measure and record."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


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
    return Verdict(True, f"load test passed: p99 {candidate.p99_ms:g} ms{versus}, {candidate.rps:g} req/s, "
                         f"{candidate.failures} errors", figures)  # fmt: skip


@dataclass(frozen=True)
class ArmFigures:
    """One arm's answered traffic since a canary step began (from the inference table)."""

    requests: int
    errors: int
    p99_ms: float
    predictions: tuple[float, ...] = ()

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    def summary(self) -> dict[str, Any]:
        return {"requests": self.requests, "errors": self.errors, "error_rate": round(self.error_rate, 6),
                "p99_ms": self.p99_ms, "mean_prediction": round(sum(self.predictions) / len(self.predictions), 6)
                if self.predictions else None}  # fmt: skip


@dataclass(frozen=True)
class CanaryLimits:
    min_requests: int  # the candidate's answered requests before a step is judged
    max_error_rate_diff: float  # the candidate's error rate minus the Champion's
    max_p99_ratio: float
    max_prediction_drift: float  # normed Wasserstein distance between the arms' predictions


@dataclass(frozen=True)
class CanaryVerdict:
    state: str  # "wait" (too few requests yet), "pass" or "breach"
    reason: str
    figures: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def prediction_drift(champion: tuple[float, ...], candidate: tuple[float, ...]) -> float:
    """Wasserstein distance between the arms' predictions, in units of the Champion's spread."""
    from scipy.stats import wasserstein_distance

    if len(champion) < 2 or len(candidate) < 2:
        return 0.0
    mean = sum(champion) / len(champion)
    spread = (sum((p - mean) ** 2 for p in champion) / (len(champion) - 1)) ** 0.5
    return float(wasserstein_distance(champion, candidate)) / max(spread, 1e-9)


def canary_verdict(champion: ArmFigures, candidate: ArmFigures, limits: CanaryLimits) -> CanaryVerdict:
    """Errors breach at once (a step never waits for more failures than the limit allows); the rest
    is judged once the candidate answered ``min_requests``: error rate difference, p99 ratio, and the
    drift between the arms' predictions."""
    figures = {"champion": champion.summary(), "candidate": candidate.summary()}
    excess = candidate.error_rate - champion.error_rate
    allowed_errors = limits.max_error_rate_diff * max(candidate.requests, limits.min_requests)
    if (
        candidate.errors > allowed_errors + champion.error_rate * candidate.requests
        and excess > limits.max_error_rate_diff
    ):
        return CanaryVerdict("breach", f"candidate error rate {candidate.error_rate:.2%} exceeds the Champion's "
                                       f"{champion.error_rate:.2%} by more than {limits.max_error_rate_diff:.2%}",
                             figures)  # fmt: skip
    if candidate.requests < limits.min_requests:
        return CanaryVerdict(
            "wait", f"{candidate.requests} of {limits.min_requests} candidate requests", figures
        )
    failed = []
    if champion.p99_ms > 0 and candidate.p99_ms > limits.max_p99_ratio * champion.p99_ms:
        failed.append(
            f"p99 {candidate.p99_ms:g} ms > {limits.max_p99_ratio:g} x the Champion's {champion.p99_ms:g} ms"
        )
    drift = prediction_drift(champion.predictions, candidate.predictions)
    figures["prediction_drift"] = round(drift, 4)
    if drift > limits.max_prediction_drift:
        failed.append(f"prediction drift between the arms {drift:.2f} > {limits.max_prediction_drift:g}")
    if failed:
        return CanaryVerdict("breach", "; ".join(failed), figures)
    return CanaryVerdict("pass", f"candidate within limits over {candidate.requests} requests "
                                 f"(errors {candidate.error_rate:.2%} vs {champion.error_rate:.2%}, "
                                 f"p99 {candidate.p99_ms:g} vs {champion.p99_ms:g} ms, drift {drift:.2f})", figures)  # fmt: skip
