"""Fixtures shared by job tests."""

from __future__ import annotations

from datetime import date

import pytest

from jobs.config.platform import MlflowSettings
from jobs.config.use_case import TrainingConfig
from jobs.core.window import Window
from jobs.features.refresh import JobContext, refresh
from jobs.features.seed import seed
from tests.support import make_config


@pytest.fixture(scope="session")
def trained(spark, tmp_path_factory):
    """Six real weeks of gold, then one training run tracked in a fresh MLflow store."""
    root = tmp_path_factory.mktemp("train")
    config = make_config(root)
    use_case = config.use_case.model_copy(
        update={
            "model": config.use_case.model.model_copy(
                update={"training": TrainingConfig(window_days=42, validation_days=7, test_days=7)}
            )
        }
    )
    mlflow_settings = MlflowSettings(
        tracking_uri=f"sqlite:///{root / 'mlflow.db'}",
        artifact_root=str(root / "artifacts"),
        experiment="/runway/dev/test",
    )
    config = config.model_copy(update={"use_case": use_case, "mlflow": mlflow_settings})
    window = Window(date(2013, 1, 1), date(2013, 2, 12))
    seed(config, window)
    ctx = JobContext.open(config, "refresh")
    refresh(ctx, window)
    from jobs.modeling.train import train

    result = train(config, ctx.store, window, run_id="run-1", dag_id="dev_training", reason="manual")
    return config, result, ctx.store


CHAMPION = "Champion"


@pytest.fixture(scope="module")
def champion(trained):
    """The trained version as Champion (the alias is removed again after the module)."""
    import mlflow

    config, result, store = trained
    client = mlflow.MlflowClient(
        tracking_uri=config.mlflow.tracking_uri, registry_uri=config.mlflow.tracking_uri
    )
    client.set_registered_model_alias(config.registered_model_name, CHAMPION, result["version"])
    yield config, result, store, client
    client.delete_registered_model_alias(config.registered_model_name, CHAMPION)
