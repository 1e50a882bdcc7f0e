"""The retraining policy: N of the last M windows, the latest included, and a cooldown."""

from __future__ import annotations

from datetime import date, timedelta

from jobs.config.monitoring import RetrainingPolicy
from jobs.modeling.retraining import decide, window_statuses

POLICY = RetrainingPolicy(violations=2, of_last=3, cooldown_days=7)
DAY = timedelta(days=1)


def rows(*violations: str | None, start: date = date(2013, 7, 1)) -> list[dict]:
    """One daily window per entry: the metric that violated in it (None: a clean window)."""
    out = []
    for i, metric in enumerate(violations):
        day = start + i * DAY
        for name in ("dataset_drift_share", "prediction_drift", "quality.roc_auc"):
            out.append(
                {
                    "window_start": day,
                    "window_end": day + DAY,
                    "metric": name,
                    "column": None,
                    "value": 0.9 if name == metric else 0.01,
                    "violated": name == metric,
                }
            )
        out.append(
            {
                "window_start": day,
                "window_end": day + DAY,
                "metric": "feature_drift",
                "column": "temp",
                "value": 3.0,
                "violated": True,
            }
        )  # per-feature rows do not count on their own
    return out


def test_n_of_the_last_m_windows_with_the_latest_violating():
    statuses = window_statuses(rows(None, "dataset_drift_share", "quality.roc_auc"), POLICY)
    decision = decide(statuses, date(2013, 7, 4), POLICY, None)
    assert decision.retrain and decision.ready
    assert decision.windows == ["[2013-07-02, 2013-07-03)", "[2013-07-03, 2013-07-04)"]
    assert "data_drift" not in decision.reason and "dataset_drift_share" in decision.reason
    assert decision.values["[2013-07-03, 2013-07-04)"]["quality.roc_auc"] == 0.9


def test_the_latest_window_must_violate_and_one_is_not_enough():
    assert not decide(
        window_statuses(rows("prediction_drift", "dataset_drift_share", None), POLICY),
        date(2013, 7, 4),
        POLICY,
        None,
    ).retrain
    lone = decide(
        window_statuses(rows(None, None, "prediction_drift"), POLICY), date(2013, 7, 4), POLICY, None
    )
    assert not lone.retrain and "1 of the last 3 windows violate; the policy needs 2" in lone.reason
    # Older violations fall out of the last M windows.
    old = window_statuses(rows("dataset_drift_share", None, None, "dataset_drift_share"), POLICY)
    assert not decide(old, date(2013, 7, 5), POLICY, None).retrain


def test_cooldown_after_the_last_drift_retrain_counts_in_data_time():
    statuses = window_statuses(
        rows("dataset_drift_share", "dataset_drift_share", "dataset_drift_share"), POLICY
    )
    cooling = decide(statuses, date(2013, 7, 4), POLICY, last_retrain_end=date(2013, 6, 30))
    assert not cooling.retrain and "cooldown" in cooling.reason and "2013-07-07" in cooling.reason
    assert decide(statuses, date(2013, 7, 4), POLICY, last_retrain_end=date(2013, 6, 27)).retrain


def test_only_the_checks_the_policy_watches_count_and_unmonitored_windows_are_not_ready():
    quality_only = RetrainingPolicy(violations=1, of_last=1, cooldown_days=0, checks=["quality"])
    statuses = window_statuses(rows("dataset_drift_share", "quality.roc_auc"), quality_only)
    assert not decide(statuses, date(2013, 7, 2), quality_only, None).retrain
    assert decide(statuses, date(2013, 7, 3), quality_only, None).retrain
    pending = decide(statuses, date(2013, 7, 9), quality_only, None)
    assert not pending.ready and "not been monitored yet" in pending.reason


def test_a_window_violates_when_any_watched_source_does_and_unwatched_sources_do_not_count():
    batch = rows(None, None, None)  # rows without a source: batch and streaming predictions
    online = [
        {**row, "source": "inference_log"} for row in rows(None, "dataset_drift_share", "prediction_drift")
    ]
    end = date(2013, 7, 4)
    both = window_statuses(batch + online, POLICY, ["predictions", "inference_log"])
    decision = decide(both, end, POLICY, None)
    assert decision.retrain and decision.windows == ["[2013-07-02, 2013-07-03)", "[2013-07-03, 2013-07-04)"]
    assert "inference_log.prediction_drift" in decision.reason
    latest = decision.values["[2013-07-03, 2013-07-04)"]
    assert latest["inference_log.prediction_drift"] == 0.9 and latest["prediction_drift"] == 0.01
    # The same rows, with only batch predictions watched: a quiet history.
    assert not decide(window_statuses(batch + online, POLICY), end, POLICY, None).retrain
    # An endpoint without traffic in a window: monitored (ready), nothing violated.
    quiet = [
        {
            "window_start": end,
            "window_end": end + DAY,
            "source": "inference_log",
            "metric": "rows",
            "column": None,
            "value": 0.0,
            "violated": False,
        }
    ]
    decision = decide(window_statuses(quiet, POLICY, ["inference_log"]), end + DAY, POLICY, None)
    assert decision.ready and not decision.retrain
