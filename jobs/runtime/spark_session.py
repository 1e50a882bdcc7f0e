"""The SparkSession a job computes with, configured from the environment's ``compute`` section:
an in-process local session, a cluster's session, or a session on a running Spark Connect server
(``compute.spark_remote``: the embedded stack's warm Spark, or Databricks Connect)."""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import socket
import sys
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from pyspark import SparkContext
from pyspark.sql import SparkSession

from jobs.core.errors import TransientError
from jobs.core.paths import delta_jars

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from jobs.config.env import EnvConfig

# What a session needs for native Delta (delta-spark's SQL extension and catalog), and two settings
# sized for a local session.
DELTA_SESSION_CONF = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
    # A snapshot's state is rebuilt in this many tasks (Delta's default, 50, is sized for a cluster:
    # on a local session each commit then waits for 50 tiny tasks). What Delta's own tests use.
    "spark.databricks.delta.snapshotPartitions": "2",
    # VACUUM lists a table's files in this many tasks (Spark's default, 10000: a dry run of a
    # three-file table took 87 s on a local session, 4 s with 4).
    "spark.sql.sources.parallelPartitionDiscovery.parallelism": "4",
}
# How every job's session computes, wherever it runs (a cluster's defaults may differ): session
# time in UTC, ANSI SQL, Arrow between the JVM and pandas. Set on a cluster's session too.
SESSION_SEMANTICS = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.ansi.enabled": "true",
}
# A local or warm session's settings (a local builder, a remote session's conf): the semantics and a
# size for two cores. A cluster keeps its own sizing (compute.spark_submit.conf, the cluster's).
SESSION_CONF = {"spark.sql.shuffle.partitions": "4", **SESSION_SEMANTICS}

# How long a job keeps retrying a Spark Connect server that stopped answering before it gives up
# (PySpark's default retries for at least 10 minutes): backoff 50 ms x4 up to 5 s, 6 retries, ~15 s.
CONNECT_RETRIES = {"max_retries": 6, "initial_backoff": 50, "max_backoff": 5000}
# Server-side errors that mean the server restarted under the job (its session is gone).
SESSION_LOST = (
    "INVALID_HANDLE.SESSION_CHANGED",
    "INVALID_HANDLE.SESSION_NOT_FOUND",
    "INVALID_HANDLE.SESSION_CLOSED",
)

log = logging.getLogger("runway.spark")
_connected_to: list[str] = []  # the Spark Connect URL(s) this process opened sessions on


class SparkServerUnavailableError(TransientError):
    """The configured Spark Connect server does not answer (retryable: it may be restarting)."""


def remote_session(url: str) -> SparkSession:
    """A session on the Spark Connect server at ``url``; one sentence, at once, when it is down."""

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
    from pyspark.sql.connect.client.retries import DefaultPolicy

    spark = SparkSession.builder.remote(url).config(map=SESSION_CONF).getOrCreate()  # one round trip
    spark.client.set_retry_policies([DefaultPolicy(**CONNECT_RETRIES)])
    _connected_to.append(url)
    log.info("computing on the Spark Connect server %s", url)
    # Release the server-side session (its views, cached plans) when the job process ends, rather
    # than when the server's idle timeout finds it: a long-lived server serves thousands of jobs.
    atexit.register(_release, spark)
    return spark


def server_lost(exc: BaseException) -> SparkServerUnavailableError | None:
    """The retryable error for a Spark Connect server lost mid-job (stopped, or restarted under
    it), else None: the job is then retried on the running server, or fails naming it."""
    connect_errors = sys.modules.get("pyspark.errors.exceptions.connect")  # loaded by any Connect session
    if connect_errors is None or not isinstance(exc, connect_errors.SparkConnectGrpcException):
        return None
    import grpc  # loaded with any Connect session; never for a local one

    url = _connected_to[-1] if _connected_to else "(unknown)"
    stopping = "stopped SparkContext" in str(exc)  # the server shut down while serving the job
    if exc.getGrpcStatusCode() == grpc.StatusCode.UNAVAILABLE or stopping:
        return SparkServerUnavailableError(
            f"the Spark Connect server {url} stopped answering during the job (retries exhausted): "
            "start it with `make up` or `scripts/spark_server.py start` and run the job again"
        )
    if exc.getCondition() in SESSION_LOST:
        return SparkServerUnavailableError(
            f"the Spark Connect server {url} restarted during the job (its session is gone): run the job "
            "again"
        )
    return None


def _release(spark: SparkSession) -> None:
    with contextlib.suppress(Exception):  # a server already gone has nothing to release
        spark.stop()


def with_semantics(spark: SparkSession) -> SparkSession:
    """``spark`` computing with ``SESSION_SEMANTICS`` (runtime SQL settings: any session may set them)."""
    for key, value in SESSION_SEMANTICS.items():
        if spark.conf.get(key, None) != value:
            spark.conf.set(key, value)
    return spark


def _local_spark_running() -> bool:
    """Whether this process already runs a local Spark (a test session, a notebook): it is used."""

    return SparkContext._active_spark_context is not None


def default_parallelism(spark: SparkSession) -> int:
    """How many tasks run at once: the context's parallelism (a Spark Connect session has no
    context: its shuffle partitions)."""
    try:
        return spark.sparkContext.defaultParallelism
    except Exception:  # pyspark.errors.PySparkNotImplementedError on Spark Connect
        return int(spark.conf.get("spark.sql.shuffle.partitions"))


def with_delta_jars(conf: dict[str, str]) -> dict[str, str]:
    """A local session's settings with delta-spark's jars (those `make install` fetched) unless the
    settings name jars or packages already; without any, the spark engine says what is missing."""
    if "spark.jars" in conf or "spark.jars.packages" in conf:
        return conf

    jars, _ = delta_jars()
    return {**conf, "spark.jars": ",".join(jars)} if jars else conf


def get_spark(config: EnvConfig, app_name: str = "runway") -> SparkSession:
    """Return the active session, or build one.

    On a cluster (Databricks, spark-submit) the cluster's session (the active one, or the one
    spark-submit configured), with its sizing and Runway's ``SESSION_SEMANTICS``.
    With ``compute.spark_remote`` set, a session on that Spark Connect server.
    Locally, workers must use this interpreter (else they pick another ``python3`` without pandas).
    """

    active = SparkSession.getActiveSession()
    if config.compute.kind != "local":  # a cluster's driver: its session and sizing, Runway's semantics
        return with_semantics(active or SparkSession.builder.appName(app_name).getOrCreate())
    if active is not None:
        return active
    if config.compute.spark_remote and not _local_spark_running():
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
        conf = {**DELTA_SESSION_CONF, **with_delta_jars(conf)}
    for key, value in conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark
