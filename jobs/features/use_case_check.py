"""Check a use case against its own shapes before any data flows: every column its config names
exists in the source schemas or in the gold SQL's output, every expectation in its suites exists in
Great Expectations and names a column of its source.

The gold SQL's output schema comes from a dry analysis: Spark analyses the SQL over empty silver
views built from the declared source schemas (through the same typing code the pipeline runs), so no
data is needed. Errors name the use case's file and the key.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from collections.abc import Iterable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING

from pyspark.errors import AnalysisException
from pyspark.sql import functions as F

from jobs.config.base import ConfigError
from jobs.config.env import EnvConfig
from jobs.config.use_case import USE_CASE_FILE, SourceConfig
from jobs.core.paths import PROJECT_ROOT
from jobs.features.pipeline import build_features, feature_sql
from jobs.features.quality import load_suite

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import StructType

log = logging.getLogger("runway.use_case_check")

# GX kwargs that name columns of the validated table.
_COLUMN_KWARGS = ("column", "column_A", "column_B")
_COLUMN_LIST_KWARGS = ("column_list",)


def _where(config: EnvConfig) -> str:
    return str(config.use_case.folder / USE_CASE_FILE)


def _first_line(exc: Exception) -> str:
    """The exception's first non-empty line (a Spark parse error starts with an empty one)."""
    return next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)


@contextlib.contextmanager
def _quiet_analysis():
    """PySpark's ``SQLQueryContextLogger`` logs the JVM's whole stack trace (~100 lines of JSON) for
    an expression that does not analyse: the sentence Runway raises says it; the trace goes to the
    debug log only."""
    logger = logging.getLogger("SQLQueryContextLogger")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    except Exception:
        log.debug("analysis failed", exc_info=True)
        raise
    finally:
        logger.setLevel(level)


def empty_silver_view(
    spark: SparkSession, name: str, source: SourceConfig, where: str = USE_CASE_FILE
) -> DataFrame:
    """The silver table ``name`` would hold, with no rows: the source's columns with their declared
    types, ``event_date`` from its expression over them (daily sources)."""

    typed = spark.range(0).select(
        *[F.lit(None).cast(kind).alias(column) for column, kind in source.columns.items()],
        F.lit(None).cast("string").alias("_source_file"),
    )
    if not source.event_date:
        return typed
    try:
        with _quiet_analysis():
            return typed.withColumn("event_date", F.expr(source.event_date).cast("date"))
    except AnalysisException as exc:
        raise ConfigError(
            f"{where}: use_case.sources.{name}.event_date: {source.event_date!r} does not analyse over the "
            "source's "
            f"columns: {_first_line(exc)}"
        ) from None


def gold_schema(spark: SparkSession, config: EnvConfig) -> StructType:
    """The gold SQL's output schema, from analysing it over empty silver views (no data read)."""

    sql = feature_sql(config)
    sources = config.use_case.sources.items()
    views = {name: empty_silver_view(spark, name, source, _where(config)) for name, source in sources}
    try:
        with _quiet_analysis():
            return build_features(spark, sql, views).schema
    except AnalysisException as exc:
        path = config.use_case.file("sql", config.use_case.features.sql)
        raise ConfigError(
            f"{path}: the feature SQL does not analyse over the declared sources {sorted(views)}: "
            f"{_first_line(exc)}"
        ) from None


def check_gold_columns(columns: Iterable[str], config: EnvConfig, what: str) -> None:
    """Every gold column the use case names (keys, date, label, features, slices) is in ``columns``
    (the SQL's output or a gold table's schema, named by ``what``)."""
    present = set(columns)
    features, model = config.use_case.features, config.use_case.model
    named = {
        "use_case.features.keys": features.keys,
        "use_case.features.date_column": [features.date_column],
        "use_case.model.label": [model.label],
        "use_case.model.features.numeric": model.features.numeric,
        "use_case.model.features.categorical": model.features.categorical,
        "use_case.model.slices": model.slices,
    }
    for key, names in named.items():
        if missing := [n for n in names if n not in present]:
            raise ConfigError(
                f"{_where(config)}: {key}: {missing} not among the columns of {what} ({sorted(present)})"
            )


def check_suites(config: EnvConfig) -> None:
    """Every suite exists, parses, uses expectation types GX has, and names its source's columns."""

    for name, source in config.use_case.sources.items():
        if not source.expectations:
            continue
        path = config.use_case.file("expectations", source.expectations)
        _, expectations = load_suite(path)
        columns = {*source.columns, *(["event_date"] if source.event_date else [])}
        for expectation in expectations:
            named = [expectation.kwargs[k] for k in _COLUMN_KWARGS if k in expectation.kwargs]
            for key in _COLUMN_LIST_KWARGS:
                named += list(expectation.kwargs.get(key) or [])
            if unknown := [c for c in named if isinstance(c, str) and c not in columns]:
                raise ConfigError(
                    f"expectation suite {path}: {expectation.type} names {unknown}, not columns of source "
                    f"{name!r} ({sorted(columns)})"
                )


def check_use_case(spark: SparkSession, config: EnvConfig, *, suites: bool = True) -> StructType:
    """The load-time checks that need Spark (and, with ``suites``, GX); returns the gold SQL's
    output schema. Well under a second on a running session: every job that has one runs them."""
    schema = gold_schema(spark, config)
    table = config.use_case.features.table
    check_gold_columns(schema.fieldNames(), config, f"the gold SQL's output (gold.{table})")
    if suites:
        check_suites(config)
    return schema


_CHECKER_MODULES = (
    "jobs/features/use_case_check.py",
    "jobs/features/pipeline.py",
    "jobs/features/quality.py",
)
_CHECKER_PACKAGES = ("pyspark", "great_expectations")


def fingerprint(config: EnvConfig) -> str:
    """What the checks' outcome depends on: the loaded use case, its SQL and suites files, the
    checking code and the Spark and GX versions. Equal fingerprints give equal outcomes."""

    digest = hashlib.sha256(config.use_case.model_dump_json().encode())
    files = [
        path
        for kind in ("sql", "expectations")
        for path in sorted((config.use_case.folder / kind).rglob("*"))
    ]
    files += [PROJECT_ROOT / module for module in _CHECKER_MODULES]
    for path in files:
        if path.is_file():
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
    for package in _CHECKER_PACKAGES:
        with contextlib.suppress(PackageNotFoundError):
            digest.update(f"{package}=={version(package)}".encode())
    return digest.hexdigest()[:32]


def check_use_case_once(spark: SparkSession, config: EnvConfig, *, suites: bool = True) -> None:
    """``check_use_case`` unless a check of the same fingerprint already passed: each task of a
    pipeline would otherwise repeat it (seconds, most of it waiting for GX's import). A pass is
    recorded as ``<reports_root>/<env>/use_case_checks/<fingerprint>.json``; a failure is not."""
    record = (
        Path(config.storage.reports_root) / config.env / "use_case_checks" / f"{fingerprint(config)}.json"
    )
    with contextlib.suppress(OSError, ValueError):
        if json.loads(record.read_text()).get("suites") or not suites:
            return
    schema = check_use_case(spark, config, suites=suites)
    record.parent.mkdir(parents=True, exist_ok=True)
    passed = {"use_case": config.use_case.name, "suites": suites, "gold_columns": schema.fieldNames()}
    partial = record.with_suffix(f".{os.getpid()}.tmp")
    partial.write_text(json.dumps(passed, indent=2))
    partial.replace(record)  # atomic: a concurrent task sees the whole record or none
