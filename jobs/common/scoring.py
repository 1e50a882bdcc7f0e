"""Scoring with a registered model version, shared by batch and streaming inference.

The alias (``Champion``) is resolved to a concrete version once per batch job or micro-batch, so
every prediction names the version that made it and a promotion takes effect on the next run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from jobs.common.errors import BadInputError

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

    from jobs.common.config import EnvConfig

log = logging.getLogger("runway.scoring")

PREDICTION = "prediction"  # P(label = 1)
PREDICTED_LABEL = "predicted_label"
# MLflow signature column types that take a Spark numeric column (cast to the signature's type).
NUMERIC_TYPES = {"double", "float", "long", "integer"}
SPARK_NUMERIC = ("tinyint", "smallint", "int", "bigint", "float", "double", "decimal")


class NoModelVersionError(BadInputError):
    """The alias points at no version (nothing promoted yet)."""


class SignatureMismatchError(BadInputError):
    """The rows to score do not carry the columns (or types) the model's signature asks for."""


@dataclass(frozen=True)
class ModelRef:
    """A concrete registered model version: what scored a row, for its prediction record."""

    name: str
    version: str
    run_id: str
    alias: str
    threshold: float
    inputs: tuple[tuple[str, str], ...]  # (column, MLflow type) in signature order

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


def resolve_model(config: EnvConfig, alias: str | None = None) -> ModelRef:
    """The version ``alias`` (default: the config's, ``Champion``) points at now, with its signature."""
    import mlflow

    from jobs.common.registry import ModelRegistry

    alias = alias or config.champion_alias
    name = config.registered_model_name
    version = ModelRegistry.for_config(config).by_alias(alias)  # an outage is transient, not "no model"
    if version is None:
        raise NoModelVersionError(
            f"model {name} has no '{alias}' version yet: train and promote one first "
            f"(the {config.env}_training DAG) before scoring"
        )
    info = mlflow.models.get_model_info(f"models:/{name}/{version.version}")
    if info.signature is None or info.signature.inputs is None:
        raise SignatureMismatchError(f"model {name} v{version.version} has no input signature to score with")
    inputs = tuple((spec.name, str(spec.type)) for spec in info.signature.inputs.inputs)
    threshold = float((info.metadata or {}).get("threshold", 0.5))
    return ModelRef(name, str(version.version), version.run_id, alias, threshold, inputs)


def check_signature(model: ModelRef, columns: dict[str, str]) -> None:
    """Raise one sentence naming every input the rows lack or carry with an incompatible type.

    ``columns`` maps the rows' column names to Spark simple types."""
    missing = [name for name, _ in model.inputs if name not in columns]
    wrong = [
        f"{name} ({columns[name]}, model expects {kind})"
        for name, kind in model.inputs
        if name in columns and _incompatible(kind, columns[name])
    ]
    problems = []
    if missing:
        problems.append(f"missing columns {missing}")
    if wrong:
        problems.append(f"incompatible types {wrong}")
    if problems:
        raise SignatureMismatchError(
            f"model {model.name} v{model.version} ({model.alias}) cannot score these rows: "
            + "; ".join(problems)
        )


def _incompatible(signature_type: str, spark_type: str) -> bool:
    numeric = spark_type.startswith(SPARK_NUMERIC)
    if signature_type in NUMERIC_TYPES:
        return not numeric
    if signature_type == "string":
        return spark_type != "string"
    return False


def model_input_columns(model: ModelRef) -> list[Column]:
    """The signature's columns, numerics cast to the signature's type (Delta ints → double)."""
    from pyspark.sql import functions as F

    spark_type = {"double": "double", "float": "float", "long": "bigint", "integer": "int"}
    return [
        F.col(name).cast(spark_type[kind]).alias(name) if kind in spark_type else F.col(name)
        for name, kind in model.inputs
    ]


_UDFS: dict[str, Any] = {}


def model_udf(spark: SparkSession, model: ModelRef):
    """``mlflow.pyfunc.spark_udf`` of a version (cached: one per version per process). The model's
    pyfunc returns both classes' probabilities, hence ``array<double>``."""
    import mlflow

    if model.uri not in _UDFS:
        _UDFS[model.uri] = mlflow.pyfunc.spark_udf(
            spark, model.uri, result_type="array<double>", env_manager="local"
        )
    return _UDFS[model.uri]


def score(
    df: DataFrame,
    model: ModelRef,
    udf,
    *,
    keys: list[str],
    date_column: str,
    mode: str,
    run_id: str,
    scored_at: datetime,
) -> DataFrame:
    """Rows of the ``predictions`` table: keys, date, the model inputs as scored, P(label = 1), the
    label at the model's threshold, and which model version scored them, when and in which run."""
    from pyspark.sql import functions as F

    check_signature(model, {f.name: f.dataType.simpleString() for f in df.schema.fields})
    inputs = model_input_columns(model)
    # The UDF loads the model once per task: no more tasks than cores (never adds partitions).
    df = df.coalesce(df.sparkSession.sparkContext.defaultParallelism)
    # A key may be the date or a model input too (a use case keyed by its day): each column once.
    identity = [c for c in dict.fromkeys([*keys, date_column]) if c not in dict(model.inputs)]
    scored = df.select(*identity, *inputs).withColumn(
        PREDICTION, F.element_at(udf(F.struct(*[F.col(name) for name, _ in model.inputs])), 2)
    )
    return scored.select(
        *identity,
        *[name for name, _ in model.inputs],
        F.col(PREDICTION).cast("double").alias(PREDICTION),
        (F.col(PREDICTION) >= F.lit(model.threshold)).cast("int").alias(PREDICTED_LABEL),
        F.lit(model.threshold).cast("double").alias("threshold"),
        F.lit(model.name).alias("model_name"),
        F.lit(model.version).alias("model_version"),
        F.lit(model.run_id).alias("model_run_id"),
        F.lit(model.alias).alias("model_alias"),
        F.lit(mode).alias("scoring_mode"),
        F.lit(run_id).alias("run_id"),
        F.lit(scored_at).cast("timestamp").alias("scored_at"),
    )
