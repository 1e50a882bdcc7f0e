"""The rollout's gates as pure policy: the load test's verdict and a canary step's."""

from __future__ import annotations

import pytest

from jobs.release.gates import (
    ArmFigures,
    CanaryLimits,
    LoadFigures,
    LoadLimits,
    canary_verdict,
    load_test_verdict,
)

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
    assert bad.reason == (
        "load test failed: error rate 0.50% > 0.00%; p99 600 ms > 500 ms; throughput 5 req/s < 10 req/s"
    )
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
    thin = canary_verdict(arm(3, p99=5), arm(200, p99=16, shift=0.3), CANARY)  # 3 rows are no baseline
    assert thin.state == "pass" and "not compared: the Champion answered 3 requests" in thin.reason
    assert canary_verdict(arm(3), arm(200, errors=10), CANARY).state == "breach"  # errors still count


def test_latency_is_compared_only_with_a_champion_answering_at_the_same_time():
    """A baseline from before the step (``concurrent=False``) answered under another moment's load:
    p99 is then held to the ceiling alone; errors and drift are still compared with it."""
    ceiling = CanaryLimits(
        min_requests=100, max_error_rate_diff=0.01, max_p99_ratio=1.5, max_prediction_drift=0.5, max_p99_ms=50
    )
    same_time = canary_verdict(arm(1000, p99=10), arm(200, p99=30), ceiling)
    assert same_time.state == "breach" and "p99 30 ms > 1.5 x the Champion's 10 ms" in same_time.reason
    earlier = canary_verdict(arm(1000, p99=10), arm(200, p99=30), ceiling, concurrent=False)
    assert earlier.state == "pass" and "p99 30 ms within the 50 ms ceiling" in earlier.reason
    over = canary_verdict(arm(1000, p99=10), arm(200, p99=60), ceiling, concurrent=False)
    assert over.state == "breach" and over.reason == "p99 60 ms > the 50 ms ceiling"
    drifted = canary_verdict(arm(1000), arm(200, shift=0.3), ceiling, concurrent=False)
    assert drifted.state == "breach" and "prediction drift between the arms" in drifted.reason
    assert canary_verdict(arm(1000), arm(200, p99=60), ceiling).reason.startswith("p99 60 ms > the 50 ms")


def test_the_online_report_compares_arms_pairs_the_shadow_and_scores_labelled_rows():
    import pandas as pd

    from jobs.serving.online_report import arm_metrics, arm_quality, shadow_agreement

    rows = pd.DataFrame(
        [
            # request, row, route, status, latency, prediction, label
            ("a", 0, "champion", 200, 10.0, 0.9, 1),
            ("a", 0, "shadow", 200, 50.0, 0.8, 1),
            ("b", 0, "champion", 200, 12.0, 0.2, 0),
            ("b", 0, "shadow", 200, 40.0, 0.6, 1),
            ("c", 0, "candidate", 200, 20.0, 0.7, 1),
            ("c", 1, "candidate", 200, 20.0, 0.1, 0),
            ("d", 0, "candidate", 500, 30.0, None, None),
            ("e", 0, "none", 400, 1.0, None, None),
        ],
        columns=["request_id", "row_index", "route", "status", "latency_ms", "prediction", "predicted_label"],
    )
    arms = arm_metrics(rows)
    assert set(arms) == {"champion", "candidate"}  # the shadow and unrouted requests aside
    assert arms["candidate"]["requests"] == 2 and arms["candidate"]["server_errors"] == 1  # c (2 rows), d
    assert arms["champion"]["prediction_mean"] == pytest.approx(0.55)
    assert shadow_agreement(rows) == {
        "pairs": 2.0,
        "label_agreement": 0.5,
        "mean_abs_difference": pytest.approx(0.25),
    }
    labelled = rows[rows.status == 200].assign(is_late=[1, 1, 0, 0, 1, 1])
    quality = arm_quality(labelled[labelled.route != "shadow"], "is_late")
    assert quality["champion"] == {"labelled_rows": 2.0, "accuracy": 1.0, "roc_auc": 1.0}
    assert quality["candidate"]["accuracy"] == 0.5 and "roc_auc" not in quality["candidate"]  # one class


def test_labelled_rows_judge_accuracy_by_its_interval_and_a_shadow_by_its_agreement():
    limits = CanaryLimits(
        min_requests=100,
        max_error_rate_diff=0.01,
        max_p99_ratio=1.5,
        max_prediction_drift=5,
        max_accuracy_drop=0.02,
        min_labelled=50,
        min_agreement=0.9,
    )
    champion = ArmFigures(1000, 0, 10, arm(1000).predictions, labelled=1000, correct=850)
    worse = ArmFigures(1000, 0, 10, arm(1000).predictions, labelled=1000, correct=750)  # 10 points down
    verdict = canary_verdict(champion, worse, limits)
    assert (
        verdict.state == "breach" and "accuracy -0.100 against the Champion, 95 % interval" in verdict.reason
    )
    noisy = ArmFigures(200, 0, 10, arm(200).predictions, labelled=60, correct=49)  # 0.82 on 60 rows: unsure
    assert canary_verdict(champion, noisy, limits).state == "pass"
    few = ArmFigures(
        200, 0, 10, arm(200).predictions, labelled=20, correct=5
    )  # below min_labelled: not judged
    assert canary_verdict(champion, few, limits).state == "pass"
    shadow = ArmFigures(200, 0, 10, arm(200).predictions)
    assert canary_verdict(champion, shadow, limits, agreement=0.95).state == "pass"
    disagreeing = canary_verdict(champion, shadow, limits, agreement=0.7)
    assert (
        disagreeing.state == "breach"
        and "agrees with the answers on 70.0% of rows < 90%" in disagreeing.reason
    )
