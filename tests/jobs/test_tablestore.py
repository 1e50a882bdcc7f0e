"""Table-store semantics on real Delta tables, the same tests on both engines: ``local`` (Spark +
delta-rs) and ``spark`` (native delta-spark with the jars `make install` fetched, tables by
location: the spark-submit default; the session-catalog names run in test_tablestore_spark_engine)."""

from __future__ import annotations

import time
from datetime import date, datetime

import pytest

from jobs.tablestore import (
    DuplicateKeysError,
    SchemaMismatchError,
    TableName,
    TableNotFoundError,
    TablePermissionError,
    TableStore,
    open_table_store,
)

SCHEMA = "day date, id int, value string"


@pytest.fixture(params=["local", "spark"])
def store(request, dev_config, spark):
    if request.param == "local":
        yield open_table_store(dev_config, spark)
    else:
        from tests.support import spark_engine_store

        yield from spark_engine_store(dev_config, spark)


def rows(spark, *data):
    return spark.createDataFrame(list(data), SCHEMA)


def content(store, name, **kwargs):
    return sorted(tuple(r) for r in store.read(name, **kwargs).collect())


def test_overwrite_window_replaces_only_its_interval_and_is_idempotent(spark, store):
    table = store.name("silver", "events")
    d1, d2, d3 = date(2013, 1, 1), date(2013, 1, 2), date(2013, 1, 3)
    store.overwrite(table, rows(spark, (d1, 1, "a"), (d2, 2, "b"), (d3, 3, "c")))
    replacement = rows(spark, (d2, 20, "new"), (d2, 21, "new"))
    commit = store.overwrite_window(table, replacement, "day", d2, d3)
    assert (commit.version, commit.rows) == (1, 2)
    once = content(store, table)
    store.overwrite_window(table, replacement, "day", d2, d3)
    assert content(store, table) == once == [(d1, 1, "a"), (d2, 20, "new"), (d2, 21, "new"), (d3, 3, "c")]


def test_overwrite_window_with_no_rows_empties_the_interval(spark, store):
    table = store.name("silver", "events")
    store.overwrite(table, rows(spark, (date(2013, 1, 1), 1, "a"), (date(2013, 1, 2), 2, "b")))
    store.overwrite_window(table, rows(spark), "day", "2013-01-02", "2013-01-03")
    assert content(store, table) == [(date(2013, 1, 1), 1, "a")]


def test_rows_outside_the_replaced_window_are_refused(spark, store):
    table = store.name("silver", "events")
    store.overwrite(table, rows(spark, (date(2013, 1, 1), 1, "a")))
    with pytest.raises(ValueError, match="outside the replaced predicate"):
        store.overwrite_window(
            table, rows(spark, (date(2013, 1, 5), 5, "x")), "day", "2013-01-01", "2013-01-02"
        )
    assert content(store, table) == [(date(2013, 1, 1), 1, "a")]


def test_read_window_filters_rows(spark, store):
    table = store.name("silver", "events")
    store.overwrite(table, rows(spark, *[(date(2013, 1, d), d, "v") for d in range(1, 6)]))
    got = store.read(table, window=("day", "2013-01-02", "2013-01-04")).collect()
    assert sorted(r.id for r in got) == [2, 3]


def test_read_pandas_orders_rows_whatever_the_files_order(spark, store):
    table = store.name("silver", "events")
    shuffled = [
        (date(2013, 1, 2), 1, "c"),
        (date(2013, 1, 1), 2, "b"),
        (date(2013, 1, 1), 1, "a"),
        (date(2013, 1, 2), 0, "d"),
    ]
    store.overwrite(table, rows(spark, *shuffled).coalesce(1))
    expected = [(date(2013, 1, 1), 1), (date(2013, 1, 1), 2), (date(2013, 1, 2), 0), (date(2013, 1, 2), 1)]
    ordered = store.read_pandas(table, columns=["day", "id"], order_by=["day", "id"])
    assert list(ordered.itertuples(index=False, name=None)) == expected
    # the engine-independent path (Spark orderBy) gives the same order
    generic = TableStore._read_pandas(
        store, table, version=None, window=None, columns=["day", "id"], order_by=["day", "id"]
    )
    assert list(generic.itertuples(index=False, name=None)) == expected


SMALL_SCHEMA = "event_id string, at timestamp, day date, value double, count bigint, n int, ok boolean"


@pytest.mark.parametrize("store", ["local"], indirect=True)  # the local engine's Spark-free path
def test_small_frames_are_written_without_starting_spark(spark, store, dev_config):
    from datetime import UTC

    import pandas as pd

    lazy = open_table_store(dev_config)  # no session given: one would start on first use of .spark
    at = datetime(2013, 1, 1, 12, tzinfo=UTC)
    events, metrics = lazy.name("ml", "events"), lazy.name("monitoring", "metrics")
    row = {"event_id": "a", "at": at, "day": date(2013, 1, 1), "value": None, "count": 3, "n": 1, "ok": True}
    lazy.merge(events, lazy.small_frame([row], SMALL_SCHEMA), ["event_id"])
    lazy.merge(events, lazy.small_frame([{**row, "value": 0.5}], SMALL_SCHEMA), ["event_id"])
    frame = pd.DataFrame([{**row, "event_id": "b", "value": float("nan"), "ok": False}])
    lazy.overwrite(metrics, lazy.small_frame(frame, SMALL_SCHEMA))
    assert lazy._spark is None
    # the same tables as a DataFrame of that DDL makes: types, values, missing values as nulls
    spark_written = store.name("ml", "spark_events")
    store.overwrite(spark_written, spark.createDataFrame([tuple(row.values())], SMALL_SCHEMA))
    assert store._schema(events) == store._schema(metrics) == store._schema(spark_written)
    # the spark engine's conversion of the same Arrow rows (what its verbs write)
    converted = TableStore._engine_rows(store, lazy.small_frame([row], SMALL_SCHEMA))
    assert converted.schema == spark.createDataFrame([tuple(row.values())], SMALL_SCHEMA).schema
    assert store.read_pandas(events).to_dict("records") == [
        {
            "event_id": "a",
            "at": pd.Timestamp(at),
            "day": date(2013, 1, 1),
            "value": 0.5,
            "count": 3,
            "n": 1,
            "ok": True,
        }
    ]
    assert store.read_pandas(metrics)["value"].isna().all()
    assert store.read(metrics).where("value IS NULL").count() == 1
    with pytest.raises(ValueError, match="'at timestamp_ntz' is not"):
        lazy.small_frame([row], "at timestamp_ntz")


def test_a_session_started_in_the_background_is_the_one_the_verbs_use(spark, dev_config):
    lazy = open_table_store(dev_config)
    lazy.start_spark()
    deadline = time.monotonic() + 60
    while lazy._spark is None and time.monotonic() < deadline:  # set by the thread, no verb asked yet
        time.sleep(0.05)
    assert lazy._spark is spark
    table = lazy.name("silver", "events")
    lazy.overwrite(table, lazy.spark.createDataFrame([(date(2013, 1, 1), 1, "a")], SCHEMA))
    assert lazy.read(table).count() == 1


def test_merge_updates_matches_and_inserts_new_keys(spark, store):
    table = store.name("silver", "planes")
    store.merge(table, rows(spark, (date(2013, 1, 1), 1, "a"), (date(2013, 1, 1), 2, "b")), ["id"])
    store.merge(table, rows(spark, (date(2013, 1, 2), 2, "B"), (date(2013, 1, 2), 3, "c")), ["id"])
    assert content(store, table) == [
        (date(2013, 1, 1), 1, "a"),
        (date(2013, 1, 2), 2, "B"),
        (date(2013, 1, 2), 3, "c"),
    ]


def test_merge_refuses_a_source_with_repeated_keys(spark, store):
    table = store.name("silver", "planes")
    store.merge(table, rows(spark, (date(2013, 1, 1), 1, "a")), ["id"])
    with pytest.raises(ValueError, match=r"repeat 1 key\(s\)"):
        store.merge(table, rows(spark, (date(2013, 1, 1), 2, "x"), (date(2013, 1, 1), 2, "y")), ["id"])


def test_a_first_merge_with_repeated_keys_creates_no_table(spark, store):
    table = store.name("silver", "planes")
    with pytest.raises(DuplicateKeysError, match=r"repeat 1 key\(s\) of \['id'\]"):
        store.merge(table, rows(spark, (date(2013, 1, 1), 2, "x"), (date(2013, 1, 1), 2, "y")), ["id"])
    assert not store.exists(table)


def test_overwrite_unique_by_refuses_repeated_keys_and_writes_nothing(spark, store):
    table = store.name("gold", "features")
    d1, d2 = date(2013, 1, 1), date(2013, 1, 2)
    store.overwrite(table, rows(spark, (d1, 1, "a")))
    repeated = rows(spark, (d1, 1, "x"), (d1, 1, "y"), (d1, 2, "z"))
    for attempt in (repeated, store.small_frame([{"day": d1, "id": 1, "value": "x"}] * 2, SCHEMA)):
        with pytest.raises(DuplicateKeysError) as refused:
            store.overwrite_window(table, attempt, "day", d1, d2, unique_by=["day", "id"])
        assert refused.value.repeated == 1 and store.version(table) == 0
    store.overwrite_window(table, repeated, "day", d1, d2, unique_by=["day", "id", "value"])  # unique
    assert len(content(store, table)) == 3


def test_copy_window_publishes_the_source_interval_only(spark, store):
    staged, published = store.name("silver", "events__staged"), store.name("silver", "events")
    d1, d2, d3 = date(2013, 1, 1), date(2013, 1, 2), date(2013, 1, 3)
    store.overwrite(published, rows(spark, (d1, 1, "old"), (d2, 2, "old")))
    store.overwrite(staged, rows(spark, (d1, 10, "staged"), (d2, 20, "staged"), (d2, 21, "staged")))
    for _ in range(2):  # a repeated publish leaves the same rows
        commit = store.copy_window(staged, published, "day", d2, d3, metadata={"job": "publish"})
        assert commit.rows == 2 and store.last_commit_metadata(published)["job"] == "publish"
        assert content(store, published) == [(d1, 1, "old"), (d2, 20, "staged"), (d2, 21, "staged")]
    with pytest.raises(TableNotFoundError):
        store.copy_window(store.name("silver", "missing"), published, "day", d2, d3)


def test_append_once_ignores_a_repeated_transaction(spark, store):
    table = store.name("ml", "predictions")
    batch = rows(spark, (date(2013, 1, 1), 1, "a"))
    assert store.append_once(table, batch, "stream-A", 0) is True
    assert store.append_once(table, batch, "stream-A", 0) is False  # a retry of batch 0
    assert store.append_once(table, rows(spark, (date(2013, 1, 1), 2, "b")), "stream-A", 1) is True
    assert store.append_once(table, batch, "stream-B", 0) is True  # another writer's transaction
    assert [r[1] for r in content(store, table)] == [1, 1, 2]
    assert store.transaction_version(table, "stream-A") == 1


def test_time_travel_by_version_and_timestamp(spark, store):
    table = store.name("gold", "features")
    store.overwrite(table, rows(spark, (date(2013, 1, 1), 1, "v0")))
    time.sleep(0.05)
    between = datetime.now().astimezone()
    time.sleep(0.05)
    store.overwrite(table, rows(spark, (date(2013, 1, 1), 1, "v1")), metadata={"run_id": "r2"})
    assert store.version(table) == 1
    assert content(store, table, version=0) == [(date(2013, 1, 1), 1, "v0")]
    assert content(store, table, timestamp=between) == [(date(2013, 1, 1), 1, "v0")]
    assert content(store, table) == [(date(2013, 1, 1), 1, "v1")]
    history = store.history(table)
    assert [h["version"] for h in history] == [1, 0]
    assert history[0]["run_id"] == "r2"


def test_writes_outside_the_environment_catalog_are_refused(spark, store, dev_config):
    with pytest.raises(TablePermissionError, match="may not write prod.gold.features"):
        store.overwrite(TableName("prod", "gold", "features"), rows(spark, (date(2013, 1, 1), 1, "a")))
    with pytest.raises(TablePermissionError, match="may not read catalog 'staging'"):
        store.read(TableName("staging", "gold", "features"))


def test_dev_reads_prod_read_only(spark, dev_config):
    from jobs.config.loader import load_config

    prod_config = load_config("prod").model_copy(update={"storage": dev_config.storage})
    prod_store = open_table_store(prod_config, spark)
    prod_table = prod_store.name("gold", "features")
    prod_store.overwrite(prod_table, rows(spark, (date(2013, 1, 1), 7, "prod")))
    dev_store = open_table_store(dev_config, spark)
    assert [r.value for r in dev_store.read(prod_table).collect()] == ["prod"]
    with pytest.raises(TablePermissionError):
        dev_store.overwrite(prod_table, rows(spark, (date(2013, 1, 1), 7, "dev")))


def test_a_write_with_another_schema_names_the_columns(spark, store):
    table = store.name("gold", "features")
    store.overwrite(table, rows(spark, (date(2013, 1, 1), 1, "a")))
    wider = spark.createDataFrame(
        [(date(2013, 1, 1), 1, "a", 2.0)], "day date, id int, value string, extra double"
    )
    with pytest.raises(SchemaMismatchError, match=r"unexpected columns \['extra'\]"):
        store.overwrite(table, wider)
    retyped = spark.createDataFrame([(date(2013, 1, 1), "1", "a")], "day date, id string, value string")
    with pytest.raises(SchemaMismatchError, match="id: int -> string"):
        store.merge(table, retyped, ["day"])
    assert store.version(table) == 0


def test_a_table_configured_to_evolve_gains_new_columns(spark, store):
    table = store.name("silver", "quarantine")  # allow_schema_evolution in base.yaml
    store.overwrite(table, rows(spark, (date(2013, 1, 1), 1, "a")))
    wider = spark.createDataFrame(
        [(date(2013, 1, 2), 2, "b", 2.5)], "day date, id int, value string, extra double"
    )
    store.overwrite_window(table, wider, "day", "2013-01-02", "2013-01-03")
    got = {r.id: r.extra for r in store.read(table).collect()}
    assert got == {1: None, 2: 2.5}


def test_columns_are_added_before_any_row_carries_them_and_only_where_allowed(spark, store):
    table = store.name("silver", "quarantine")  # allow_schema_evolution in base.yaml
    assert store.add_columns(table, "source string") == []  # no table yet: nothing to add to
    store.overwrite(table, rows(spark, (date(2013, 1, 1), 1, "a")))
    assert store.add_columns(table, "source string, weight double") == ["source", "weight"]
    assert store.add_columns(table, "source string") == [] and store.version(table) == 1  # no empty commit
    assert store.schema(table) == {
        "day": "date",
        "id": "int",
        "value": "string",
        "source": "string",
        "weight": "double",
    }
    # A predicate may name the new column at once; the old rows read it as null.
    store.overwrite(
        table,
        store.small_frame(
            [{"day": date(2013, 1, 1), "id": 2, "value": "b", "source": "s"}],
            "day date, id int, value string, source string",
        ),
        predicate="source = 's' OR source IS NULL",
    )
    assert [(r.id, r.source) for r in store.read(table).collect()] == [(2, "s")]
    fixed = store.name("gold", "features")
    store.overwrite(fixed, rows(spark, (date(2013, 1, 1), 1, "a")))
    with pytest.raises(SchemaMismatchError, match="allow_schema_evolution"):
        store.add_columns(fixed, "source string")


def test_upkeep_lists_compacts_and_vacuums_without_changing_a_row(spark, store):
    """What the maintenance DAG does, on either engine: every table of the catalog is found, and
    compaction and vacuum leave the content as it was."""
    events, features = store.name("silver", "events"), store.name("gold", "features")
    for day in (1, 2, 3):  # a file per write
        store.overwrite_window(
            events,
            rows(spark, (date(2013, 1, day), day, "x")),
            "day",
            date(2013, 1, day),
            date(2013, 1, day + 1),
        )
    store.overwrite(features, rows(spark, (date(2013, 1, 1), 1, "f")))
    assert store.tables() == [features, events]  # sorted by name, whatever the engine's listing order
    before = content(store, events)
    compacted = store.compact(events)
    assert compacted["files_removed"] >= 3 and compacted["files_added"] >= 1
    store.vacuum(events, retention_hours=0, enforce=False)
    assert content(store, events) == before


@pytest.mark.parametrize("writer", ["local", "spark"])
def test_a_table_either_engine_wrote_is_read_and_written_by_the_other(writer, spark, dev_config):
    """The embedded default's tables move to a cluster unchanged (and back): rows, versions and each
    commit's metadata (whatever its keys: ``job`` is also a field of Delta's own commit info)."""
    from tests.support import spark_engine_store

    spark_store = spark_engine_store(dev_config, spark)
    engines = {"local": open_table_store(dev_config, spark), "spark": next(spark_store)}
    first, second = engines[writer], engines["spark" if writer == "local" else "local"]
    table = first.name("silver", "events")
    meta = {"job": "feature_refresh.silver", "run_id": "r1", "window": "[2013-01-01, 2013-01-02)"}
    first.overwrite(table, rows(spark, (date(2013, 1, 1), 1, "a")), metadata=meta)
    assert second.last_commit_metadata(table) == meta
    assert content(second, table) == [(date(2013, 1, 1), 1, "a")]
    second.merge(
        table, rows(spark, (date(2013, 1, 2), 2, "b")), ["id"], metadata={"job": "other", "run_id": "r2"}
    )
    for store in (first, second):
        assert store.version(table) == 1 and len(content(store, table)) == 2
        assert store.last_commit_metadata(table) == {"job": "other", "run_id": "r2"}
        history = store.history(table)
        assert [(c["job"], c["run_id"]) for c in history] == [
            ("other", "r2"),
            ("feature_refresh.silver", "r1"),
        ]
        assert [c["version"] for c in history] == [1, 0]  # Delta's own fields beside them
    next(spark_store, None)


def test_reading_a_missing_table_says_so(store):
    with pytest.raises(TableNotFoundError, match="dev.gold.nothing does not exist"):
        store.read(store.name("gold", "nothing"))


def test_spark_engine_refuses_to_run_without_delta_jars(tmp_path):
    """Never a silent fallback to plain Parquet: the native engine says what it needs and why it
    has none (here: the jar it was pointed at is missing), in a session of its own."""
    import os
    import subprocess
    import sys

    code = (
        "from jobs.config.loader import load_config; from jobs.runtime.spark_session import get_spark; "
        "from jobs.tablestore import open_table_store; c = load_config('dev'); "
        "open_table_store(c, get_spark(c))"
    )
    env = {
        **os.environ,
        "RUNWAY_TABLE_ENGINE": "spark",
        "RUNWAY_DELTA_JARS": str(tmp_path / "delta-spark.jar"),
        "RUNWAY_SPARK_REMOTE": "",
        "RUNWAY_DATA_DIR": str(tmp_path),
    }
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    assert "needs delta-spark's JVM jars" in done.stderr and "delta-spark.jar is missing" in done.stderr
