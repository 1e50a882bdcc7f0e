"""The dev feature_refresh DAG, run for real with dag.test(): two days, one rerun, same gold."""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from jobs.config.loader import load_config
from jobs.core.window import Window
from jobs.features.seed import seed
from tests.support import content_checksum

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def dag(airflow_db):
    from airflow.models import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags" / "feature_refresh.py"))
    return bag.dags["dev_feature_refresh"]


def run_interval(dag, day: date):
    """A run whose data interval is ``[day, day + 1)``, as the scheduler or a backfill makes it."""
    after = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)
    return dag.test(logical_date=after)


def run_with_params(dag, start: date, end: date):
    """A manual run with the window given in the trigger form's Params."""
    return dag.test(
        logical_date=None, run_conf={"start_date": start.isoformat(), "end_date": end.isoformat()}
    )


def test_two_days_then_a_rerun_leave_gold_identical(dag, spark):
    from jobs.tablestore import open_table_store

    config = load_config("dev")
    assert Path(config.storage.lakehouse_root).is_relative_to(Path(os.environ["RUNWAY_DATA_DIR"]))
    seed(config, Window(date(2013, 3, 1), date(2013, 3, 3)))
    assert run_interval(dag, date(2013, 3, 1)).state == "success"
    assert run_with_params(dag, date(2013, 3, 2), date(2013, 3, 3)).state == "success"

    store = open_table_store(config, spark)
    gold_table = store.name("gold", "tiny_features")
    gold = store.read(gold_table)
    by_day = {r.reading_date: r["count"] for r in gold.groupBy("reading_date").count().collect()}
    assert set(by_day) == {date(2013, 3, 1), date(2013, 3, 2)} and min(by_day.values()) > 20
    before, version = content_checksum(gold), store.version(gold_table)

    assert run_interval(dag, date(2013, 3, 2)).state == "success"  # rerun of the same interval
    assert store.version(gold_table) == version + 1  # it really wrote again
    assert content_checksum(store.read(gold_table)) == before
