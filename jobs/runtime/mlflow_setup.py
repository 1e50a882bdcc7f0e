"""Pointing MLflow at an environment's tracking server and registry."""

from __future__ import annotations

import logging
import os
import re
from importlib.metadata import version
from typing import TYPE_CHECKING

import mlflow

from jobs.config.loader import shared_mlflow
from jobs.runtime.identity import use_credentials

if TYPE_CHECKING:
    from jobs.config.env import EnvConfig
    from jobs.config.targets import ModelTarget

log = logging.getLogger("runway.mlflow")

URI_VARIABLES = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")

_STATED: set[str] = set()  # environments whose shared MLflow store this process has stated


def configure_mlflow(config: EnvConfig, target: ModelTarget | None = None) -> str:
    """Point MLflow at the environment's tracking server and registry; return the id of the
    target's experiment (default: the use case model's), created when missing."""

    point_mlflow(config)
    name = (target or config.model_target).experiment
    experiment = mlflow.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    location = None
    if config.mlflow.artifact_root:
        folder = re.sub(r"[^A-Za-z0-9_.-]+", "_", name.strip("/"))
        location = f"{config.mlflow.artifact_root.rstrip('/')}/{folder}"
    return mlflow.create_experiment(name, artifact_location=location)


def state_shared_mlflow(config: EnvConfig) -> None:
    """Say once per process and environment when other environments use the same MLflow store."""

    if config.env not in _STATED and (others := shared_mlflow(config)):
        log.warning(
            "MLflow tracking store %s is shared by %s and %s: runs and models are kept apart only by their "
            "experiment and model names; set RUNWAY_%s_MLFLOW_TRACKING_URI for a store of its own",
            config.mlflow.tracking_uri,
            config.env,
            ", ".join(others),
            config.env.upper(),
        )
    _STATED.add(config.env)


def pinned_requirements(packages: tuple[str, ...]) -> list[str]:
    """A logged model's scoring environment, pinned to this one's versions (MLflow's import tracing
    is slower and can miss or over-include packages)."""

    return [f"{package}=={version(package)}" for package in packages]


def point_mlflow(config: EnvConfig) -> None:
    """Point MLflow at the environment's tracking server and registry (no call to either); says
    once per process when other environments share that server."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import mlflow  # after MLFLOW_DISABLE_TELEMETRY is set

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

    configure_mlflow(config)
    return mlflow.MlflowClient()
