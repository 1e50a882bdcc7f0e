"""The session a job computes with: a cluster's session (spark-submit, Databricks) keeps the
cluster's sizing but computes with Runway's semantics (UTC session time, ANSI SQL, Arrow for
pandas), whatever the cluster's defaults say: the same job gives the same rows everywhere."""

from __future__ import annotations

import pytest

from jobs.runtime.spark_session import SESSION_SEMANTICS, get_spark


@pytest.mark.parametrize("kind", ["spark-submit", "databricks"])
def test_a_clusters_session_computes_with_runways_semantics(kind, spark, dev_config):
    cluster_defaults = {
        "spark.sql.session.timeZone": "America/New_York",
        "spark.sql.execution.arrow.pyspark.enabled": "false",
        "spark.sql.ansi.enabled": "false",
    }
    kept = {key: spark.conf.get(key) for key in (*cluster_defaults, "spark.sql.shuffle.partitions")}
    try:
        for key, value in {**cluster_defaults, "spark.sql.shuffle.partitions": "7"}.items():
            spark.conf.set(key, value)
        compute = dev_config.compute.model_copy(update={"kind": kind})
        session = get_spark(dev_config.model_copy(update={"compute": compute}))
        assert session is spark  # the cluster's own session, not a new one
        assert {key: session.conf.get(key) for key in SESSION_SEMANTICS} == SESSION_SEMANTICS
        assert session.conf.get("spark.sql.shuffle.partitions") == "7"  # its sizing is the cluster's
        assert session.sql("SELECT hour(TIMESTAMP '2013-01-01 05:00:00Z') AS h").first()["h"] == 5
    finally:
        for key, value in kept.items():
            spark.conf.set(key, value)
