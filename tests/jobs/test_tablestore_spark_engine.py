"""The native ``spark`` engine with delta-spark's jars (fetched by `make install` with Maven; a
machine without ``mvn`` skips, saying so): the verbs with session-catalog names, on the test
session (tests/jobs/spark_engine_scenario.py also runs them in an interpreter of its own)."""

from __future__ import annotations

from tests.jobs.spark_engine_scenario import check_verbs
from tests.support import spark_engine_store


def test_spark_engine_verbs(spark, dev_config):
    for store in spark_engine_store(dev_config, spark, namespace="session"):  # its databases dropped after
        assert store.engine == "spark"
        check_verbs(store, spark)
