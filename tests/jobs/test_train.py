"""Training: time split without leakage, metrics, and a real MLflow run and registered version on
real gold features."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from jobs.core.errors import MissingInputError
from jobs.modeling.estimator import (
    best_threshold,
    build_pipeline,
    calibration_error,
    feature_columns,
    model_inputs,
    permutation_importance_series,
    time_split,
)


def test_time_split_has_no_leakage_across_time():
    days = pd.date_range("2013-01-01", "2013-03-01", freq="D", inclusive="left")
    frame = pd.DataFrame({"reading_date": np.repeat(days.date, 3), "x": range(3 * len(days))})
    parts = time_split(frame, "reading_date", date(2013, 3, 1), validation_days=7, test_days=7)
    assert parts["train"].reading_date.max() < parts["validation"].reading_date.min()
    assert parts["validation"].reading_date.max() < parts["test"].reading_date.min()
    assert parts["test"].reading_date.min() == date(2013, 2, 22) and parts["test"].reading_date.max() == date(
        2013, 2, 28
    )
    assert sum(len(p) for p in parts.values()) == len(frame)
    with pytest.raises(MissingInputError, match="no labelled rows for the validation, test part"):
        time_split(frame, "reading_date", date(2013, 4, 1), validation_days=7, test_days=7)


def test_calibration_error_and_threshold():
    y = np.array([0, 0, 1, 1])
    assert calibration_error(y, np.array([0.0, 0.0, 1.0, 1.0])) == 0
    assert calibration_error(y, np.array([0.5, 0.5, 0.5, 0.5])) == pytest.approx(0.0)
    assert calibration_error(y, np.array([1.0, 1.0, 0.0, 0.0])) == pytest.approx(1.0)
    assert 0.2 < best_threshold(y, np.array([0.1, 0.2, 0.3, 0.9])) <= 0.3


def synthetic_features(model, rows: int, seed: int) -> tuple[pd.DataFrame, np.random.Generator]:
    """Standard-normal numerics and A/B/C categoricals under the config's feature names."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({c: rng.normal(size=rows) for c in model.features.numeric})
    for c in model.features.categorical:
        frame[c] = rng.choice(["A", "B", "C"], size=rows)
    return frame, rng


def test_pipeline_handles_unseen_and_missing_categories(dev_config):
    model = dev_config.use_case.model
    frame, _ = synthetic_features(model, rows=200, seed=0)
    y = (frame[model.features.numeric[0]] > 0).astype(int)
    pipeline = build_pipeline(model, {"max_iter": 20}).fit(frame, y)
    odd = frame.head(2).copy()
    odd.loc[odd.index[0], model.features.categorical[0]] = "never seen"
    odd.loc[odd.index[1], model.features.categorical[1]] = None
    assert pipeline.predict_proba(odd).shape == (2, 2)


def test_permutation_importance_finds_the_informative_features(dev_config):
    model = dev_config.use_case.model
    rows = 4000
    frame, rng = synthetic_features(model, rows=rows, seed=1)
    numeric, categorical = model.features.numeric[0], model.features.categorical[0]
    signal = frame[numeric] + 1.5 * (frame[categorical] == "A") + rng.normal(scale=0.5, size=rows)
    y = (signal > 0.5).astype(int).to_numpy()
    columns = feature_columns(model)
    pipeline = build_pipeline(model, {"max_iter": 30}).fit(frame[columns], y)
    importance = permutation_importance_series(pipeline, frame, y, columns, rows=2000)
    assert list(importance.index) == columns
    assert importance.nlargest(2).index.tolist() == [numeric, categorical]
    noise = importance.drop([numeric, categorical])
    assert importance[categorical] > 0.05 and noise.abs().max() < 0.02


def test_training_registers_a_pending_version_with_lineage(trained):
    import mlflow

    config, result, _ = trained
    client = mlflow.MlflowClient(
        tracking_uri=config.mlflow.tracking_uri, registry_uri=config.mlflow.tracking_uri
    )
    version = client.get_model_version(config.registered_model_name, result["version"])
    assert version.tags["model_validation_status"] == "PENDING"
    assert (
        version.tags["data.window_start"] == "2013-01-01" and version.tags["data.test_start"] == "2013-02-05"
    )
    assert version.tags["delta.version.dev.gold.tiny_features"] == "0"
    assert version.tags["airflow.dag_id"] == "dev_training" and version.tags["airflow.run_id"] == "run-1"
    assert version.tags["trigger.reason"] == "manual" and len(version.tags["git.commit"]) >= 7
    assert "Validation pending" in version.description

    run = client.get_run(result["mlflow_run_id"])
    for metric in ("roc_auc", "pr_auc", "log_loss", "f1", "calibration_error"):
        assert f"test_{metric}" in run.data.metrics and f"validation_{metric}" in run.data.metrics
    assert run.data.metrics["test_roc_auc"] > 0.6  # weather and schedule carry real signal
    assert run.data.params["estimator"] == "sklearn.ensemble.HistGradientBoostingClassifier"
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
    assert artifacts == {
        f"plots/{n}.png" for n in ("roc_curve", "pr_curve", "confusion_matrix", "feature_importance")
    }


def test_the_registered_model_loads_by_uri_and_scores_with_its_signature(trained, spark):
    import mlflow

    from jobs.runtime.mlflow_setup import point_mlflow

    config, result, _ = trained
    point_mlflow(config)  # mlflow.set_tracking_uri would export the URI to every later test's jobs
    model = mlflow.pyfunc.load_model(f"models:/{config.registered_model_name}/{result['version']}")
    assert model.metadata.signature is not None
    from jobs.tablestore import open_table_store

    store = open_table_store(config, spark)
    gold = store.read(store.name("gold", "tiny_features")).limit(50).toPandas()
    proba = np.asarray(model.predict(model_inputs(config.use_case.model, gold)))
    assert proba.shape == (50, 2) and np.allclose(proba.sum(axis=1), 1)
    assert Path(config.mlflow.artifact_root).is_dir()


def test_a_feature_gold_lacks_names_the_config_key_not_an_arrow_error(trained):
    """Before: a misspelled feature surfaced at training as an Arrow FieldRef error with the schema."""
    from jobs.config.base import ConfigError
    from jobs.core.window import Window
    from jobs.features.gold import labelled_gold

    config, _, store = trained
    model = config.use_case.model
    features = model.features.model_copy(update={"numeric": [*model.features.numeric, "vibrato"]})
    use_case = config.use_case.model_copy(update={"model": model.model_copy(update={"features": features})})
    with pytest.raises(
        ConfigError,
        match=r"use_case.yaml: use_case.model.features.numeric: \['vibrato'\] not among the columns of gold "
        r"table",
    ):
        labelled_gold(
            store,
            config.model_copy(update={"use_case": use_case}),
            Window(date(2013, 1, 1), date(2013, 2, 1)),
        )


def test_a_label_that_is_not_binary_is_bad_input_in_one_sentence(trained):
    """`label:` naming a count column loaded fine; training died later with scikit-learn's raw
    `ValueError: The least populated class...` and exit 1 (retried)."""
    from jobs.core.errors import BadInputError
    from jobs.core.window import Window
    from jobs.features.gold import check_binary_label
    from jobs.modeling.train import train

    config, _, store = trained
    model = config.use_case.model.model_copy(update={"label": "hour"})  # a count, 0..23
    counted = config.model_copy(update={"use_case": config.use_case.model_copy(update={"model": model})})
    window = Window(date(2013, 1, 1), date(2013, 2, 12))
    with pytest.raises(
        BadInputError,
        match=r"label 'hour' in \[2013-01-01, 2013-02-12\) holds .*task binary needs labels 0 and 1",
    ):
        train(counted, store, window, run_id="count-label")
    with pytest.raises(BadInputError, match="holds only 0: a binary classifier needs both 0 and 1"):
        check_binary_label(pd.Series([0, 0, 0]), "a window's label", both=True)
    check_binary_label(pd.Series([0, 1, 1.0, True]), "a window's label", both=True)  # 0/1 of any dtype
