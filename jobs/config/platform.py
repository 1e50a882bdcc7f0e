"""Where an environment runs: storage, MLflow, compute, schedules, tables, Airflow."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from jobs.config.base import StrictModel


class Schemas(StrictModel):
    bronze: str = "bronze"
    silver: str = "silver"
    gold: str = "gold"
    ml: str = "ml"
    monitoring: str = "monitoring"


class Storage(StrictModel):
    lakehouse_root: Path
    landing_root: Path
    reports_root: Path
    checkpoint_root: Path = Field(description="streaming checkpoints, under <root>/<env>/<query>")
    index_root: Path | None = Field(
        None,
        description="vector indexes, one folder per chunks-table version (default <lakehouse_root>/_indexes)",
    )


class MlflowSettings(StrictModel):
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


class Schedules(StrictModel):
    feature_refresh: str | None = "@daily"
    training: str | None = None
    training_on_new_features: bool = Field(False, description="also train when the gold Asset updates")
    batch_inference: str | None = None
    streaming_inference: str | None = None
    monitoring: str | None = None
    maintenance: str | None = "0 4 * * 0"
    knowledge_refresh: str | None = None
    assistant_monitoring: str | None = None


class MaintenanceConfig(StrictModel):
    """Table upkeep (jobs/maintenance.py): compaction and vacuum of every table of the catalog."""

    compact: bool = True
    vacuum: bool = True
    retention_hours: float = Field(
        168,
        ge=168,
        description="files no version of this many hours reads are deleted (Delta's minimum: 7 days)",
    )


class Notifications(StrictModel):
    """Where failure notifications go (validation failures, failed tasks)."""

    webhook_url: str | None = Field(None, description="POSTed a JSON message (Slack/Teams-style webhook)")
    email: list[str] = []


class Access(StrictModel):
    read_catalogs: list[str]
    write_catalog: str


class TableOptions(StrictModel):
    allow_schema_evolution: bool = False


class TableStoreSettings(StrictModel):
    engine: Literal["local", "spark"] = "local"
    # spark engine: "unity" uses <catalog>.<schema>.<table> (Databricks Unity Catalog); "session"
    # maps it to Spark's session catalog as <catalog>_<schema>.<table> (a cluster with a shared
    # metastore); "path" keeps tables at <lakehouse_root>/<catalog>/<schema>/<table>, as the local
    # engine does (a plain cluster: no metastore, every application finds the tables by location).
    namespace: Literal["unity", "session", "path"] = "unity"


class DatabricksCompute(StrictModel):
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


class SparkSubmitCompute(StrictModel):
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


class Compute(StrictModel):
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


class AirflowSettings(StrictModel):
    owner: str = "runway"
    retries: int = Field(2, ge=0)
    retry_delay_minutes: float = Field(5, ge=0)
    start_date: date = Field(description="default: the use case's start_date")
    tags: list[str] = []
