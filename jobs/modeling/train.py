"""Training: fit on gold's labelled window, log the model with its lineage, register a version."""

from __future__ import annotations

import logging
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

import mlflow
import mlflow.sklearn
from mlflow.models import infer_signature

from jobs.config.env import EnvConfig
from jobs.config.use_case import TRAINING_REASONS
from jobs.core.errors import BadInputError
from jobs.core.paths import git_commit
from jobs.core.window import Window
from jobs.features.gold import check_binary_label, labelled_gold
from jobs.modeling.estimator import (
    best_threshold,
    build_pipeline,
    classification_metrics,
    evaluation_plots,
    feature_columns,
    importance_plot,
    model_inputs,
    permutation_importance_series,
    time_split,
)
from jobs.release.registry import PENDING, STATUS_TAG, ModelRegistry
from jobs.runtime.mlflow_setup import configure_mlflow, pinned_requirements

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from sklearn.pipeline import Pipeline

    from jobs.tablestore import TableStore


log = logging.getLogger("runway.train")


def model_requirements() -> list[str]:
    """The scoring environment, pinned to this one's versions."""

    return pinned_requirements(("scikit-learn", "pandas", "numpy", "cloudpickle", "mlflow"))


def prepare_mlflow(config: EnvConfig) -> str:
    """Connect to the tracking store and return the experiment id; also build the installed-package
    index that ``log_model`` checks the model's requirements against (a scan of every installed
    distribution, best done while the model fits). Only speed depends on that private helper."""

    experiment_id = configure_mlflow(config)
    try:
        from mlflow.utils import requirements_utils

        requirements_utils._init_packages_to_modules_map()
    except (ImportError, AttributeError):  # pragma: no cover - a later MLflow moved it
        pass
    return experiment_id


def log_model(pipeline: Pipeline, example: pd.DataFrame, config: EnvConfig, threshold: float):
    """Log the fitted pipeline to the active run (signature, input example, pinned requirements,
    decision threshold) and register it as a new version of the environment's model."""

    return mlflow.sklearn.log_model(
        pipeline,
        name="model",
        signature=infer_signature(example, pipeline.predict_proba(example)),
        input_example=example,
        serialization_format="cloudpickle",
        pyfunc_predict_fn="predict_proba",
        registered_model_name=config.registered_model_name,
        pip_requirements=model_requirements(),
        metadata={"threshold": threshold, "label": config.use_case.model.label},
    )


@dataclass
class Fitted:
    """A fitted pipeline with its time split and held-out evaluation."""

    pipeline: Pipeline
    parts: dict[str, pd.DataFrame]
    xs: dict[str, pd.DataFrame]
    ys: dict[str, np.ndarray]
    proba: dict[str, np.ndarray]
    threshold: float
    metrics: dict[str, float]


def fit_and_evaluate(pipeline: Pipeline, config: EnvConfig, frame: pd.DataFrame, end: date) -> Fitted:
    """Split the labelled rows by time (train | validation | test), fit, choose the decision
    threshold on validation, and measure validation and test (pure: no I/O)."""

    model_cfg, training = config.use_case.model, config.use_case.model.training
    parts = time_split(
        frame, config.use_case.features.date_column, end, training.validation_days, training.test_days
    )
    xs = {name: model_inputs(model_cfg, part) for name, part in parts.items()}
    ys = {name: part[model_cfg.label].astype(int).to_numpy() for name, part in parts.items()}
    pipeline.fit(xs["train"], ys["train"])
    proba = {name: pipeline.predict_proba(xs[name])[:, 1] for name in ("validation", "test")}
    threshold = (
        best_threshold(ys["validation"], proba["validation"])
        if training.threshold == "auto"
        else float(training.threshold)
    )
    metrics = {
        f"{name}_{metric}": value
        for name in ("validation", "test")
        for metric, value in classification_metrics(ys[name], proba[name], threshold).items()
    }
    return Fitted(pipeline, parts, xs, ys, proba, threshold, metrics)


def lineage_tags(
    config: EnvConfig, window: Window, gold_versions: dict[str, int], *, run_id: str, dag_id: str, reason: str
) -> dict[str, str]:
    """What a version was made from: windows, Delta versions read, code, orchestrator run, reason."""
    test_start = window.end - timedelta(days=config.use_case.model.training.test_days)
    return {
        "runway.env": config.env,
        "data.window_start": str(window.start),
        "data.window_end": str(window.end),
        "data.test_start": str(test_start),
        "data.test_end": str(window.end),
        **{f"delta.version.{table}": str(version) for table, version in gold_versions.items()},
        "git.commit": git_commit(),
        "airflow.dag_id": dag_id,
        "airflow.run_id": run_id,
        "trigger.reason": reason,
    }


def log_training_run(
    config: EnvConfig, fitted: Fitted, lineage: dict[str, str], experiment_id: str, window: Window
) -> tuple[str, str]:
    """The MLflow run (parameters, metrics, plots, importance, the model); returns (run id, the
    registered version). Permutation importance, mostly native predict calls, runs while the model
    is logged."""

    model = fitted.pipeline.named_steps["model"]
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"train {window}") as run:
        mlflow.set_tags(lineage)
        mlflow.log_params(
            {
                "estimator": config.use_case.model.estimator,
                **{f"model.{k}": v for k, v in model.get_params().items() if not callable(v)},
                "threshold": round(fitted.threshold, 6),
                **{f"rows.{name}": len(fitted.xs[name]) for name in ("train", "validation", "test")},
            }
        )
        mlflow.log_metrics(fitted.metrics)
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="importance") as pool:
            importance_future = pool.submit(
                permutation_importance_series,
                fitted.pipeline,
                fitted.parts["validation"],
                fitted.ys["validation"],
                feature_columns(config.use_case.model),
            )
            info = log_model(fitted.pipeline, fitted.xs["train"].head(5), config, fitted.threshold)
            for name, figure in evaluation_plots(
                fitted.ys["test"], fitted.proba["test"], fitted.threshold
            ).items():
                mlflow.log_figure(figure, f"plots/{name}.png")
            importance = importance_future.result()
        mlflow.log_figure(importance_plot(importance), "plots/feature_importance.png")
        mlflow.log_dict(importance.sort_values(ascending=False).to_dict(), "feature_importance.json")
    return run.info.run_id, str(info.registered_model_version)


def train(
    config: EnvConfig,
    store: TableStore,
    window: Window,
    *,
    run_id: str = "manual",
    dag_id: str = "manual",
    reason: str = "manual",
    params: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Fit on the window's labelled gold and register a PENDING version: the I/O shell around
    ``fit_and_evaluate``, with MLflow's set-up overlapping the fit."""

    if reason not in TRAINING_REASONS:
        raise BadInputError(f"reason must be one of {TRAINING_REASONS}, not {reason!r}")
    pipeline = build_pipeline(config.use_case.model, params)
    # Importing MLflow and connecting to the tracking store take seconds: overlap them with the
    # fit (after scikit-learn is imported, so the two threads do not queue on import locks).
    mlflow_ready = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlflow-setup")
    experiment = mlflow_ready.submit(prepare_mlflow, config)
    mlflow_ready.shutdown(wait=False)
    frame, gold_version = labelled_gold(store, config, window)
    check_binary_label(frame[config.use_case.model.label], f"the training window {window}'s label", both=True)
    fitted = fit_and_evaluate(pipeline, config, frame, window.end)
    lineage = lineage_tags(
        config,
        window,
        {str(store.name("gold", config.use_case.features.table)): gold_version},
        run_id=run_id,
        dag_id=dag_id,
        reason=reason,
    )
    mlflow_run_id, version = log_training_run(config, fitted, lineage, experiment.result(), window)
    registry = ModelRegistry.for_config(config)
    registry.set_tags(version, {**lineage, STATUS_TAG: PENDING, "mlflow.run_id": mlflow_run_id})
    auc = fitted.metrics["test_roc_auc"]
    registry.set_description(
        version,
        (
            f"Trained on {window} ({len(fitted.xs['train']):,} train rows), test window "
            f"[{lineage['data.test_start']}, "
            f"{window.end}); test ROC AUC {auc:.3f}. Reason: {reason}. Validation pending."
        ),
    )
    log.info(
        "registered %s v%s (run %s): test ROC AUC %.3f",
        config.registered_model_name,
        version,
        mlflow_run_id,
        auc,
    )
    return {
        "model_name": config.registered_model_name,
        "version": version,
        "mlflow_run_id": mlflow_run_id,
        "threshold": fitted.threshold,
        "metrics": {k: round(v, 6) for k, v in fitted.metrics.items() if math.isfinite(v)},
    }
