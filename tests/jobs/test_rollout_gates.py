"""The rollout's gates as pure policy: the load test's verdict and a canary step's."""

from __future__ import annotations

from jobs.common.rollout_gates import (
    ArmFigures,
    CanaryLimits,
    LoadFigures,
    LoadLimits,
    canary_verdict,
    load_test_verdict,
)  # fmt: skip

LIMITS = LoadLimits(max_p99_ratio=1.2, max_error_rate=0.0, max_p99_ms=500, min_rps=10)
CANARY = CanaryLimits(min_requests=100, max_error_rate_diff=0.01, max_p99_ratio=1.5, max_prediction_drift=0.5)


def figures(p99: float, failures: int = 0, rps: float = 100) -> LoadFigures:
    return LoadFigures(
        requests=1000, failures=failures, rps=rps, p50_ms=p99 / 2, p95_ms=p99 * 0.9, p99_ms=p99
    )


def test_the_load_test_names_every_figure_that_failed():
    assert load_test_verdict(figures(20), figures(18), LIMITS).passed
    slow = load_test_verdict(figures(30), figures(18), LIMITS)
    assert not slow.passed and slow.reason == "load test failed: p99 30 ms > 1.2 x the Champion's 18 ms"
    bad = load_test_verdict(figures(600, failures=5, rps=5), None, LIMITS)
    assert bad.reason == ("load test failed: error rate 0.50% > 0.00%; p99 600 ms > 500 ms; "
                          "throughput 5 req/s < 10 req/s")  # fmt: skip
    assert load_test_verdict(figures(20), None, LIMITS).passed  # no Champion yet: the absolute limits


def arm(requests: int, errors: int = 0, p99: float = 10, shift: float = 0.0) -> ArmFigures:
    return ArmFigures(requests, errors, p99, tuple(0.2 + shift + (i % 10) / 50 for i in range(requests)))


def test_a_canary_waits_for_traffic_breaches_on_errors_at_once_and_passes_within_limits():
    assert canary_verdict(arm(1000), arm(40), CANARY).state == "wait"
    early = canary_verdict(arm(1000), arm(40, errors=5), CANARY)  # before min_requests: errors breach at once
    assert early.state == "breach" and "error rate 12.50%" in early.reason
    assert canary_verdict(arm(1000), arm(200, errors=1), CANARY).state == "pass"  # 0.5 %: within 1 %
    slow = canary_verdict(arm(1000, p99=10), arm(200, p99=16), CANARY)
    assert slow.state == "breach" and "p99 16 ms > 1.5 x the Champion's 10 ms" in slow.reason
    drifted = canary_verdict(arm(1000), arm(200, shift=0.3), CANARY)
    assert drifted.state == "breach" and "prediction drift between the arms" in drifted.reason
    assert canary_verdict(arm(1000), arm(200, shift=0.01), CANARY).state == "pass"
