"""One environment's whole config (``EnvConfig``) and the places derived from it."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from jobs.config.assistant import AssistantConfig
from jobs.config.base import IDENTIFIER, ConfigError, ConfigKeyError, StrictModel
from jobs.config.monitoring import MonitoringConfig
from jobs.config.platform import (
    Access,
    AirflowSettings,
    Compute,
    MaintenanceConfig,
    MlflowSettings,
    Notifications,
    Schedules,
    Schemas,
    Storage,
    TableOptions,
    TableStoreSettings,
)
from jobs.config.release import (
    InferenceConfig,
    PromotionConfig,
    RolloutConfig,
    ServingConfig,
    ValidationConfig,
)
from jobs.config.targets import ModelTarget, TargetKey
from jobs.config.use_case import SourceConfig, UseCase


class EnvConfig(StrictModel):
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
                f"{streaming.source!r} is not a source of use case {self.use_case.name!r} (sources: "
                f"{sorted(sources)})",
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
    def model_target(self) -> ModelTarget:
        """The use case's model: ``<catalog>.<ml schema>.<model>`` in the environment's experiment."""
        return ModelTarget(
            key="model",
            env=self.env,
            registered_model_name=f"{self.catalog}.{self.schemas.ml}.{self.use_case.model.name}",
            experiment=self.mlflow.experiment,
            champion_alias=self.inference.alias,
            promotion=self.promotion,
            served_alias=self.serving.alias or self.inference.alias,
            traffic_spec=self.serving.traffic,
        )

    @property
    def assistant_target(self) -> ModelTarget:
        """The assistant's chain: ``<catalog>.<ml>.<assistant name>`` in the experiment
        ``/runway/<env>/<assistant name>``, its prompt ``<catalog>.<ml>.<assistant name>_prompt``;
        promotion rules and aliases as for the use case's model."""
        if self.assistant is None:
            raise ConfigError(f"environment {self.env!r} configures no assistant (the `assistant:` section)")
        name = self.assistant.name
        return ModelTarget(
            key="assistant",
            env=self.env,
            registered_model_name=f"{self.catalog}.{self.schemas.ml}.{name}",
            experiment=f"/runway/{self.env}/{name}",
            champion_alias=self.inference.alias,
            promotion=self.promotion,
            served_alias=self.inference.alias,
            prompt_name=f"{self.catalog}.{self.schemas.ml}.{name}_prompt",
        )

    def target(self, key: TargetKey = "model") -> ModelTarget:
        """The target named ``key``: ``model`` (the use case's) or ``assistant`` (the chain)."""
        return self.assistant_target if key == "assistant" else self.model_target

    @property
    def registered_model_name(self) -> str:
        """The use case model's name (``model_target``), the Unity Catalog three-level name."""
        return self.model_target.registered_model_name

    def streaming_source(self) -> tuple[str, SourceConfig]:
        """(name, config) of the source streaming events carry; one sentence when there is none."""
        name = self.inference.streaming.source
        if name is None:
            raise ConfigError(
                f"use case {self.use_case.name!r} declares no streaming source: set "
                "inference.streaming.source "
                "(and landing_dir, required) in its use_case.yaml"
            )
        return name, self.use_case.sources[name]

    @property
    def champion_alias(self) -> str:
        """The alias scoring follows and promotion moves (``inference.alias``): one setting for both."""
        return self.inference.alias

    def table_options(self, schema: str, table: str) -> TableOptions:
        return self.tables.get(f"{schema}.{table}", TableOptions())


STREAMING_QUERY = "streaming_inference"  # the streaming query's name (its checkpoint folder)


def checkpoint_dir(config: EnvConfig) -> Path:
    """The streaming query's checkpoint: ``<checkpoint_root>/<env>/streaming_inference``."""
    return Path(config.storage.checkpoint_root) / config.env / STREAMING_QUERY
