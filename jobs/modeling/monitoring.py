"""Monitoring: drift and quality of a window's predictions, recorded, and the retraining decision."""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow
import numpy as np
import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.metrics import ValueDrift
from evidently.presets import DataDriftPreset

from jobs.config.env import EnvConfig
from jobs.core.errors import BadInputError, MissingInputError
from jobs.core.window import Window
from jobs.features.gold import with_gold_labels
from jobs.features.use_case_check import check_gold_columns
from jobs.modeling.estimator import classification_metrics, feature_columns, model_inputs
from jobs.modeling.lifecycle import predicted_proba
from jobs.modeling.retraining import ALERTS_TABLE, DEFAULT_SOURCE, METRICS_TABLE
from jobs.modeling.scoring import threshold_of
from jobs.runtime.mlflow_setup import configure_mlflow, mlflow_client

if TYPE_CHECKING:
    import pandas as pd

    from jobs.tablestore import TableStore


log = logging.getLogger("runway.monitoring")

PREDICTION = "prediction"

METRICS_SCHEMA = (
    "window_start date, window_end date, source string, metric string, column string, value double, "
    "threshold double, violated boolean, method string, model_name string, model_version string, "
    "report_path string, mlflow_run_id string, run_id string, computed_at timestamp"
)


def drift_rows(
    snapshot: dict[str, Any], features: list[str], drift_share: float, expected_to_move: tuple[str, ...] = ()
) -> list[dict[str, Any]]:
    """Monitoring rows from an Evidently snapshot (``snapshot.dict()``): one per feature's drift,
    the dataset's drift share, and the predictions' drift. Features ``expected_to_move`` (calendar,
    season) keep their row, marked and never violated, and do not count in the drift share."""
    rows, judged = [], []
    for metric in snapshot["metrics"]:
        config, value = metric["config"], metric["value"]
        if config["type"].rsplit(":", 1)[-1] != "ValueDrift":
            continue
        method, threshold, column = config["method"], float(config["threshold"]), config["column"]
        score = float(value)
        # p-value tests drift when the p-value is small; distances when they are large.
        drifted = score < threshold if "p_value" in method else score >= threshold
        if column == PREDICTION:
            rows.append(_row("prediction_drift", column, score, threshold, drifted, method))
        elif column in expected_to_move:
            rows.append(_row("feature_drift", column, score, threshold, False, f"{method}; expected to move"))
        else:
            rows.append(_row("feature_drift", column, score, threshold, drifted, method))
            judged.append(drifted)
    missing = set(features) - {r["column"] for r in rows if r["metric"] == "feature_drift"}
    if missing:
        raise ValueError(f"the drift report has no result for {sorted(missing)}")
    share = sum(judged) / len(judged) if judged else 0.0
    rows.append(
        _row("dataset_drift_share", None, share, drift_share, share >= drift_share, "share of features")
    )
    rows.append(_row("drifted_features", None, float(sum(judged)), None, False, "count"))
    return rows


def quality_rows(
    metrics: dict[str, float], floors: dict[str, float], ceilings: dict[str, float]
) -> list[dict[str, Any]]:
    """Rows for the window's model quality, each judged against its floor or ceiling."""
    rows = []
    for name, value in metrics.items():
        if name in floors:
            rows.append(_row(f"quality.{name}", None, value, floors[name], value < floors[name], "floor"))
        elif name in ceilings:
            rows.append(
                _row(f"quality.{name}", None, value, ceilings[name], value > ceilings[name], "ceiling")
            )
        else:
            rows.append(_row(f"quality.{name}", None, value, None, False, "reported"))
    return rows


def _row(metric: str, column: str | None, value: float, threshold: float | None, violated: bool, method: str):
    return {
        "metric": metric,
        "column": column,
        "value": float(value),
        "threshold": None if threshold is None else float(threshold),
        "violated": bool(violated),
        "method": method,
    }


def _model_reference(config: EnvConfig, version: str):
    """The version's lineage tags and loaded model (for the reference's predictions)."""

    client = mlflow_client(config)
    record = client.get_model_version(config.registered_model_name, version)
    tags = record.tags
    if "data.window_start" not in tags or "data.test_start" not in tags:
        raise BadInputError(
            f"{config.registered_model_name} v{version} has no training window in its lineage tags"
        )
    model = mlflow.pyfunc.load_model(f"models:/{config.registered_model_name}/{version}")
    return Window.parse(tags["data.window_start"], tags["data.test_start"]), model, record.run_id


def latest_predictions(predictions: pd.DataFrame, keys: list[str]) -> tuple[pd.DataFrame, str]:
    """(the window's predictions of the version that made most of them, that version): an entity
    scored by both the stream and a batch run counts once, with its latest prediction."""
    latest = predictions.sort_values("scored_at", kind="stable").drop_duplicates(keys, keep="last")
    version = str(latest.model_version.value_counts().idxmax())
    return latest[latest.model_version == version], version


def drift_snapshot(config: EnvConfig, reference: pd.DataFrame, current: pd.DataFrame):
    """Evidently's report of the features' and the predictions' drift (current vs reference)."""

    model_cfg, monitoring = config.use_case.model, config.monitoring
    definition = DataDefinition(
        numerical_columns=[*model_cfg.features.numeric, PREDICTION],
        categorical_columns=model_cfg.features.categorical,
    )
    drift = DataDriftPreset(
        columns=feature_columns(model_cfg),
        drift_share=monitoring.drift_share,
        num_method=monitoring.numeric_method,
        num_threshold=monitoring.numeric_threshold,
        cat_method=monitoring.categorical_method,
        cat_threshold=monitoring.categorical_threshold,
    )
    prediction_drift = ValueDrift(
        column=PREDICTION, method=monitoring.numeric_method, threshold=monitoring.prediction_threshold
    )
    return Report([drift, prediction_drift]).run(
        reference_data=Dataset.from_pandas(reference, data_definition=definition),
        current_data=Dataset.from_pandas(current, data_definition=definition),
    )


def quality_of(config: EnvConfig, predictions: pd.DataFrame) -> tuple[list[dict[str, Any]], int]:
    """(quality metric rows — none below ``quality_min_rows`` labelled rows or with one class —,
    the number of labelled predictions)."""

    model_cfg, monitoring = config.use_case.model, config.monitoring
    labelled = (
        predictions[predictions[model_cfg.label].notna()]
        if model_cfg.label in predictions
        else predictions[:0]
    )
    y = labelled[model_cfg.label].astype(int).to_numpy() if len(labelled) else np.array([], dtype=int)
    if len(labelled) < monitoring.quality_min_rows or len(np.unique(y)) < 2:
        return [], len(labelled)
    quality = classification_metrics(y, labelled[PREDICTION].to_numpy(), float(labelled.threshold.iloc[0]))
    chosen = {k: quality[k] for k in ("roc_auc", "f1", "calibration_error", "log_loss", "positive_rate")}
    return quality_rows(chosen, monitoring.quality_floors, monitoring.quality_ceilings), len(labelled)


def served_predictions(logged: pd.DataFrame, keys: list[str]) -> tuple[pd.DataFrame, str | None]:
    """(the inference log's answered rows of the version that answered most of them, that version;
    None without any). Requests that carry the entity's keys count once, with their latest answer."""

    answered = logged[(logged.status == 200) & logged[PREDICTION].notna()]
    if answered.empty:
        return answered, None
    version = str(answered.model_version.value_counts().idxmax())
    chosen = answered[answered.model_version == version]
    if keys and set(keys) <= set(chosen.columns):
        keyed = chosen[keys].notna().all(axis=1)
        latest = chosen[keyed].sort_values("requested_at", kind="stable").drop_duplicates(keys, keep="last")
        chosen = pd.concat([chosen[~keyed], latest]) if keyed.any() else chosen
    return chosen, version


def _scored_window(
    config: EnvConfig, store: TableStore, window: Window, source: str
) -> tuple[pd.DataFrame | None, str | None]:
    """(the window's scored rows — inputs and ``prediction`` — of the version that made most of
    them, that version). Batch and streaming predictions must exist; an endpoint may have had no
    traffic (version None)."""
    features = config.use_case.features
    if source == DEFAULT_SOURCE:
        scored = store.read_pandas(
            store.name("ml", config.inference.predictions_table),
            window=(features.date_column, window.start, window.end),
        )
        if scored.empty:
            raise MissingInputError(f"no predictions for {window} yet: run inference for it first")
        return latest_predictions(scored, features.keys)
    table = store.name("ml", config.serving.inference_log.table)
    if not store.exists(table):
        log.warning("no inference table %s: the endpoint has logged no request yet", table)
        return None, None
    return served_predictions(
        store.read_pandas(table, window=("requested_at", window.start, window.end)), features.keys
    )


def monitor(
    config: EnvConfig,
    store: TableStore,
    window: Window,
    *,
    source: str = DEFAULT_SOURCE,
    run_id: str = "manual",
) -> dict[str, Any]:
    """Drift and quality of the window's scored rows from ``source`` (``predictions``: batch and
    streaming; ``inference_log``: the endpoint's answered requests) against the version's training
    reference: the I/O shell (reads, the report's file and MLflow run, the metrics table) around the
    functions above."""

    model_cfg, features, monitoring = config.use_case.model, config.use_case.features, config.monitoring
    columns = feature_columns(model_cfg)
    predictions, version = _scored_window(config, store, window, source)
    if version is None:
        return _no_traffic(config, store, window, source, run_id)
    reference_window, model, _ = _model_reference(config, version)
    if "threshold" not in predictions.columns:  # the inference log: the version's own threshold
        predictions = predictions.assign(threshold=threshold_of(model.metadata.metadata))
    gold = store.name("gold", features.table)
    check_gold_columns(store.schema(gold), config, f"gold table {gold}")
    reference = store.read_pandas(
        gold,
        window=(features.date_column, reference_window.start, reference_window.end),
        columns=list(dict.fromkeys([*features.keys, *columns])),  # a key may be a feature too: read once
    )
    if reference.empty:
        raise MissingInputError(f"no gold rows for v{version}'s training window {reference_window}")
    reference = model_inputs(
        model_cfg, reference.sample(n=min(len(reference), monitoring.reference_max_rows), random_state=0)
    )
    reference = reference.assign(**{PREDICTION: predicted_proba(model, reference)})
    current = predictions.sample(n=min(len(predictions), monitoring.current_max_rows), random_state=0)
    current = model_inputs(model_cfg, current).assign(**{PREDICTION: current[PREDICTION].to_numpy()})
    snapshot = drift_snapshot(config, reference, current)
    expected = tuple(model_cfg.features.expected_to_move)
    rows = drift_rows(snapshot.dict(), columns, monitoring.drift_share, expected)

    # Labels join on the entity's keys: batch scoring's rows are its window's, requests' of any date.
    joined = with_gold_labels(config, store, predictions, window if source == DEFAULT_SOURCE else None)
    quality, labelled = quality_of(config, joined)
    rows += quality
    rows.append(_row("rows", None, float(len(predictions)), None, False, "count"))
    rows.append(_row("labelled_rows", None, float(labelled), None, False, "count"))
    report_path = _report_path(config, window, source)
    report_path.parent.mkdir(parents=True, exist_ok=True)
    snapshot.save_html(str(report_path))
    mlflow_run_id = _log_monitoring_run(
        config, window, source, rows, version, reference_window, report_path, run_id
    )
    commit = _write_metrics(
        config,
        store,
        window,
        source,
        rows,
        version=version,
        report=report_path,
        mlflow_run_id=mlflow_run_id,
        run_id=run_id,
    )
    violated = sorted({r["metric"] for r in rows if r["violated"] and r["metric"] != "feature_drift"})
    share = next(r["value"] for r in rows if r["metric"] == "dataset_drift_share")
    log.info(
        "monitored %s of %s (v%s, %d rows, %d labelled): drift share %.2f, violations %s; report %s",
        source,
        window,
        version,
        len(predictions),
        labelled,
        share,
        violated or "none",
        report_path,
    )
    return {
        "table": str(store.name("monitoring", METRICS_TABLE)),
        "version": commit.version,
        "source": source,
        "model_version": version,
        "rows": len(predictions),
        "labelled_rows": labelled,
        "dataset_drift_share": round(share, 4),
        "violations": violated,
        "report": str(report_path),
        "mlflow_run_id": mlflow_run_id,
    }


def _no_traffic(
    config: EnvConfig, store: TableStore, window: Window, source: str, run_id: str
) -> dict[str, Any]:
    """An endpoint without answered requests in the window: monitored, zero rows, nothing violated."""
    rows = [_row("rows", None, 0.0, None, False, "count")]
    commit = _write_metrics(
        config, store, window, source, rows, version="", report="", mlflow_run_id="", run_id=run_id
    )
    log.info("monitored %s of %s: no answered request in the window", source, window)
    return {
        "table": str(store.name("monitoring", METRICS_TABLE)),
        "version": commit.version,
        "source": source,
        "model_version": None,
        "rows": 0,
        "labelled_rows": 0,
        "dataset_drift_share": 0.0,
        "violations": [],
        "report": None,
        "mlflow_run_id": None,
    }


def _log_monitoring_run(
    config: EnvConfig,
    window: Window,
    source: str,
    rows: list[dict[str, Any]],
    version: str,
    reference_window: Window,
    report_path: Path,
    run_id: str,
) -> str:

    with mlflow.start_run(
        experiment_id=configure_mlflow(config), run_name=f"monitor {source} {window}"
    ) as run:
        mlflow.set_tags(
            {
                "runway.kind": "monitoring",
                "runway.env": config.env,
                "monitoring.source": source,
                "data.window_start": str(window.start),
                "data.window_end": str(window.end),
                "model.version": version,
                "airflow.run_id": run_id,
                "reference.window": str(reference_window),
            }
        )
        mlflow.log_metrics({_metric_key(r): r["value"] for r in rows})
        mlflow.log_artifact(str(report_path), "monitoring")
    return run.info.run_id


def _metric_key(row: dict[str, Any]) -> str:
    name = row["metric"] if row["column"] is None else f"{row['metric']}.{row['column']}"
    return re.sub(r"[^A-Za-z0-9_.\-/ ]", "_", name)


def _report_path(config: EnvConfig, window: Window, source: str) -> Path:
    return (
        Path(config.storage.reports_root)
        / config.env
        / "monitoring"
        / source
        / f"{window.start}_{window.end}.html"
    )


def _write_metrics(config, store, window, source, rows, *, version, report, mlflow_run_id, run_id):
    """Replace the window's rows of ``source`` in the metrics table."""

    frame = pd.DataFrame(rows).assign(
        window_start=window.start,
        window_end=window.end,
        source=source,
        model_name=config.registered_model_name,
        model_version=version,
        report_path=str(report),
        mlflow_run_id=mlflow_run_id,
        run_id=run_id,
        computed_at=datetime.now(UTC),  # when it was computed: metadata, not business time
    )
    table = store.name("monitoring", METRICS_TABLE)
    # A table from before sources: its rows (null source) are the predictions'.
    store.add_columns(table, "source string", metadata={"job": "monitoring.monitor", "run_id": run_id})
    of_source = (
        f"(source = '{source}' OR source IS NULL)" if source == DEFAULT_SOURCE else f"source = '{source}'"
    )
    return store.overwrite(
        table,
        store.small_frame(frame, METRICS_SCHEMA),
        predicate=f"window_start = '{window.start}' AND window_end = '{window.end}' AND {of_source}",
        metadata={"job": "monitoring.monitor", "run_id": run_id, "window": str(window), "source": source},
    )


def record_alert(
    config: EnvConfig,
    store: TableStore,
    window: Window,
    decision: dict[str, Any],
    *,
    run_id: str = "manual",
    training_run_id: str | None = None,
) -> dict[str, Any]:
    """One alert row per window (a rerun replaces it) for a drift-triggered retrain."""

    frame = pd.DataFrame(
        [
            {
                "window_start": window.start,
                "window_end": window.end,
                "kind": "drift_retrain",
                "reason": str(decision.get("reason", "")),
                "windows": json.dumps(decision.get("windows", [])),
                "values": json.dumps(decision.get("values", {})),
                "training_run_id": training_run_id or "",
                "run_id": run_id,
                "created_at": datetime.now(UTC),
            }
        ]
    )
    schema = (
        "window_start date, window_end date, kind string, reason string, windows string, values string, "
        "training_run_id string, run_id string, created_at timestamp"
    )
    commit = store.overwrite(
        store.name("monitoring", ALERTS_TABLE),
        store.small_frame(frame, schema),
        predicate=f"kind = 'drift_retrain' AND window_start = '{window.start}' AND window_end = "
        f"'{window.end}'",
        metadata={"job": "monitoring.alert", "run_id": run_id, "window": str(window)},
    )
    log.info("alert recorded for %s: %s", window, decision.get("reason"))
    return {"table": str(store.name("monitoring", ALERTS_TABLE)), "version": commit.version}
