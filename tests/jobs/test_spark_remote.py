"""A warm Spark: jobs on a running Spark Connect server (scripts/spark_server.py, what the embedded
stack starts) write the same tables as jobs with their own in-process Spark, and a dead server is
one sentence naming its URL, at once."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import date

import pytest
import spark_server  # scripts/spark_server.py (conftest puts scripts/ on the path)

from jobs.common.results import read_result
from jobs.common.window import Window
from jobs.seed import seed
from tests.support import content_checksum, make_config

TABLES = (
    ("bronze", "readings"),
    ("silver", "readings"),
    ("silver", "site_weather"),
    ("gold", "tiny_features"),
)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    data = tmp_path_factory.mktemp("spark-server")
    state = spark_server.start(data, port=None)
    yield state["url"]
    assert spark_server.stop(data) and spark_server.status(data) is None


def _refresh(root, start: str, end: str, remote: str | None):
    env = {**os.environ, "RUNWAY_DATA_DIR": str(root), "RUNWAY_SPARK_REMOTE": remote or ""}
    done = subprocess.run([sys.executable, "-m", "jobs.feature_refresh", "all", "--env", "dev", "--start", start,
                           "--end", end, "--run-id", "same-run"], env=env, capture_output=True, text=True,
                          timeout=600)  # fmt: skip
    return done, read_result(done.stdout)


def test_a_warm_server_writes_the_tables_an_in_process_run_writes(server, spark, tmp_path):
    config = make_config(tmp_path)
    seed(config, Window(date(2013, 1, 1), date(2013, 1, 3)))
    done, outcome = _refresh(tmp_path, "2013-01-01", "2013-01-03", remote=None)  # in the job's process
    assert outcome.get("ok"), done.stderr[-3000:]
    from jobs.tablestore import open_table_store

    store = open_table_store(config, spark)
    names = [store.name(*t) for t in TABLES]
    in_process = {n: (store.version(n), content_checksum(store.read(n).drop("_ingested_at"))) for n in names}
    done, outcome = _refresh(tmp_path, "2013-01-01", "2013-01-03", remote=server)  # the same window, warm
    assert outcome.get("ok"), done.stderr[-3000:]
    for name in names:
        assert store.version(name) > in_process[name][0], f"{name} was not written again"
        assert content_checksum(store.read(name).drop("_ingested_at")) == in_process[name][1], name


def test_a_dead_server_is_one_sentence_naming_its_url_at_once(tmp_path):
    url = f"sc://127.0.0.1:{spark_server._free_port(1)}"  # nothing listens there
    started = time.monotonic()
    done, outcome = _refresh(tmp_path, "2013-01-01", "2013-01-02", remote=url)
    assert time.monotonic() - started < 60  # no hang: the job checks the port before it connects
    assert done.returncode == 5 and outcome["exit_code"] == 5  # transient: Airflow retries
    assert (
        f"the Spark Connect server {url}" in outcome["error"]
        and "scripts/spark_server.py start" in outcome["error"]
    )
