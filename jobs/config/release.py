"""Validation, promotion, inference, serving, load test and canary settings.

On the DAG parse path (the DAG factories import it): pyspark, mlflow, pyarrow and the engines are
imported in the functions that use them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from jobs.config.base import StrictModel


class ValidationConfig(StrictModel):
    """The validation gate's mode and thresholds (metrics are those of jobs.modeling.estimator)."""

    mode: Literal["disabled", "dry_run", "enabled"] = "enabled"
    floors: dict[str, float] = Field(default_factory=lambda: {"roc_auc": 0.6}, description="metric >= floor")
    ceilings: dict[str, float] = Field(
        default_factory=lambda: {"calibration_error": 0.1}, description="metric <= ceiling"
    )
    metric: str = Field("roc_auc", description="the metric compared with the Champion and the baseline")
    max_regression_vs_champion: float = Field(0.01, ge=0, description="how much worse than Champion may pass")
    min_gain_vs_baseline: float = Field(0.02, ge=0, description="margin over the business baseline")
    slice_floor: float = Field(0.5, description="each slice's metric >= this")
    slice_min_rows: int = Field(300, ge=1, description="smaller slices are reported, not judged")
    required_tags: list[str] = ["data.test_start", "data.test_end", "git.commit", "trigger.reason"]


class PromotionConfig(StrictModel):
    """How a Challenger replaces the Champion."""

    metric: str = "roc_auc"
    min_improvement: float = Field(0.0, description="Challenger must beat Champion by at least this")
    approval: Literal["auto", "human"] = Field(
        "auto", description="human: an approval record by a person before Champion moves"
    )
    approvers: list[str] = Field(
        default_factory=list, description="who may approve (Airflow user names); empty: any user"
    )
    approval_timeout_hours: float = Field(
        72, gt=0, description="an unanswered approval request expires (the Champion stays)"
    )


class StreamingSettings(StrictModel):
    """Streaming inference: events land as JSON-lines files; one checkpoint per environment."""

    source: str | None = Field(
        None, description="the use case source whose columns the events carry (none: no streaming)"
    )
    landing_dir: Path = Field(description="where event files (*.jsonl) land")
    required: list[str] = Field(
        default_factory=list, description="fields an event must carry (besides the source's keys)"
    )
    trigger_seconds: float = Field(1.0, gt=0, description="continuous mode: micro-batch interval")
    max_files_per_trigger: int | None = Field(None, gt=0, description="cap per micro-batch (None: all)")


class InferenceConfig(StrictModel):
    """Batch and streaming scoring with the model version an alias points at."""

    alias: str = "Champion"
    predictions_table: str = Field("predictions", description="Delta table in the ml schema")
    streaming: StreamingSettings


class InferenceLogSettings(StrictModel):
    """The serving endpoint's inference table and its write-ahead log (jobs/serving/inference_log.py)."""

    enabled: bool = Field(True, description="log every request (off only to measure its cost)")
    table: str = Field("inference_log", description="Delta table in the ml schema")
    wal_root: Path = Field(description="write-ahead log folders, <root>/<env>: one server per folder")
    flush_rows: int = Field(1000, gt=0, description="commit to Delta after this many rows ...")
    flush_seconds: float = Field(5.0, gt=0, description="... or this many seconds")


class ServingConfig(StrictModel):
    """The online endpoint (``python -m jobs.serve``): MLflow's scoring protocol, the alias followed."""

    host: str = Field("127.0.0.1", description="bind address: loopback unless configured otherwise")
    port: int = Field(8000, gt=0, lt=65536)
    alias: str | None = Field(None, description="the alias served (default: inference.alias)")
    poll_seconds: float = Field(5.0, gt=0, description="how often the alias is resolved")
    max_batch_rows: int = Field(64, gt=0, description="rows scored by one predict at most")
    max_wait_ms: float = Field(2.0, ge=0, description="how long a request waits for others to batch with")
    max_body_bytes: int = Field(1_048_576, gt=0, description="larger bodies are answered 413")
    max_rows_per_request: int = Field(10_000, gt=0)
    admin_token_env: str = Field("RUNWAY_SERVING_TOKEN", description="the variable holding the admin token")
    client_tokens_env: str = Field(
        "RUNWAY_SERVING_CLIENT_TOKENS",
        description="the variable holding the scoring routes' bearer tokens (comma-separated); none: open",
    )
    client_tokens_file: Path | None = Field(
        None, description="a file of bearer tokens (one a line) the scoring routes accept too"
    )
    assistant_routes: bool = Field(
        True, description="serve the assistant's chain on /assistant/* (when configured)"
    )
    traffic: dict[str, Any] | None = Field(
        None,
        description="routes (alias or version, percent), shadow, sticky_key: jobs/config/traffic.py; "
        "default: all traffic to the served alias. The registered model's runway.traffic tag overrides it",
    )
    shadow_queue: int = Field(
        256, ge=0, description="shadow requests waiting at most; more are dropped, counted"
    )
    inference_log: InferenceLogSettings

    @field_validator("client_tokens_file", mode="before")
    @classmethod
    def _no_file(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("traffic")
    @classmethod
    def _valid_traffic(cls, spec: dict[str, Any] | None) -> dict[str, Any] | None:
        if spec is not None:
            from jobs.config.traffic import Traffic

            Traffic.from_dict(spec)
        return spec

    def wal_dir(self, env: str) -> Path:
        return Path(self.inference_log.wal_root) / env


class LoadTestSettings(StrictModel):
    """The load test before deploy (``jobs.load_test``): the candidate and the Champion, each behind
    the endpoint on loopback, driven by the same bounded Locust load."""

    users: int = Field(8, ge=1, le=256, description="concurrent closed-loop clients")
    seconds: float = Field(10, gt=0, le=300, description="how long each version is driven")
    rows_per_request: int = Field(1, ge=1, le=1000)
    rounds: int = Field(
        2, ge=1, le=5, description="alternating rounds per version; each version's best counts"
    )
    max_p99_ratio: float = Field(1.2, gt=0, description="candidate p99 <= this x the Champion's, same run")
    max_error_rate: float = Field(0.0, ge=0, le=1)
    max_p99_ms: float = Field(500, gt=0, description="absolute p99 limit")
    min_rps: float = Field(10, ge=0, description="absolute throughput floor")


class CanarySettings(StrictModel):
    """The canary ladder (``<env>_deployment``): the candidate's share of traffic, step by step,
    each step judged from the inference table before the next."""

    steps: list[float] = Field([5, 25, 50, 100], min_length=1, description="the candidate's percent per step")
    hold_seconds: float = Field(60, ge=0, description="each step holds at least this long ...")
    min_requests: int = Field(100, ge=1, description="... and until the candidate answered this many")
    timeout_seconds: float = Field(3600, gt=0, description="a step without enough traffic fails after this")
    max_error_rate_diff: float = Field(0.01, ge=0, description="candidate error rate minus the Champion's")
    max_p99_ratio: float = Field(
        1.5, gt=0, description="candidate p99 <= this x the Champion's, both answering during the step"
    )
    max_p99_ms: float = Field(1000, gt=0, description="the candidate's p99 ceiling at every step")
    max_prediction_drift: float = Field(
        0.5, gt=0, description="normed Wasserstein between the arms' predictions"
    )
    max_accuracy_drop: float = Field(
        0.02,
        ge=0,
        description="where labels arrived: breach when the accuracy "
        "difference's 95 % interval lies below -this",
    )
    min_labelled: int = Field(50, ge=1, description="labelled rows per arm before accuracy is judged")
    shadow_seconds: float = Field(
        0, ge=0, description="shadow the candidate this long before the ladder (0: no)"
    )
    min_shadow_agreement: float = Field(
        0.9, ge=0, le=1, description="share of rows whose label the shadow agrees on"
    )

    @field_validator("steps", mode="before")
    @classmethod
    def _from_text(cls, steps: Any) -> Any:
        return [s.strip() for s in steps.split(",")] if isinstance(steps, str) else steps  # "5,25,100"

    @field_validator("steps")
    @classmethod
    def _rising(cls, steps: list[float]) -> list[float]:
        if any(not 0 < s <= 100 for s in steps) or steps != sorted(steps):
            raise ValueError(f"canary steps must rise within (0, 100]: {steps}")
        return steps


class RolloutConfig(StrictModel):
    """Safe rollout: the load-test gate and the canary ladder (``<env>_deployment``)."""

    load_test: LoadTestSettings = LoadTestSettings()
    canary: CanarySettings = CanarySettings()
