"""The SparkSession a job computes with, configured from the environment's ``compute`` section."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from jobs.common.config import EnvConfig

DELTA_EXTENSIONS = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}


def get_spark(config: EnvConfig, app_name: str = "runway") -> SparkSession:
    """Return the active session, or build one.

    On a cluster (Databricks, spark-submit) a session already exists and is returned unchanged.
    Locally, workers must use this interpreter (else they pick another ``python3`` without pandas).
    """
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    if config.compute.kind != "local":  # a cluster's driver: its session, its settings
        return SparkSession.builder.appName(app_name).getOrCreate()
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    builder = (
        SparkSession.builder.appName(app_name)
        .master(config.compute.spark_master)
        .config("spark.driver.memory", config.compute.driver_memory)
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.sql.ansi.enabled", "true")
    )
    conf = dict(config.compute.spark_conf)
    if config.table_store.engine == "spark":
        conf = {**DELTA_EXTENSIONS, **conf}
    for key, value in conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark
