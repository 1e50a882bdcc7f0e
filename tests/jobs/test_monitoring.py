"""Monitoring on the test use case's year with a real Evidently run, Delta tables and MLflow:
adjacent winter weeks do not drift, January against July does (the seasons' temperatures), the
calendar feature declared expected to move is reported but not counted, and the retraining policy
triggers only on the second."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from jobs.config.monitoring import RetrainingPolicy
from jobs.core.window import Window
from jobs.modeling.batch_scoring import score_window
from jobs.modeling.monitoring import drift_rows, monitor, record_alert
from jobs.modeling.retraining import DEFAULT_SOURCE, METRICS_TABLE, decide, window_statuses

WINTER = Window(date(2013, 2, 5), date(2013, 2, 12))  # the week after the model's training window
SUMMER = Window(date(2013, 7, 1), date(2013, 7, 8))


@pytest.fixture(scope="module")
def monitored(champion):
    from jobs.features.refresh import JobContext, refresh
    from jobs.features.seed import seed

    config, result, store, client = champion
    seed(config, SUMMER)
    refresh(JobContext(config, store.spark, store, "summer"), SUMMER)
    outcomes = {}
    for name, window in (("winter", WINTER), ("summer", SUMMER)):
        score_window(config, store, window, run_id=f"score-{name}")
        outcomes[name] = monitor(config, store, window, run_id=f"monitor-{name}")
    return config, store, outcomes


def batch_metrics(store):
    """The metrics of the batch predictions this module monitors. The session's store is shared:
    other modules monitor the endpoint's inference log in it (windows of today's date)."""
    rows = store.read_pandas(store.name("monitoring", METRICS_TABLE))
    return rows[rows.source == DEFAULT_SOURCE]


def test_adjacent_winter_weeks_barely_drift_and_january_against_july_does(monitored):
    config, store, outcomes = monitored
    winter, summer = outcomes["winter"], outcomes["summer"]
    assert winter["dataset_drift_share"] < config.monitoring.drift_share <= summer["dataset_drift_share"]
    rows = batch_metrics(store)
    features = rows[rows.metric == "feature_drift"]
    drifted = {day: set(group.column[group.violated]) for day, group in features.groupby("window_start")}
    assert drifted[WINTER.start] == set()
    assert "outdoor_temp" in drifted[SUMMER.start] and not {"site", "model"} & drifted[SUMMER.start]
    # The calendar moved by construction: its row shows the distance, never a violation or a share.
    month = features[features.column == "month"].set_index("window_start")
    assert month.method.str.endswith("expected to move").all() and not month.violated.any()
    assert month.value[SUMMER.start] >= month.threshold[SUMMER.start]
    share = rows[rows.metric == "dataset_drift_share"].set_index("window_start").value[SUMMER.start]
    judged = features[(features.window_start == SUMMER.start) & (features.column != "month")]
    assert share == pytest.approx(judged.violated.mean())
    # Labels have arrived for both weeks (2013 is history): quality is judged per window.
    quality = rows[rows.metric == "quality.roc_auc"].set_index("window_start").value
    assert set(quality.index) == {date(2013, 2, 5), date(2013, 7, 1)} and quality[date(2013, 2, 5)] > 0.6
    # The Evidently report is kept (file and MLflow artifact) and named in the table.
    reports = set(rows.report_path)
    assert reports == {winter["report"], summer["report"]} and all(
        Path(p).stat().st_size > 10_000 for p in reports
    )


def test_the_policy_triggers_only_on_the_summer_window(monitored):
    config, store, _ = monitored
    rows = store.read_pandas(store.name("monitoring", METRICS_TABLE)).to_dict("records")
    policy = RetrainingPolicy(violations=1, of_last=1, cooldown_days=0, checks=["data_drift"])
    statuses = window_statuses(rows, policy)
    assert [s.label for s in statuses] == [str(WINTER), str(SUMMER)]
    assert decide(statuses, WINTER.end, policy, None).retrain is False
    summer = decide(statuses, SUMMER.end, policy, None)
    assert summer.retrain and summer.windows == [str(SUMMER)] and "data_drift" not in summer.reason
    assert "dataset_drift_share" in summer.values[str(SUMMER)]


def test_rerunning_a_window_replaces_its_metrics_and_alerts_are_recorded_once(monitored):
    config, store, outcomes = monitored
    table = store.name("monitoring", METRICS_TABLE)
    before = store.read_pandas(table)
    monitor(config, store, WINTER, run_id="monitor-again")
    after = store.read_pandas(table)
    assert len(after) == len(before) and set(after[after.window_start == WINTER.start].run_id) == {
        "monitor-again"
    }
    decision = {"retrain": True, "reason": "drift", "windows": [str(SUMMER)], "values": {}}
    record_alert(config, store, SUMMER, decision, run_id="r1", training_run_id="drift__2013-07-08")
    record_alert(config, store, SUMMER, decision, run_id="r2", training_run_id="drift__2013-07-08")
    alerts = store.read_pandas(store.name("monitoring", "alerts"))
    assert len(alerts) == 1 and alerts.run_id.tolist() == ["r2"]


def test_a_key_that_is_also_a_feature_is_read_once(monitored):
    """A use case keyed by (entity, day) with the entity also a categorical feature: monitoring read
    the entity twice and MLflow's schema enforcement crashed ('DataFrame' object has no attribute
    'dtype'), exit 1, retried for ten minutes. The key columns and the features are read once."""
    config, store, _ = monitored
    features = config.use_case.features.model_copy(update={"keys": [*config.use_case.features.keys, "site"]})
    keyed = config.model_copy(update={"use_case": config.use_case.model_copy(update={"features": features})})
    assert "site" in keyed.use_case.model.features.categorical
    outcome = monitor(keyed, store, WINTER, run_id="monitor-keyed")
    assert outcome["rows"] > 0 and outcome["dataset_drift_share"] < config.monitoring.drift_share


def test_drift_rows_read_distance_and_p_value_methods_the_right_way():
    snapshot = {
        "metrics": [
            {
                "config": {
                    "type": "evidently:metric_v2:ValueDrift",
                    "column": "a",
                    "method": "Wasserstein distance (normed)",
                    "threshold": 0.1,
                },
                "value": 0.3,
            },
            {
                "config": {
                    "type": "evidently:metric_v2:ValueDrift",
                    "column": "b",
                    "method": "K-S p_value",
                    "threshold": 0.05,
                },
                "value": 0.3,
            },
            {
                "config": {
                    "type": "evidently:metric_v2:ValueDrift",
                    "column": "prediction",
                    "method": "K-S p_value",
                    "threshold": 0.05,
                },
                "value": 0.01,
            },
            {
                "config": {
                    "type": "evidently:metric_v2:DriftedColumnsCount",
                    "columns": ["a", "b"],
                    "drift_share": 0.5,
                },
                "value": {"count": 1.0, "share": 0.5},
            },
        ]
    }
    rows = {(r["metric"], r["column"]): r for r in drift_rows(snapshot, ["a", "b"], drift_share=0.5)}
    assert rows[("feature_drift", "a")]["violated"] and not rows[("feature_drift", "b")]["violated"]
    assert rows[("prediction_drift", "prediction")]["violated"]
    assert (
        rows[("dataset_drift_share", None)]["violated"]
        and rows[("dataset_drift_share", None)]["value"] == 0.5
    )
    with pytest.raises(ValueError, match=r"no result for \['c'\]"):
        drift_rows(snapshot, ["a", "b", "c"], drift_share=0.5)
    # A feature expected to move keeps its row but neither violates nor counts in the share.
    rows = {
        (r["metric"], r["column"]): r for r in drift_rows(snapshot, ["a", "b"], 0.5, expected_to_move=("a",))
    }
    assert not rows[("feature_drift", "a")]["violated"] and rows[("feature_drift", "a")]["value"] == 0.3
    assert (
        rows[("dataset_drift_share", None)]["value"] == 0.0
        and not rows[("dataset_drift_share", None)]["violated"]
    )


OLD_METRICS_SCHEMA = (  # the metrics table before monitoring had sources
    "window_start date, window_end date, metric string, column string, value double, threshold double, "
    "violated boolean, method string, model_name string, model_version string, report_path string, "
    "mlflow_run_id string, run_id string, computed_at timestamp"
)


def test_a_metrics_table_from_before_sources_gains_the_column_and_keeps_its_rows(dev_config):
    """Two monitor tasks (batch and online) write an old metrics table at once, interleaved by hand:
    the online writer looks (no ``source`` column), the batch writer adds it and replaces its window,
    then the online writer adds nothing twice and writes beside it. The old rows of other windows
    stay and count as the predictions'."""
    from jobs.modeling.monitoring import _write_metrics
    from jobs.modeling.retraining import retraining_decision
    from jobs.tablestore import open_table_store

    config = dev_config.model_copy(
        update={
            "monitoring": dev_config.monitoring.model_copy(
                update={"sources": ["predictions", "inference_log"]}
            )
        }
    )
    batch, online = open_table_store(config), open_table_store(config)
    table = batch.name("monitoring", METRICS_TABLE)
    old = [
        {
            "window_start": day,
            "window_end": day + (SUMMER.end - SUMMER.start),
            "metric": "dataset_drift_share",
            "column": None,
            "value": 0.5,
            "threshold": 0.1,
            "violated": True,
            "method": "share",
            "run_id": "old",
        }
        for day in (WINTER.start, SUMMER.start)
    ]
    batch.overwrite(table, batch.small_frame(old, OLD_METRICS_SCHEMA))
    row = {
        "metric": "dataset_drift_share",
        "column": None,
        "value": 0.0,
        "threshold": 0.1,
        "violated": False,
        "method": "share of features",
    }
    real_add = online._add_columns

    def batch_first(name, columns, metadata):  # the online writer found the column missing
        _write_metrics(
            config,
            batch,
            SUMMER,
            "predictions",
            [row],
            version="2",
            report=Path("b.html"),
            mlflow_run_id="m",
            run_id="batch",
        )
        return real_add(name, columns, metadata)

    online._add_columns = batch_first
    _write_metrics(
        config,
        online,
        SUMMER,
        "inference_log",
        [{**row, "value": 0.4, "violated": True}],
        version="2",
        report=Path("o.html"),
        mlflow_run_id="m",
        run_id="online",
    )
    rows = batch.read_pandas(table).sort_values(["window_start", "run_id"])
    assert rows[["window_start", "source", "run_id"]].values.tolist() == [
        [WINTER.start, None, "old"],
        [SUMMER.start, "predictions", "batch"],
        [SUMMER.start, "inference_log", "online"],
    ]
    decision = retraining_decision(config, batch, SUMMER.end)
    assert set(decision["values"][str(SUMMER)]) == {
        "dataset_drift_share",
        "inference_log.dataset_drift_share",
    }
    assert decision["values"][str(WINTER)] == {"dataset_drift_share": 0.5}  # an old row: the predictions'
    # A rerun of the batch window replaces its rows (an old null-source row of it would go too).
    _write_metrics(
        config,
        batch,
        WINTER,
        "predictions",
        [row],
        version="2",
        report=Path("b.html"),
        mlflow_run_id="m",
        run_id="rerun",
    )
    assert batch.read_pandas(table).groupby("window_start").run_id.apply(set).to_dict() == {
        WINTER.start: {"rerun"},
        SUMMER.start: {"batch", "online"},
    }
