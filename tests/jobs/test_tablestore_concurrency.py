"""Two writers at once: no committed row is lost or duplicated, on fresh and on existing tables,
whatever order their steps interleave in; a write that keeps losing commit races ends in one
retryable sentence. Real Delta tables: the local engine in real processes (Arrow writes, no
Spark), native delta-spark (the spark engine, tables by location) with two writers on one session —
Delta's optimistic transactions conflict there as across processes."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from datetime import date

import pyarrow as pa
import pytest
from deltalake import DeltaTable
from deltalake.exceptions import CommitFailedError

import jobs.tablestore.local as local_engine
from jobs.core.errors import EXIT_TRANSIENT
from jobs.tablestore import open_table_store
from jobs.tablestore.base import CommitConflictError
from tests.support import refresh_command

SCHEMA = "day date, id int, value string"


def day_rows(store, day: date, n: int = 50, value: str = "v") -> pa.Table:
    return store.small_frame([{"day": day, "id": i, "value": value} for i in range(n)], SCHEMA)


def counts(store, name) -> dict[str, int]:
    frame = store.read_pandas(name)
    return {str(k): int(v) for k, v in frame.groupby("day").size().items()}


def test_a_first_replace_where_keeps_the_rows_another_writer_committed_meanwhile(dev_config, monkeypatch):
    """Finding 5, interleaved by hand: writer B creates the table (its day) after writer A has
    looked and before A commits. A used to write without its predicate and erase B's day."""
    a, b = open_table_store(dev_config), open_table_store(dev_config)
    table = a.name("bronze", "events")
    real_write = local_engine.write_deltalake
    interleaved = []

    def write_after_b(*args, **kwargs):
        if not interleaved:
            interleaved.append(True)
            b.overwrite_window(table, day_rows(b, date(2013, 1, 2)), "day", "2013-01-02", "2013-01-03")
        return real_write(*args, **kwargs)

    monkeypatch.setattr(local_engine, "write_deltalake", write_after_b)
    a.overwrite_window(table, day_rows(a, date(2013, 1, 1)), "day", "2013-01-01", "2013-01-02")
    assert counts(a, table) == {"2013-01-01": 50, "2013-01-02": 50}


def test_a_first_merge_merges_when_another_writer_created_the_table_meanwhile(dev_config, monkeypatch):
    """Check-then-act by hand: writer A looks (no table yet), writer B creates the table and merges,
    then A acts on its stale answer. A used to append (every key twice); now it merges."""
    a, b = open_table_store(dev_config), open_table_store(dev_config)
    table = a.name("ml", "comparisons")
    real_exists, calls = a.exists, []

    def stale_exists(name):
        answer = real_exists(name)
        calls.append(answer)
        if len(calls) == 2:  # the look right before the write: B wins the race after it
            b.merge(table, day_rows(b, date(2013, 1, 1), value="b"), ["day", "id"])
        return answer

    monkeypatch.setattr(a, "exists", stale_exists)
    a.merge(table, day_rows(a, date(2013, 1, 1), value="a"), ["day", "id"])
    frame = b.read_pandas(table)
    assert calls[:2] == [False, False] and len(frame) == 50 and set(frame["value"]) == {"a"}  # upserted


def race_write(store, verb: str, who: int, start: float):
    """Writer ``who``'s write of the race: its own day (window), its own keys (merge), or the same
    transaction as the other writer (append_once), from the instant ``start``."""
    day = date(2013, 1, 1 + who)
    rows = store.small_frame(
        [{"day": day, "id": i + 1000 * who, "value": str(who)} for i in range(200)], SCHEMA
    )
    same = store.small_frame([{"day": date(2013, 1, 1), "id": i, "value": "txn"} for i in range(200)], SCHEMA)
    table = store.name("silver", "race_" + verb)
    while time.time() < start:
        time.sleep(0.001)
    if verb == "window":
        return store.overwrite_window(table, rows, "day", day, date(2013, 1, 2 + who)).rows
    if verb == "merge":
        return store.merge(table, rows, ["id"]).rows
    return store.append_once(table, same, "stream-query-1", 7)


def assert_nothing_lost_or_duplicated(store, verb: str, results: list) -> None:
    frame = store.read_pandas(store.name("silver", f"race_{verb}"))
    if verb == "append_once":
        assert sorted(results) == [False, True] and len(frame) == 200  # one commit of the transaction
    else:
        assert len(frame) == 400 and frame["id"].is_unique  # both writers' rows, once each


WRITER = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from tests.jobs.test_tablestore_concurrency import race_write
    from tests.support import make_config
    from jobs.tablestore import open_table_store
    root, verb, who, start = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    print(json.dumps(race_write(open_table_store(make_config(Path(root))), verb, who, start)))
    """
)


@pytest.mark.parametrize("verb", ["window", "merge", "append_once"])
def test_two_processes_writing_a_fresh_table_at_once_lose_and_duplicate_nothing(dev_config, verb):
    root = dev_config.storage.lakehouse_root.parent
    start = time.time() + 4  # both interpreters are up by then
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(root), verb, str(who), str(start)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for who in (0, 1)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err[-2000:] for _, err in outputs]
    results = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
    assert_nothing_lost_or_duplicated(open_table_store(dev_config), verb, results)


@pytest.fixture
def spark_stores(dev_config, spark):
    """Two writers of the spark engine (stores of their own, tables by location) on one session."""
    from tests.support import spark_engine_store

    first = spark_engine_store(dev_config, spark)
    a = next(first)
    yield a, open_table_store(dev_config.model_copy(update={"table_store": a.config.table_store}), spark)
    next(first, None)


@pytest.mark.parametrize("verb", ["window", "merge", "append_once"])
def test_two_spark_engine_writers_at_once_lose_and_duplicate_nothing(spark_stores, verb):
    from concurrent.futures import ThreadPoolExecutor

    start = time.time() + 1
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda who: race_write(spark_stores[who], verb, who, start), (0, 1)))
    assert_nothing_lost_or_duplicated(spark_stores[0], verb, results)


def test_a_spark_engine_first_merge_merges_when_another_writer_created_the_table_meanwhile(
    spark_stores, monkeypatch
):
    """The check-then-act interleaving of the local engine's test above, on delta-spark."""
    a, b = spark_stores
    table = a.name("ml", "comparisons")
    real_exists, calls = a.exists, []

    def stale_exists(name):
        answer = real_exists(name)
        calls.append(answer)
        if len(calls) == 2:
            b.merge(table, day_rows(b, date(2013, 1, 1), value="b"), ["day", "id"])
        return answer

    monkeypatch.setattr(a, "exists", stale_exists)
    a.merge(table, day_rows(a, date(2013, 1, 1), value="a"), ["day", "id"])
    frame = b.read_pandas(table)
    assert len(frame) == 50 and set(frame["value"]) == {"a"}  # upserted


def test_spark_engine_commit_races_are_retried_then_end_in_one_retryable_sentence(spark_stores, monkeypatch):
    """delta-spark's conflict (``ConcurrentAppendException``) is retried like delta-rs's."""
    store, _ = spark_stores
    table = store.name("bronze", "events")
    store.overwrite_window(table, day_rows(store, date(2013, 1, 1)), "day", "2013-01-01", "2013-01-02")
    conflict = type("ConcurrentAppendException", (Exception,), {})  # what delta.exceptions raises
    real_save, lost = store._save, []

    def losing_twice(writer, name):
        if len(lost) < 2:
            lost.append(True)
            raise conflict("Files were added to the root of the table by a concurrent update.")
        return real_save(writer, name)

    monkeypatch.setattr(store, "_save", losing_twice)
    store.overwrite_window(
        table, day_rows(store, date(2013, 1, 1), value="new"), "day", "2013-01-01", "2013-01-02"
    )
    assert set(store.read_pandas(table)["value"]) == {"new"} and len(lost) == 2

    def always_losing(writer, name):
        raise conflict("Files were added to the root of the table by a concurrent update.")

    monkeypatch.setattr(store, "_save", always_losing)
    monkeypatch.setattr("jobs.tablestore.base.time.sleep", lambda seconds: None)
    with pytest.raises(CommitConflictError, match="lost 6 commit races to concurrent writers") as raised:
        store.overwrite_window(table, day_rows(store, date(2013, 1, 1)), "day", "2013-01-01", "2013-01-02")
    assert raised.value.exit_code == EXIT_TRANSIENT and store.version(table) == 1


def test_commit_races_are_retried_then_end_in_one_retryable_sentence(dev_config, monkeypatch):
    store = open_table_store(dev_config)
    table = store.name("bronze", "events")
    store.overwrite_window(table, day_rows(store, date(2013, 1, 1)), "day", "2013-01-01", "2013-01-02")
    real_write, lost = local_engine.write_deltalake, []

    def losing_twice(*args, **kwargs):
        if len(lost) < 2:
            lost.append(True)
            raise CommitFailedError("Failed to commit transaction: Concurrent transaction failed.")
        return real_write(*args, **kwargs)

    monkeypatch.setattr(local_engine, "write_deltalake", losing_twice)
    store.overwrite_window(
        table, day_rows(store, date(2013, 1, 1), value="new"), "day", "2013-01-01", "2013-01-02"
    )
    assert set(store.read_pandas(table)["value"]) == {"new"} and len(lost) == 2

    def always_losing(*args, **kwargs):
        raise CommitFailedError("Failed to commit transaction: Concurrent transaction failed.")

    monkeypatch.setattr(local_engine, "write_deltalake", always_losing)
    monkeypatch.setattr("jobs.tablestore.base.time.sleep", lambda seconds: None)
    with pytest.raises(CommitConflictError, match="lost 6 commit races to concurrent writers") as raised:
        store.overwrite_window(table, day_rows(store, date(2013, 1, 1)), "day", "2013-01-01", "2013-01-02")
    assert raised.value.exit_code == EXIT_TRANSIENT
    assert DeltaTable(str(store.path(table))).version() == 1  # nothing more was committed


@pytest.mark.parametrize("part", ["../prod", "gold/x", "a.b", "", "prod gold"])
def test_table_name_parts_are_plain_identifiers(dev_config, part):
    """Finding 9: `../prod/gold` passed the catalog check on the local engine (a path, not a name)."""
    from jobs.core.errors import BadInputError

    store = open_table_store(dev_config)
    with pytest.raises(BadInputError, match="not a plain identifier"):
        store.name("gold", part)


def test_two_feature_refreshes_of_different_days_on_a_fresh_environment(tmp_path):
    """Finding 5 end to end: two `feature_refresh all` processes for two days at once, on an
    environment with no tables yet. One day's 842 bronze rows used to vanish."""
    import os

    from jobs.core.window import Window
    from jobs.features.seed import seed
    from tests.support import make_config

    env = {**os.environ, "RUNWAY_DATA_DIR": str(tmp_path)}
    config = make_config(tmp_path)  # the same folders the jobs derive from RUNWAY_DATA_DIR
    assert config.storage.lakehouse_root == tmp_path / "lakehouse"
    seed(config, Window(date(2013, 1, 1), date(2013, 1, 3)))
    procs = [
        subprocess.Popen(
            refresh_command(start, end, f"race-{start}"),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for start, end in (("2013-01-01", "2013-01-02"), ("2013-01-02", "2013-01-03"))
    ]
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[-3000:] for o in outputs]
    store = open_table_store(config)
    landed = {
        day: sum(1 for _ in (tmp_path / "landing" / "readings" / f"{day}.csv").open()) - 1
        for day in ("2013-01-01", "2013-01-02")
    }
    bronze = store.read_pandas(store.name("bronze", "readings"), columns=["_file_date"])
    assert {str(k): v for k, v in bronze.groupby("_file_date").size().items()} == landed
    gold = store.read_pandas(store.name("gold", "tiny_features"), columns=["reading_id", "reading_date"])
    assert gold["reading_id"].is_unique and gold["reading_date"].astype(str).nunique() == 2
