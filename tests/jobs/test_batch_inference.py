"""Batch inference with the Champion on real gold features, a real registry and a real Delta table:
idempotent per interval, re-scored after a promotion, clear failures without a Champion or with a
model whose signature does not fit."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date

import numpy as np
import pytest

from jobs.core.window import Window
from jobs.modeling.batch_scoring import predictions_table, score_window
from jobs.modeling.estimator import model_inputs
from jobs.modeling.scoring import (
    ModelRef,
    NoModelVersionError,
    SignatureMismatchError,
    check_signature,
    resolve_model,
)

WINDOW = Window(date(2013, 2, 1), date(2013, 2, 4))
CHAMPION = "Champion"


def _batch_rows(store, config):
    frame = store.read_pandas(
        predictions_table(store, config), window=("reading_date", WINDOW.start, WINDOW.end)
    )
    return frame[frame.scoring_mode == "batch"]


def test_rerunning_an_interval_replaces_its_predictions_and_matches_direct_scoring(champion):
    import mlflow

    config, result, store, _ = champion
    gold = store.read_pandas(
        store.name("gold", "tiny_features"), window=("reading_date", WINDOW.start, WINDOW.end)
    )
    first = score_window(config, store, WINDOW, run_id="batch-1")
    assert first["rows"] == len(gold) > 100 and first["model_version"] == result["version"]
    second = score_window(config, store, WINDOW, run_id="batch-2")
    rows = _batch_rows(store, config)
    assert len(rows) == len(gold) and rows.reading_id.is_unique  # replaced, not appended
    assert set(rows.run_id) == {"batch-2"} and second["version"] == first["version"] + 1
    assert set(rows.model_version) == {result["version"]} and set(rows.model_alias) == {CHAMPION}
    assert set(rows.model_run_id) == {result["mlflow_run_id"]}

    # The Spark UDF gives exactly what the model's own predict gives on the same rows.
    model = mlflow.pyfunc.load_model(f"models:/{config.registered_model_name}/{result['version']}")
    direct = np.asarray(model.predict(model_inputs(config.use_case.model, gold)))[:, 1]
    expected = dict(zip(gold.reading_id, direct, strict=True))
    assert np.allclose(rows.prediction.to_numpy(), rows.reading_id.map(expected).to_numpy())
    threshold = float(model.metadata.metadata["threshold"])
    assert (rows.predicted_label == (rows.prediction >= threshold).astype(int)).all()

    # Neighbouring days are untouched by the window's rewrite.
    score_window(config, store, Window(date(2013, 2, 4), date(2013, 2, 5)), run_id="next-day")
    assert len(_batch_rows(store, config)) == len(gold)


def test_in_process_and_spark_udf_scoring_make_the_same_rows(champion):
    """The local engine scores in this process over Arrow, clusters with spark_udf: the same window
    scored both ways gives the same columns, types and values (only run id and time differ)."""
    config, result, store, _ = champion
    table = predictions_table(store, config)
    by_path = {}
    for scorer in ("spark_udf", "in_process"):
        outcome = score_window(config, store, WINDOW, run_id=f"by-{scorer}", scorer=scorer)
        assert outcome["scorer"] == scorer
        by_path[scorer] = _batch_rows(store, config).sort_values("reading_id").reset_index(drop=True)
    spark_rows, arrow_rows = by_path["spark_udf"], by_path["in_process"]
    assert set(spark_rows.run_id) == {"by-spark_udf"} and set(arrow_rows.run_id) == {"by-in_process"}
    same = [c for c in spark_rows.columns if c not in ("run_id", "scored_at", "prediction")]
    assert spark_rows[same].equals(arrow_rows[same])
    assert np.allclose(spark_rows.prediction, arrow_rows.prediction, rtol=0, atol=1e-12)
    assert list(store.schema(table)) == list(spark_rows.columns)  # one schema: the second write fit it


def test_in_process_scoring_holds_one_batch_at_a_time_with_the_same_result(champion):
    from datetime import UTC, datetime

    import pyarrow as pa

    from jobs.modeling.scoring import load_pyfunc, resolve_model, score_arrow

    config, _, store, _ = champion
    model, features = resolve_model(config), config.use_case.features
    gold = store.name("gold", features.table)
    run = {
        "keys": features.keys,
        "date_column": features.date_column,
        "mode": "batch",
        "run_id": "r",
        "scored_at": datetime(2013, 2, 4, tzinfo=UTC),
    }
    whole = score_arrow(
        pa.Table.from_batches(
            list(store.read_batches(gold, window=(features.date_column, WINDOW.start, WINDOW.end)))
        ),
        model,
        load_pyfunc(model),
        **run,
    )
    batches = list(
        store.read_batches(gold, window=(features.date_column, WINDOW.start, WINDOW.end), batch_rows=16)
    )
    assert len(batches) > 3 and max(b.num_rows for b in batches) <= 16
    pieces = pa.concat_tables([score_arrow(b, model, load_pyfunc(model), **run) for b in batches])
    assert pieces.sort_by("reading_id").equals(whole.sort_by("reading_id"))


def test_rescoring_after_a_promotion_records_the_new_version(champion):
    config, result, store, client = champion
    name = config.registered_model_name
    current = client.get_model_version(name, result["version"])
    promoted = client.create_model_version(name, current.source, run_id=current.run_id)
    client.set_registered_model_alias(name, CHAMPION, promoted.version)
    try:
        score_window(config, store, WINDOW, run_id="after-promotion")
        rows = _batch_rows(store, config)
        assert set(rows.model_version) == {str(promoted.version)} and set(rows.run_id) == {"after-promotion"}
        assert rows.reading_id.is_unique
    finally:
        client.set_registered_model_alias(name, CHAMPION, result["version"])


def test_without_a_champion_the_job_fails_in_one_sentence(tmp_path):
    from jobs.config.platform import MlflowSettings
    from tests.support import make_config

    empty = make_config(tmp_path).model_copy(
        update={"mlflow": MlflowSettings(tracking_uri=f"sqlite:///{tmp_path / 'empty.db'}", experiment="/x")}
    )
    with pytest.raises(
        NoModelVersionError, match="has no 'Champion' version yet: train and promote one first"
    ):
        resolve_model(empty)
    # Through the command line, as the Airflow task runs it: exit code 2 (no retry), one line.
    env = {
        **os.environ,
        "RUNWAY_DATA_DIR": str(tmp_path),
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'empty.db'}",
    }
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "jobs.batch_inference",
            "--env",
            "dev",
            "--start",
            "2013-02-01",
            "--end",
            "2013-02-02",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2, done.stderr[-2000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("runway: error:")]
    assert len(errors) == 1 and "has no 'Champion' version yet" in errors[0]
    assert "Traceback" not in done.stderr


def test_a_model_whose_signature_does_not_fit_the_features_fails_clearly(champion):
    import mlflow
    from mlflow.models import infer_signature
    from sklearn.linear_model import LogisticRegression

    from jobs.runtime.mlflow_setup import point_mlflow

    config, result, store, client = champion
    frame = store.read_pandas(
        store.name("gold", "tiny_features"), window=("reading_date", WINDOW.start, WINDOW.end)
    )
    inputs = frame[["load_pct", "temperature"]].fillna(0).assign(gate_congestion=1.0)
    fitted = LogisticRegression().fit(inputs, frame.failed.fillna(0) > 0)
    point_mlflow(config)  # mlflow.set_tracking_uri would export the URI to every later test's jobs
    with mlflow.start_run(
        experiment_id=mlflow.get_experiment_by_name(config.mlflow.experiment).experiment_id
    ):
        info = mlflow.sklearn.log_model(
            fitted,
            name="model",
            signature=infer_signature(inputs, fitted.predict_proba(inputs)),
            serialization_format="cloudpickle",
            registered_model_name=config.registered_model_name,
        )
    client.set_registered_model_alias(config.registered_model_name, CHAMPION, info.registered_model_version)
    table = predictions_table(store, config)
    before = (
        store.version(table) if store.exists(table) else None
    )  # the module's other tests may not have run
    try:
        with pytest.raises(
            SignatureMismatchError, match=r"cannot score these rows: missing columns \['gate_congestion'\]"
        ):
            score_window(config, store, WINDOW, run_id="mismatch")
    finally:
        client.set_registered_model_alias(config.registered_model_name, CHAMPION, result["version"])
    assert (store.version(table) if store.exists(table) else None) == before  # nothing written


def test_a_resolved_version_carries_its_signature_types_by_name(champion):
    """Before: the types were read as ``str(DataType.double)`` = "DataType.double", so no type
    check ever fired (only missing columns did) and the in-process scorer never cast Delta ints."""
    config, result, _, _ = champion
    model = resolve_model(config)
    kinds = dict(model.inputs)
    assert kinds["temperature"] == "double" and kinds["site"] == "string", kinds
    with pytest.raises(SignatureMismatchError, match=r"temperature \(string, model expects double\)"):
        check_signature(
            model,
            {
                **{name: "double" for name in kinds},
                "site": "string",
                "model": "string",
                "temperature": "string",
            },
        )


def test_signature_types_are_checked_against_the_columns():
    model = ModelRef("m", "3", "r", "Champion", 0.5, (("carrier", "string"), ("distance", "double")))
    check_signature(model, {"carrier": "string", "distance": "int", "extra": "string"})  # ints widen
    with pytest.raises(
        SignatureMismatchError, match=r"incompatible types \['carrier \(int, model expects string\)'"
    ):
        check_signature(model, {"carrier": "int", "distance": "double"})
    with pytest.raises(SignatureMismatchError, match=r"distance \(string, model expects double\)"):
        check_signature(model, {"carrier": "string", "distance": "string"})
