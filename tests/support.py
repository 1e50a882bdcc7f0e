"""Helpers shared by tests."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path


def content_checksum(df) -> tuple[int, str]:
    """(row count, order-independent digest of every row's content) of a Spark DataFrame."""
    from pyspark.sql import functions as F

    digests = sorted(r[0] for r in df.select(F.sha2(F.to_json(F.struct(*df.columns)), 256)).collect())
    return len(digests), hashlib.sha256("".join(digests).encode()).hexdigest()


def edit_yaml(path: Path, change) -> None:
    """Load the YAML file, let ``change`` edit its tree in place, write it back (a config override
    that merges into the file's blocks, never a second key appended)."""
    import yaml

    tree = yaml.safe_load(path.read_text())
    change(tree)
    path.write_text(yaml.safe_dump(tree))


def make_config(root: Path, env: str = "dev"):
    """``env``'s config with its lakehouse, landing zones, reports and checkpoints under ``root``."""
    from jobs.config.loader import load_config
    from jobs.config.platform import Storage

    storage = Storage(
        lakehouse_root=root / "lakehouse",
        landing_root=root / "landing",
        reports_root=root / "reports",
        checkpoint_root=root / "checkpoints",
    )
    config = load_config(env)
    landing_dir = (
        root / "stream" / Path(config.inference.streaming.landing_dir).name
    )  # as ${RUNWAY_DATA_DIR}/stream/...
    streaming = config.inference.streaming.model_copy(update={"landing_dir": landing_dir})
    inference = config.inference.model_copy(update={"streaming": streaming})
    return config.model_copy(update={"storage": storage, "inference": inference})


def spark_engine_store(config, spark, namespace: str = "path"):
    """A store of the native ``spark`` engine on the test session (which loads delta-spark's jars
    where `make install` fetched them), its tables by location under the config's lakehouse (the
    spark-submit default) or in the session catalog (``namespace="session"``); a generator for
    fixtures: the databases it created are dropped after the test. Skips, saying why, without the jars."""
    import pytest

    from jobs.core.paths import delta_jars
    from jobs.tablestore import open_table_store
    from jobs.tablestore.spark import delta_jars_available

    if not delta_jars_available(spark):
        pytest.skip(f"delta-spark's JVM jars are not on this machine: {delta_jars()[1]}")
    settings = config.table_store.model_copy(update={"engine": "spark", "namespace": namespace})
    before = {d.name for d in spark.catalog.listDatabases()}
    yield open_table_store(config.model_copy(update={"table_store": settings}), spark)
    for database in {d.name for d in spark.catalog.listDatabases()} - before:
        spark.sql(f"DROP DATABASE IF EXISTS {database} CASCADE")


def refresh_command(start: str, end: str, run_id: str) -> list[str]:
    """``python -m jobs.feature_refresh all`` of dev's ``[start, end)``, as a task runs it."""
    window = ["--start", str(start), "--end", str(end)]
    return [sys.executable, "-m", "jobs.feature_refresh", "all", "--env", "dev", *window, "--run-id", run_id]


# The assistant tests' corpus: Python's reference pages of these statements (the python-reference
# documents the knowledge refresh chunks).
ASSISTANT_TOPICS = [
    "assert",
    "break",
    "continue",
    "del",
    "for",
    "global",
    "if",
    "lambda",
    "nonlocal",
    "pass",
    "raise",
    "return",
    "try",
    "while",
    "with",
    "yield",
]
