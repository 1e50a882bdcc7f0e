"""Monitoring settings and the retraining policy."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from jobs.config.base import StrictModel


class RetrainingPolicy(StrictModel):
    """When drift triggers a retrain: ``violations`` of the last ``of_last`` monitored windows
    (the latest among them) violate a threshold, and no drift retrain ran in the cooldown."""

    violations: int = Field(2, ge=1)
    of_last: int = Field(3, ge=1)
    cooldown_days: int = Field(7, ge=0, description="days (of data time) after a drift retrain")
    checks: list[Literal["data_drift", "prediction_drift", "quality"]] = [
        "data_drift",
        "prediction_drift",
        "quality",
    ]

    @model_validator(mode="after")
    def _check(self) -> RetrainingPolicy:
        if self.violations > self.of_last:
            raise ValueError("violations cannot exceed of_last")
        return self


MonitoringSource = Literal["predictions", "inference_log"]


class MonitoringConfig(StrictModel):
    """Drift and quality checks of scored windows against the Champion's training reference."""

    sources: list[MonitoringSource] = Field(
        ["predictions"],
        min_length=1,
        description="what the monitoring DAG watches: batch and streaming predictions (ml.predictions) "
        "and/or the serving endpoint's requests (ml.inference_log)",
    )
    drift_share: float = Field(
        0.1, gt=0, le=1, description="dataset drift: share of drifted features >= this"
    )
    numeric_method: str = Field("wasserstein", description="Evidently stattest for numeric features")
    numeric_threshold: float = Field(
        1.0, gt=0, description="normed Wasserstein: shift in reference std units"
    )
    categorical_method: str = Field(
        "jensenshannon", description="Evidently stattest for categorical features"
    )
    categorical_threshold: float = Field(0.1, gt=0)
    prediction_threshold: float = Field(0.5, gt=0, description="prediction drift (numeric_method) threshold")
    reference_max_rows: int = Field(20_000, ge=100, description="rows sampled from the training window")
    current_max_rows: int = Field(50_000, ge=100, description="rows sampled from the monitored window")
    quality_min_rows: int = Field(200, ge=1, description="labelled rows needed to judge quality")
    quality_floors: dict[str, float] = Field(default_factory=lambda: {"roc_auc": 0.6})
    quality_ceilings: dict[str, float] = Field(default_factory=lambda: {"calibration_error": 0.15})
    policy: RetrainingPolicy = RetrainingPolicy()

    @field_validator("sources")
    @classmethod
    def _distinct_sources(cls, sources: list[str]) -> list[str]:
        if len(set(sources)) != len(sources):
            raise ValueError(f"monitoring.sources lists a source twice: {sources}")
        return sources
