"""The SparkSession a job computes with, configured from the environment's ``compute`` section:
an in-process local session, a cluster's session, or a session on a running Spark Connect server
(``compute.spark_remote``: the embedded stack's warm Spark, or Databricks Connect)."""

from __future__ import annotations

import os
import socket
import sys
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from jobs.common.errors import TransientError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from jobs.common.config import EnvConfig

DELTA_EXTENSIONS = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}
# What every job's session computes with (a local session's builder, a remote session's conf).
SESSION_CONF = {
    "spark.sql.shuffle.partitions": "4",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.ansi.enabled": "true",
}


class SparkServerUnavailableError(TransientError):
    """The configured Spark Connect server does not answer (retryable: it may be restarting)."""


def remote_session(url: str) -> SparkSession:
    """A session on the Spark Connect server at ``url``; one sentence, at once, when it is down."""
    from pyspark.sql import SparkSession

    address = urlparse(url)
    try:
        with socket.create_connection((address.hostname or "127.0.0.1", address.port or 15002), timeout=3):
            pass
    except OSError as exc:
        raise SparkServerUnavailableError(
            f"the Spark Connect server {url} (compute.spark_remote / RUNWAY_SPARK_REMOTE) does not answer "
            f"({exc.strerror or exc}): start it with `make up` or `scripts/spark_server.py start`, or unset "
            "RUNWAY_SPARK_REMOTE to run Spark inside the job"
        ) from None
    spark = SparkSession.builder.remote(url).getOrCreate()
    for key, value in SESSION_CONF.items():
        spark.conf.set(key, value)
    return spark


def _local_spark_running() -> bool:
    """Whether this process already runs a local Spark (a test session, a notebook): it is used."""
    from pyspark import SparkContext

    return SparkContext._active_spark_context is not None


def default_parallelism(spark: SparkSession) -> int:
    """How many tasks run at once: the context's parallelism (a Spark Connect session has no
    context: its shuffle partitions)."""
    try:
        return spark.sparkContext.defaultParallelism
    except Exception:  # pyspark.errors.PySparkNotImplementedError on Spark Connect
        return int(spark.conf.get("spark.sql.shuffle.partitions"))


def get_spark(config: EnvConfig, app_name: str = "runway", *, allow_remote: bool = True) -> SparkSession:
    """Return the active session, or build one.

    On a cluster (Databricks, spark-submit) a session already exists and is returned unchanged.
    With ``compute.spark_remote`` set (and ``allow_remote``), a session on that Spark Connect server.
    Locally, workers must use this interpreter (else they pick another ``python3`` without pandas).
    """
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    if config.compute.kind != "local":  # a cluster's driver: its session, its settings
        return SparkSession.builder.appName(app_name).getOrCreate()
    if config.compute.spark_remote and allow_remote and not _local_spark_running():
        return remote_session(config.compute.spark_remote)
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    builder = (
        SparkSession.builder.appName(app_name)
        .master(config.compute.spark_master)
        .config("spark.driver.memory", config.compute.driver_memory)
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
    )
    conf = {**SESSION_CONF, **config.compute.spark_conf}
    if config.table_store.engine == "spark":
        conf = {**DELTA_EXTENSIONS, **conf}
    for key, value in conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark
