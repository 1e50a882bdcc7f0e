"""The table-store verbs on the native ``spark`` engine (delta-spark) with session-catalog names:
``check_verbs`` on a store of that engine (the test session's, which starts with the Delta jars),
or in an interpreter of its own. Raises on the first failure.

    python tests/jobs/spark_engine_scenario.py /tmp/warehouse     # the jars make install fetched
"""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path

import pyarrow
from pyspark.sql import SparkSession

from jobs.config.loader import load_config
from jobs.config.platform import Compute, TableStoreSettings
from jobs.runtime.spark_session import get_spark
from jobs.tablestore import (
    DuplicateKeysError,
    SchemaMismatchError,
    TableName,
    TablePermissionError,
    TableStore,
    open_table_store,
)


def main(warehouse: Path) -> None:
    base = load_config("dev")
    config = base.model_copy(
        update={
            "table_store": TableStoreSettings(engine="spark", namespace="session"),
            "compute": Compute(
                spark_conf={"spark.sql.warehouse.dir": str(warehouse)}  # the jars: make install's
            ),
        }
    )
    spark = get_spark(config, "runway-spark-engine-check")
    check_verbs(open_table_store(config, spark), spark)


def check_verbs(store: TableStore, spark: SparkSession) -> None:
    """Every verb once, on tables of ``store``'s environment (their databases are created)."""
    assert store.engine == "spark"
    schema = "day date, id int, value string"
    table = store.name("silver", "events")
    d1, d2, d3 = date(2013, 1, 1), date(2013, 1, 2), date(2013, 1, 3)

    store.overwrite(
        table, spark.createDataFrame([(d1, 1, "a"), (d2, 2, "b")], schema), metadata={"run_id": "r1"}
    )
    replacement = spark.createDataFrame([(d2, 20, "new")], schema)
    store.overwrite_window(table, replacement, "day", d2, d3)
    store.overwrite_window(table, replacement, "day", d2, d3)
    assert sorted(r.id for r in store.read(table).collect()) == [1, 20], "replaceWhere"
    assert [r.id for r in store.read(table, version=0).collect()] != [], "time travel"

    store.merge(table, spark.createDataFrame([(d1, 1, "A"), (d3, 3, "c")], schema), ["id"])
    assert {r.id: r.value for r in store.read(table).collect()} == {1: "A", 20: "new", 3: "c"}, "merge"

    small = store.small_frame([{"day": d3, "id": 3, "value": "C"}], schema)
    store.merge(table, small, ["id"])
    store.merge(
        table, pyarrow.table({"day": [d3], "id": pyarrow.array([4], pyarrow.int32()), "value": ["d"]}), ["id"]
    )
    assert {r.id: r.value for r in store.read(table).collect()} == {1: "A", 20: "new", 3: "C", 4: "d"}, (
        "small rows"
    )

    published = store.name("silver", "events_published")
    store.overwrite(published, spark.createDataFrame([(d2, 9, "old")], schema))
    store.copy_window(table, published, "day", d2, d3)
    assert [r.id for r in store.read(published).collect()] == [20], "copy_window"
    try:
        store.overwrite_window(
            published,
            spark.createDataFrame([(d2, 5, "x"), (d2, 5, "y")], schema),
            "day",
            d2,
            d3,
            unique_by=["id"],
        )
        raise AssertionError("repeated keys written")
    except DuplicateKeysError:
        assert [r.id for r in store.read(published).collect()] == [20], "nothing written"

    log = store.name("ml", "log")
    batch = spark.createDataFrame([(d1, 1, "x")], schema)
    assert store.append_once(log, batch, "app", 0) is True
    assert store.append_once(log, batch, "app", 0) is False, "idempotent append"
    assert store.read(log).count() == 1

    metrics = store.name("monitoring", "metrics")  # its config allows schema evolution
    store.overwrite(metrics, spark.createDataFrame([(d1, "m")], "window_start date, metric string"))
    assert store.add_columns(metrics, "source string") == ["source"], "add_columns"
    assert store.add_columns(metrics, "source string") == [], "add_columns again: nothing"
    store.overwrite(
        metrics,
        spark.createDataFrame([(d1, "m", "batch")], "window_start date, metric string, source string"),
        predicate="source = 'batch' OR source IS NULL",
    )
    assert [(r.metric, r.source) for r in store.read(metrics).collect()] == [("m", "batch")], "added column"

    try:
        store.overwrite(TableName("prod", "silver", "events"), batch)
        raise AssertionError("wrote another catalog")
    except TablePermissionError:
        pass
    try:
        store.overwrite(table, spark.createDataFrame([(d1, "1", "a")], "day date, id string, value string"))
        raise AssertionError("schema mismatch accepted")
    except SchemaMismatchError:
        pass
    print("spark engine: all verbs passed")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
