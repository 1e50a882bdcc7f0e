"""The use case's row transforms shared by the feature pipeline and streaming inference: typing raw
values strictly, flagging duplicates, the quarantine table's shape, and the feature SQL over silver
views. Pure DataFrame → DataFrame functions (Spark), plus the one windowed read of silver.

On the DAG parse path (the DAG factories import it): pyspark, mlflow, pyarrow and the engines are
imported in the functions that use them.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from jobs.config.base import ConfigError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from jobs.config.env import EnvConfig
    from jobs.config.use_case import SourceConfig
    from jobs.tablestore import TableStore

QUARANTINE_TABLE = "quarantine"


def quarantine_frame(
    df: DataFrame, source: str, layer: str, record: Any, reasons: Any, run_id: str, row_key: Any = None
) -> DataFrame:
    """Rows in the quarantine table's shape: what failed, where it came from, the raw record."""
    from pyspark.sql import functions as F

    return df.select(
        F.lit(source).alias("source"),
        F.lit(layer).alias("layer"),
        F.col("_file_date").alias("file_date"),
        F.col("_source_file").alias("source_file"),
        (row_key if row_key is not None else F.lit(None)).cast("string").alias("row_key"),
        record.cast("string").alias("record"),
        reasons.cast("array<string>").alias("failed_checks"),
        F.lit(run_id).alias("run_id"),
        F.current_timestamp().alias("quarantined_at"),
    )


def type_rows(
    bronze: DataFrame, source: SourceConfig, fraction: float = 1.0, carry: tuple[str, ...] = ()
) -> DataFrame:
    """Typed columns plus ``_record`` (raw JSON), ``_row_key``, ``event_date`` and ``_problems``
    (and the ``carry`` columns, unchanged).

    ``_problems`` lists why a row cannot enter silver: unparseable values, missing keys, an event
    date that is missing or outside its file's day. Sampling (``fraction`` < 1) is deterministic on
    the raw key values, so reruns keep the same subset.
    """
    from pyspark.sql import functions as F

    columns = list(source.columns)
    raw = bronze.select(
        *[
            F.when(F.trim(F.col(c)).isin(source.null_values), None).otherwise(F.trim(F.col(c))).alias(c)
            for c in columns
        ],
        F.to_json(F.struct(*columns)).alias("_record"),
        "_source_file",
        "_file_date",
        "_ingested_at",
        *carry,
    )
    if source.sampled and fraction < 1:
        bucket = F.pmod(F.xxhash64(*[F.coalesce(F.col(k), F.lit("")) for k in source.keys]), F.lit(10_000))
        raw = raw.where(bucket < int(round(fraction * 10_000)))
    typed = raw.select(
        *[_strict_cast(c, t).alias(c) for c, t in source.columns.items()],
        *[F.col(c).alias(f"_raw_{c}") for c in columns],
        "_record",
        "_source_file",
        "_file_date",
        "_ingested_at",
        *carry,
    )
    problems = [
        F.when(
            F.col(f"_raw_{c}").isNotNull() & F.col(c).isNull(),
            F.concat(F.lit(f"invalid {t} in {c}: '"), F.col(f"_raw_{c}"), F.lit("'")),
        )
        for c, t in source.columns.items()
    ]
    problems += [F.when(F.col(k).isNull(), F.lit(f"missing key {k}")) for k in source.keys]
    if source.event_date:
        typed = typed.withColumn("event_date", F.expr(source.event_date).cast("date"))
        problems.append(F.when(F.col("event_date").isNull(), F.lit("event date cannot be derived")))
        problems.append(
            F.when(
                F.col("_file_date").isNotNull() & (F.col("event_date") != F.col("_file_date")),
                F.concat(
                    F.lit("event date "), F.col("event_date").cast("string"), F.lit(" is not its file's day")
                ),
            )
        )
    return typed.select(
        *columns,
        *(["event_date"] if source.event_date else []),
        "_record",
        "_source_file",
        "_file_date",
        "_ingested_at",
        F.concat_ws("|", *[F.col(k).cast("string") for k in source.keys]).alias("_row_key"),
        F.filter(F.array(*problems), lambda p: p.isNotNull()).alias("_problems"),
        *carry,
    )


# Spark's casts accept prefixes (``2013-01-17T1`` is 01:00); a value must be whole to be read.
STRICT_FORMATS = {
    "date": r"^\d{4}-\d{2}-\d{2}$",
    "timestamp": r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?)?(Z|[+-]\d{2}(:?\d{2})?)?$",
    "int": r"^[+-]?\d+$",
    "bigint": r"^[+-]?\d+$",
}


def _strict_cast(column: str, kind: str):
    """``try_cast`` of a raw string that only accepts whole values of ``kind`` (else null: invalid)."""
    from pyspark.sql import functions as F

    cast = F.expr(f"try_cast(`{column}` AS {kind})")
    pattern = STRICT_FORMATS.get(kind)
    return cast if pattern is None else F.when(F.col(f"`{column}`").rlike(pattern), cast)


def deduplicate(typed: DataFrame, keys: list[str]) -> DataFrame:
    """Flag all but the latest-ingested row of each natural key as a duplicate in ``_problems``."""
    from pyspark.sql import Window as W
    from pyspark.sql import functions as F

    valid = F.size("_problems") == 0
    order = W.partitionBy(valid, *keys).orderBy(
        F.col("_ingested_at").desc(), F.col("_source_file").desc(), "_record"
    )
    rank = F.row_number().over(order)
    duplicate = F.when(valid & (rank > 1), F.array(F.lit("duplicate of a row with the same natural key")))
    return typed.withColumn(
        "_problems", F.when(duplicate.isNotNull(), duplicate).otherwise(F.col("_problems"))
    )


def build_features(spark: SparkSession, sql: str, views: dict[str, DataFrame]) -> DataFrame:
    """Run the use case's feature SQL over ``views`` registered as temporary views."""
    for name, frame in views.items():
        frame.createOrReplaceTempView(name)
    return spark.sql(sql)


def feature_sql(config: EnvConfig) -> str:
    """The use case's feature SQL (``<use case>/sql/<features.sql>``)."""
    path = config.use_case.file("sql", config.use_case.features.sql)
    try:
        return path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"use_case.features.sql: {path} not found") from None


def silver_views(
    store: TableStore, sources: dict[str, SourceConfig], first: date, end: date, *, skip: tuple[str, ...] = ()
) -> dict[str, DataFrame]:
    """The published silver tables as the feature SQL's views: daily sources for ``[first, end)``
    and the ``lookback_days`` before it (the history lags and trailing windows read), reference
    sources whole; tables not loaded yet and ``skip`` are left out."""
    views = {}
    for name, source in sources.items():
        table = store.name("silver", name)
        if name in skip or not store.exists(table):
            continue
        since = first - timedelta(days=source.lookback_days)
        views[name] = store.read(table, window=("event_date", since, end) if source.kind == "daily" else None)
    return views


def looks_back(sources: dict[str, SourceConfig]) -> bool:
    """Whether any source gives the feature SQL history before the window."""
    return any(source.lookback_days for source in sources.values())


def in_window(features: DataFrame, date_column: str, start: date, end: date) -> DataFrame:
    """The feature SQL's rows dated in ``[start, end)``: with history in the views, the SQL also
    yields rows of the days it looked back over, which belong to their own refresh."""
    from pyspark.sql import functions as F

    return features.where((F.col(date_column) >= F.lit(start)) & (F.col(date_column) < F.lit(end)))
