"""Scoring with a registered model version, shared by batch and streaming inference (and, later,
online serving): one definition of the prediction rows, made two ways with the same result —
in this process over Arrow (``score_arrow``: the local engine) or with ``spark_udf`` on Spark's
executors (``score``: clusters). ``score_frame`` picks for a Spark DataFrame.

The alias (``Champion``) is resolved to a concrete version once per batch job or micro-batch, so
every prediction names the version that made it and a promotion takes effect on the next run.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import mlflow
import numpy as np
import pyarrow as pa
from pyspark.sql import functions as F

from jobs.core.errors import BadInputError
from jobs.release.registry import ModelRegistry
from jobs.runtime.spark_session import default_parallelism
from jobs.tablestore.arrow import column_types

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa
    from pyspark.sql import Column, DataFrame, SparkSession

    from jobs.config.env import EnvConfig

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

    alias = alias or config.champion_alias
    name = config.registered_model_name
    version = ModelRegistry.for_config(config).by_alias(alias)  # an outage is transient, not "no model"
    if version is None:
        raise NoModelVersionError(
            f"model {name} has no '{alias}' version yet: train and promote one first "
            f"(the {config.env}_training DAG) before scoring"
        )
    return model_ref(name, str(version.version), version.run_id, alias)


def model_ref(name: str, version: str, run_id: str, alias: str = "") -> ModelRef:
    """A registered version with its signature and threshold (read from its MLflow model)."""

    info = mlflow.models.get_model_info(f"models:/{name}/{version}")
    if info.signature is None or info.signature.inputs is None:
        raise SignatureMismatchError(f"model {name} v{version} has no input signature to score with")
    # ``spec.type.name`` ("double"): ``str(spec.type)`` is "DataType.double", which no type check matched.
    inputs = tuple((spec.name, spec.type.name) for spec in info.signature.inputs.inputs)
    return ModelRef(name, version, run_id, alias, threshold_of(info.metadata), inputs)


def threshold_of(metadata: dict[str, Any] | None) -> float:
    """The decision threshold a logged model carries in its MLflow metadata (0.5 without one)."""
    return float((metadata or {}).get("threshold", 0.5))


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
    if spark_type == "void":  # no value in any row (JSON nulls): missing values of any type
        return False
    numeric = spark_type.startswith(SPARK_NUMERIC)
    if signature_type in NUMERIC_TYPES:
        return not numeric
    if signature_type == "string":
        return spark_type != "string"
    return False


def model_input_columns(model: ModelRef) -> list[Column]:
    """The signature's columns, numerics cast to the signature's type (Delta ints → double)."""

    spark_type = {"double": "double", "float": "float", "long": "bigint", "integer": "int"}
    return [
        F.col(name).cast(spark_type[kind]).alias(name) if kind in spark_type else F.col(name)
        for name, kind in model.inputs
    ]


_UDFS: dict[str, Any] = {}


def model_udf(spark: SparkSession, model: ModelRef):
    """``mlflow.pyfunc.spark_udf`` of a version (cached: one per version per process). The model's
    pyfunc returns both classes' probabilities, hence ``array<double>``."""

    if model.uri not in _UDFS:
        _UDFS[model.uri] = mlflow.pyfunc.spark_udf(
            spark, model.uri, result_type="array<double>", env_manager="local"
        )
    return _UDFS[model.uri]


def identity_columns(model: ModelRef, keys: list[str], date_column: str) -> list[str]:
    """The keys and the date that identify a prediction, each once (a key may be the date or a
    model input too: a use case keyed by its day)."""
    return [c for c in dict.fromkeys([*keys, date_column]) if c not in dict(model.inputs)]


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

    check_signature(model, {f.name: f.dataType.simpleString() for f in df.schema.fields})
    inputs = model_input_columns(model)
    # The UDF loads the model once per task: no more tasks than cores (never adds partitions).
    df = df.coalesce(default_parallelism(df.sparkSession))
    identity = identity_columns(model, keys, date_column)
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


# ---------------------------------------------------------------- in-process scoring (Arrow)

# MLflow signature types as the Arrow types the Spark path casts them to (``model_input_columns``).
_ARROW_INPUT_TYPES = {"double": "float64", "float": "float32", "long": "int64", "integer": "int32"}
_ARROW_NULL_AS = {"string": "string", "boolean": "bool"}  # an all-null column of these signature types
SIGNATURE_ARROW_TYPES = {**_ARROW_INPUT_TYPES, **_ARROW_NULL_AS}  # every signature type, as Arrow
_PYFUNCS: dict[str, Any] = {}


def load_pyfunc(model: ModelRef):
    """The version's pyfunc, loaded once per process (batch, streaming and serving reuse it)."""

    if model.uri not in _PYFUNCS:
        _PYFUNCS[model.uri] = mlflow.pyfunc.load_model(model.uri)
    return _PYFUNCS[model.uri]


def signature_inputs(rows: pa.RecordBatch | pa.Table, model: ModelRef) -> pa.Table:
    """The model's inputs of ``rows``, in signature order, cast to the signature's types (as the
    Spark path casts them); ``SignatureMismatchError`` names what is missing or mistyped."""

    table = pa.Table.from_batches([rows]) if isinstance(rows, pa.RecordBatch) else rows
    check_signature(model, column_types(table))

    def typed(name: str, kind: str):  # numerics always, others when null (an all-null JSON column)
        column = table[name]
        cast = kind in _ARROW_INPUT_TYPES or (pa.types.is_null(column.type) and kind in SIGNATURE_ARROW_TYPES)
        return column.cast(SIGNATURE_ARROW_TYPES[kind]) if cast else column

    return pa.table({name: typed(name, kind) for name, kind in model.inputs})


def positive_probability(pyfunc, frame) -> np.ndarray:
    """P(label = 1) per row from the version's pyfunc (``predict`` gives both classes' probabilities)."""

    proba = np.asarray(pyfunc.predict(frame) if len(frame) else [], dtype="float64")
    return proba[:, 1] if proba.ndim == 2 else proba


def _prepared(rows: pa.RecordBatch | pa.Table, model: ModelRef) -> tuple[pa.Table, dict[str, Any], Any]:
    """(the rows as a table, the model inputs cast to the signature's types, those inputs as the
    pandas frame the pyfunc takes)."""

    table = pa.Table.from_batches([rows]) if isinstance(rows, pa.RecordBatch) else rows
    inputs = signature_inputs(table, model)
    return table, {name: inputs[name] for name in inputs.column_names}, inputs.to_pandas()


def _prediction_rows(
    table, inputs, frame, pyfunc, model: ModelRef, *, keys, date_column, mode, run_id, scored_at
) -> pa.Table:

    count = len(table)
    prediction = positive_probability(pyfunc, frame)

    def constant(value, arrow_type) -> pa.Array:
        return pa.repeat(pa.scalar(value, arrow_type), count)

    columns = {
        **{name: table[name] for name in identity_columns(model, keys, date_column)},
        **inputs,
        PREDICTION: pa.array(prediction, pa.float64()),
        PREDICTED_LABEL: pa.array((prediction >= model.threshold).astype("int32"), pa.int32()),
        "threshold": constant(model.threshold, pa.float64()),
        "model_name": constant(model.name, pa.string()),
        "model_version": constant(model.version, pa.string()),
        "model_run_id": constant(model.run_id, pa.string()),
        "model_alias": constant(model.alias, pa.string()),
        "scoring_mode": constant(mode, pa.string()),
        "run_id": constant(run_id, pa.string()),
        "scored_at": constant(scored_at, pa.timestamp("us", tz="UTC")),
    }
    return pa.table(columns)


def score_arrow(rows: pa.RecordBatch | pa.Table, model: ModelRef, pyfunc, **run: Any) -> pa.Table:
    """The rows ``score`` makes, computed in this process (``run``: keys, date_column, mode,
    run_id, scored_at): the inputs reach the pyfunc as pandas, the prediction rows are built in
    Arrow. Same columns, types and values as the Spark UDF path."""
    return _prediction_rows(*_prepared(rows, model), pyfunc, model, **run)


def score_batches(batches: Iterable[pa.RecordBatch], model: ModelRef, pyfunc, **run: Any) -> pa.Table:
    """``score_arrow`` over record batches, in order: while the model predicts one batch (its
    predict releases the GIL), a thread converts the next one — never more than one ahead, so
    memory stays two batches' inputs plus the prediction rows."""

    pending = (batch for batch in batches if batch.num_rows)
    parts = []
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="score-prepare") as pool:
        first = next(pending, None)
        ahead = pool.submit(_prepared, first, model) if first is not None else None
        while ahead is not None:
            prepared = ahead.result()
            following = next(pending, None)
            ahead = pool.submit(_prepared, following, model) if following is not None else None
            parts.append(_prediction_rows(*prepared, pyfunc, model, **run))
    return pa.concat_tables(parts) if parts else pa.table({})


def score_frame(df: DataFrame, model: ModelRef, *, in_process: bool, **run: Any) -> DataFrame | pa.Table:
    """A Spark DataFrame's prediction rows (``run``: keys, date_column, mode, run_id, scored_at):
    collected as Arrow and scored in this process (the local engine commits Arrow with delta-rs
    anyway: no Python workers, no round trip through the JVM), or with ``spark_udf`` on the
    executors (clusters, where the rows should stay distributed)."""
    if not in_process:
        return score(df, model, model_udf(df.sparkSession, model), **run)
    check_signature(model, {f.name: f.dataType.simpleString() for f in df.schema.fields})
    columns = [*identity_columns(model, run["keys"], run["date_column"]), *(name for name, _ in model.inputs)]
    return score_arrow(df.select(*columns).toArrow(), model, load_pyfunc(model), **run)
