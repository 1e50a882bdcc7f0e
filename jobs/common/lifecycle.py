"""MLflow and gold-table I/O shared by the lifecycle jobs (train, validate_model, promote)."""

from __future__ import annotations

import logging
import os
import re
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from jobs.common.errors import BadInputError, MissingInputError
from jobs.common.identity import use_credentials
from jobs.common.modeling import classification_metrics, model_inputs
from jobs.common.use_case_check import check_gold_columns

if TYPE_CHECKING:
    from jobs.common.config import EnvConfig
    from jobs.common.window import Window
    from jobs.tablestore import TableStore


URI_VARIABLES = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
_STATED: set[str] = set()  # environments whose shared MLflow store this process has stated
log = logging.getLogger("runway.lifecycle")


def configure_mlflow(config: EnvConfig) -> str:
    """Point MLflow at the environment's tracking server and registry; return the experiment id."""
    import mlflow

    point_mlflow(config)
    experiment = mlflow.get_experiment_by_name(config.mlflow.experiment)
    if experiment is not None:
        return experiment.experiment_id
    location = None
    if config.mlflow.artifact_root:
        folder = re.sub(r"[^A-Za-z0-9_.-]+", "_", config.mlflow.experiment.strip("/"))
        location = f"{config.mlflow.artifact_root.rstrip('/')}/{folder}"
    return mlflow.create_experiment(config.mlflow.experiment, artifact_location=location)


def state_shared_mlflow(config: EnvConfig) -> None:
    """Say once per process and environment when other environments use the same MLflow store."""
    from jobs.common.config import shared_mlflow

    if config.env not in _STATED and (others := shared_mlflow(config)):
        log.warning(
            "MLflow tracking store %s is shared by %s and %s: runs and models are kept apart only by their "
            "experiment and model names; set RUNWAY_%s_MLFLOW_TRACKING_URI for a store of its own",
            config.mlflow.tracking_uri, config.env, ", ".join(others), config.env.upper(),
        )  # fmt: skip
    _STATED.add(config.env)


def pinned_requirements(packages: tuple[str, ...]) -> list[str]:
    """A logged model's scoring environment, pinned to this one's versions (MLflow's import tracing
    is slower and can miss or over-include packages)."""
    from importlib.metadata import version

    return [f"{package}=={version(package)}" for package in packages]


def point_mlflow(config: EnvConfig) -> None:
    """Point MLflow at the environment's tracking server and registry (no call to either); says
    once per process when other environments share that server."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import mlflow

    state_shared_mlflow(config)

    # MLflow also exports the URIs as MLFLOW_TRACKING_URI / MLFLOW_REGISTRY_URI for child processes,
    # which Runway's config reads as overrides: keep the environment as it was, so another
    # environment's config, loaded later in this process or by a job it starts, is not redirected.
    use_credentials(config.mlflow)
    exported = {key: os.environ.get(key) for key in URI_VARIABLES}
    mlflow.set_tracking_uri(config.mlflow.tracking_uri)
    mlflow.set_registry_uri(config.mlflow.registry_uri or config.mlflow.tracking_uri)
    for key, value in exported.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def mlflow_client(config: EnvConfig):
    import mlflow

    configure_mlflow(config)
    return mlflow.MlflowClient()


def with_gold_labels(
    config: EnvConfig, store: TableStore, rows: pd.DataFrame, window: Window | None = None
) -> pd.DataFrame:
    """Predictions (batch or logged) with gold's label joined on the use case's keys (null where gold
    has none), from gold's ``window`` (batch scoring's, whose rows are that window's) or any date
    (requests may name entities of any date); rows that do not carry every key come back
    unchanged. One read of gold's keys and label."""

    features, label = config.use_case.features, config.use_case.model.label
    keys = list(features.keys)
    if rows.empty or not set(keys) <= set(rows.columns) or rows[keys].isna().all(axis=None):
        return rows
    dates = (features.date_column, window.start, window.end) if window is not None else None
    gold = store.read_pandas(store.name("gold", features.table), window=dates, columns=[*keys, label])
    keyed = rows.dropna(subset=keys).astype(gold[keys].dtypes.to_dict())
    return pd.concat([keyed.merge(gold, on=keys, how="left"), rows[rows[keys].isna().any(axis=1)]])


def labelled_gold(
    store: TableStore, config: EnvConfig, window: Window, *, version: int | None = None
) -> tuple[pd.DataFrame, int]:
    """The window's gold rows that have a label (date, features, label) as pandas, and the Delta
    version read (pinned, for lineage)."""
    features, model = config.use_case.features, config.use_case.model
    table = store.name("gold", features.table)
    version = store.version(table) if version is None else version
    check_gold_columns(store.schema(table), config, f"gold table {table}")
    columns = list(dict.fromkeys(
        [features.date_column, *features.keys, *model.features.categorical, *model.features.numeric, model.label]
    ))  # fmt: skip
    # In a fixed order (date, keys), not the files' order: estimators that sample rows (early
    # stopping's validation split) then fit the same model whatever the table's layout.
    frame = store.read_pandas(
        table,
        version=version,
        window=(features.date_column, window.start, window.end),
        columns=columns,
        order_by=[features.date_column, *features.keys],
    )
    frame = frame[frame[model.label].notna()].reset_index(drop=True)
    if frame.empty:
        raise MissingInputError(f"no labelled rows in {table} for {window}")
    check_binary_label(frame[model.label], f"{table}'s label {model.label!r} in {window}")
    return frame, version


def check_binary_label(labels: pd.Series, what: str, both: bool = False) -> None:
    """A binary task's labels are 0 and 1 (``both``: each of them present, as fitting needs); else
    one sentence, bad input (a retry cannot make a count column binary)."""
    numeric = pd.to_numeric(labels, errors="coerce")  # a text label is NaN here: not binary
    values = sorted({float(v) for v in numeric.dropna().unique()})
    if numeric.isna().any() or not set(values) <= {0.0, 1.0}:
        shown = sorted(map(str, labels.dropna().unique()))[:6]
        raise BadInputError(
            f"{what} holds {shown}{' ...' if labels.nunique() > 6 else ''}: task binary needs labels 0 and 1"
        )
    if both and len(values) < 2:
        raise BadInputError(f"{what} holds only {values[0]:g}: a binary classifier needs both 0 and 1 to fit")


def pinned_gold_version(store: TableStore, config: EnvConfig, tags: dict[str, str]) -> int | None:
    """The gold table's Delta version a model version was trained on (its lineage tag), so that
    validation and comparison score the rows training held out, whatever gold became since."""
    table = store.name("gold", config.use_case.features.table)
    recorded = tags.get(f"delta.version.{table}")
    return int(recorded) if recorded not in (None, "") else None


def load_version(config: EnvConfig, version: str):
    import mlflow

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
