"""Model building and scoring shared by training, validation and monitoring: the estimator pipeline
from config, the time split, and the metrics every stage reports."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.compose import ColumnTransformer
from sklearn.metrics import (
    ConfusionMatrixDisplay,
    PrecisionRecallDisplay,
    RocCurveDisplay,
    average_precision_score,
    f1_score,
    log_loss,
    precision_recall_curve,
    roc_auc_score,
)
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OrdinalEncoder

from jobs.core.errors import BadInputError, MissingInputError

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

    from jobs.config.use_case import ModelConfig


def feature_columns(model: ModelConfig) -> list[str]:
    return [*model.features.categorical, *model.features.numeric]


def build_pipeline(model: ModelConfig, params: dict[str, Any] | None = None) -> Pipeline:
    """Categoricals ordinal-encoded (unknown and missing → -1, which tree models read as missing),
    numerics passed through, then the configured estimator with its hyperparameters."""

    module, _, name = model.estimator.rpartition(".")
    estimator_class = getattr(importlib.import_module(module), name)
    kwargs = {**model.params, **(params or {})}
    n_categorical = len(model.features.categorical)
    if "categorical_features" in inspect.signature(estimator_class).parameters and n_categorical:
        kwargs.setdefault("categorical_features", list(range(n_categorical)))
    encode = ColumnTransformer(
        [
            (
                "categorical",
                OrdinalEncoder(
                    handle_unknown="use_encoded_value", unknown_value=-1, encoded_missing_value=-1
                ),
                model.features.categorical,
            ),
            ("numeric", "passthrough", model.features.numeric),
        ],
        verbose_feature_names_out=False,
    )
    try:
        estimator = estimator_class(**kwargs)
    except TypeError as exc:  # an unknown hyperparameter: name it, a retry cannot help
        raise BadInputError(f"estimator {model.estimator}: {exc}") from None
    return Pipeline([("encode", encode), ("model", estimator)])


def time_split(
    frame: pd.DataFrame, date_column: str, end: date, validation_days: int, test_days: int
) -> dict[str, pd.DataFrame]:
    """Split by time, oldest to newest: train | validation | test, the test window ending at ``end``.
    No row of a later part is older than a row of an earlier one."""
    test_start = end - timedelta(days=test_days)
    validation_start = test_start - timedelta(days=validation_days)
    days = pd.to_datetime(frame[date_column]).dt.date
    parts = {
        "train": frame[days < validation_start],
        "validation": frame[(days >= validation_start) & (days < test_start)],
        "test": frame[(days >= test_start) & (days < end)],
    }
    empty = [name for name, part in parts.items() if part.empty]
    if empty:
        raise MissingInputError(
            f"no labelled rows for the {', '.join(empty)} part(s) of the window ending {end}"
        )
    return parts


def calibration_error(y_true: np.ndarray, proba: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error: the row-weighted gap between predicted and observed rates."""
    y_true, proba = np.asarray(y_true, dtype=float), np.asarray(proba, dtype=float)
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.digitize(proba, edges[1:-1]), 0, bins - 1)
    error = 0.0
    for b in range(bins):
        mask = index == b
        if mask.any():
            error += mask.mean() * abs(proba[mask].mean() - y_true[mask].mean())
    return float(error)


def best_threshold(y_true: np.ndarray, proba: np.ndarray) -> float:
    """The decision threshold that maximises F1."""

    precision, recall, thresholds = precision_recall_curve(y_true, proba)
    f1 = np.where(precision + recall > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0)
    return float(thresholds[int(np.argmax(f1[:-1]))]) if len(thresholds) else 0.5


def classification_metrics(y_true: np.ndarray, proba: np.ndarray, threshold: float) -> dict[str, float]:

    y_true = np.asarray(y_true, dtype=int)
    both_classes = len(np.unique(y_true)) == 2
    return {
        "roc_auc": float(roc_auc_score(y_true, proba)) if both_classes else float("nan"),
        "pr_auc": float(average_precision_score(y_true, proba)) if both_classes else float("nan"),
        "log_loss": float(log_loss(y_true, np.clip(proba, 1e-7, 1 - 1e-7), labels=[0, 1])),
        "f1": float(f1_score(y_true, (proba >= threshold).astype(int), zero_division=0)),
        "calibration_error": calibration_error(y_true, proba),
        "positive_rate": float(y_true.mean()),
        "rows": float(len(y_true)),
    }


def _figure(name: str, draw: Callable[[Any], Any]) -> Any:
    """A titled figure drawn without pyplot's global state (safe to build beside other threads)."""

    figure = Figure(figsize=(6, 4.5))
    ax = figure.subplots()
    draw(ax)
    ax.set_title(name.replace("_", " "))
    figure.tight_layout()
    return figure


def evaluation_plots(y_true: np.ndarray, proba: np.ndarray, threshold: float) -> dict[str, Any]:
    """Matplotlib figures: ROC and PR curves, confusion matrix."""

    predicted = (proba >= threshold).astype(int)
    return {
        "roc_curve": _figure("roc_curve", lambda ax: RocCurveDisplay.from_predictions(y_true, proba, ax=ax)),
        "pr_curve": _figure(
            "pr_curve", lambda ax: PrecisionRecallDisplay.from_predictions(y_true, proba, ax=ax)
        ),
        "confusion_matrix": _figure(
            "confusion_matrix", lambda ax: ConfusionMatrixDisplay.from_predictions(y_true, predicted, ax=ax)
        ),
    }


def importance_plot(importance: pd.Series) -> Any:
    return _figure("feature_importance", lambda ax: importance.sort_values().plot.barh(ax=ax))


def permutation_importance_series(
    pipeline: Pipeline, frame: pd.DataFrame, y: np.ndarray, columns: list[str], rows: int = 3000
) -> pd.Series:
    """Drop in ROC AUC when a feature is shuffled, on up to ``rows`` rows (one shuffle each).

    The rows are encoded once and the encoded columns shuffled (the encoder works column by
    column, so this equals shuffling the raw column); all shuffled copies are scored in one
    ``predict_proba`` call, which keeps a tree ensemble's parallel predict busy."""

    sample = frame.sample(n=min(rows, len(frame)), random_state=0)
    y_sample = pd.Series(y, index=frame.index).loc[sample.index].to_numpy()
    if len(np.unique(y_sample)) < 2:
        return pd.Series(0.0, index=columns)
    encode, model = pipeline[:-1], pipeline[-1]
    encoded = np.asarray(encode.transform(sample[columns]), dtype=float)
    rng = np.random.default_rng(0)
    shuffled = np.repeat(encoded[np.newaxis], len(columns), axis=0)
    for j in range(len(columns)):
        shuffled[j, :, j] = rng.permutation(encoded[:, j])
    proba = model.predict_proba(np.concatenate([encoded, *shuffled]))[:, 1].reshape(len(columns) + 1, -1)
    baseline = roc_auc_score(y_sample, proba[0])
    return pd.Series([baseline - roc_auc_score(y_sample, p) for p in proba[1:]], index=columns)


def model_inputs(model: ModelConfig, frame: pd.DataFrame) -> pd.DataFrame:
    """The model's input columns; numerics as float64 so the signature accepts missing values."""
    return frame[feature_columns(model)].astype(dict.fromkeys(model.features.numeric, "float64"))
