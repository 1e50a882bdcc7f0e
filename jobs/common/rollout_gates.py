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
