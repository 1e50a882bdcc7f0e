"""MLflow and gold-table I/O shared by the lifecycle jobs (train, validate_model, promote)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import mlflow
import numpy as np
import pandas as pd

from jobs.modeling.estimator import classification_metrics, model_inputs

if TYPE_CHECKING:
    from jobs.config.env import EnvConfig


def load_version(config: EnvConfig, version: str):

    return mlflow.pyfunc.load_model(f"models:/{config.registered_model_name}/{version}")


def predicted_proba(model, inputs: pd.DataFrame) -> np.ndarray:
    """P(label = 1) from a registered model (its pyfunc predicts both classes' probabilities)."""
    out = np.asarray(model.predict(inputs))
    return out[:, 1] if out.ndim == 2 else out


def decision_threshold(model) -> float:
    return float((model.metadata.metadata or {}).get("threshold", 0.5))


def evaluate(model, config: EnvConfig, frame: pd.DataFrame) -> dict[str, Any]:
    """The model's metrics on labelled rows, at its own decision threshold."""
    y = frame[config.use_case.model.label].astype(int).to_numpy()
    proba = predicted_proba(model, model_inputs(config.use_case.model, frame))
    return classification_metrics(y, proba, decision_threshold(model))
