"""A warm Spark: jobs on a running Spark Connect server (scripts/spark_server.py, what the embedded
stack starts) write the same tables as jobs with their own in-process Spark, and a dead server is
one sentence naming its URL, at once."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from datetime import date

import pytest
import spark_server  # scripts/spark_server.py (conftest puts scripts/ on the path)

from jobs.core.results import read_result
from jobs.core.window import Window
from jobs.features.refresh import JobContext, refresh
from jobs.features.seed import seed
from tests.support import content_checksum, make_config, refresh_command

TABLES = (
    ("bronze", "readings"),
    ("silver", "readings"),
    ("silver", "site_weather"),
    ("gold", "tiny_features"),
)


@pytest.fixture
def server(warm_spark):
    """The session's server (tests/conftest.py), which `make test` starts like `make up` does."""
    if warm_spark is None:
        pytest.skip("RUNWAY_TEST_COLD_SPARK=1: the session runs without a Spark Connect server")
    return warm_spark


def _refresh_command(root, start: str, end: str, remote: str | None) -> tuple[list[str], dict[str, str]]:
    env = {**os.environ, "RUNWAY_DATA_DIR": str(root), "RUNWAY_SPARK_REMOTE": remote or ""}
    command = refresh_command(start, end, "same-run")
    return command, env


def _refresh(root, start: str, end: str, remote: str | None):
    command, env = _refresh_command(root, start, end, remote)
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    return done, read_result(done.stdout)


def _checksums(spark, config, names=TABLES) -> dict:
    from jobs.tablestore import open_table_store

    store = open_table_store(config, spark)
    # Two data folders: the files' paths differ, the rows must not.
    return {
        t: content_checksum(store.read(store.name(*t)).drop("_ingested_at", "_source_file")) for t in names
    }


def test_two_jobs_at_once_on_one_server_keep_their_sessions_apart(server, spark, tmp_path):
    """The jobs register the same temp view names (the silver views the feature SQL reads) on the
    same server: each session sees its own."""
    roots = [tmp_path / "a", tmp_path / "b"]
    configs = [make_config(root) for root in roots]
    for config, days in zip(configs, ((1, 3), (2, 4)), strict=True):  # different data, same names
        seed(config, Window(date(2013, 1, days[0]), date(2013, 1, days[1])))
    runs = [
        subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for command, env in (
            _refresh_command(roots[0], "2013-01-01", "2013-01-03", server),
            _refresh_command(roots[1], "2013-01-02", "2013-01-04", server),
        )
    ]
    outputs = [run.communicate(timeout=600) for run in runs]
    for run, (out, err) in zip(runs, outputs, strict=True):
        assert run.returncode == 0 and read_result(out)["ok"], err[-3000:]
    gold = [open_gold(spark, config) for config in configs]
    assert sorted({str(d) for d in gold[0].reading_date}) == ["2013-01-01", "2013-01-02"]
    assert sorted({str(d) for d in gold[1].reading_date}) == ["2013-01-02", "2013-01-03"]
    # The day both computed is the same rows: neither job read the other's views.
    both = [
        g[g.reading_date.astype(str) == "2013-01-02"].sort_values("reading_id").reset_index(drop=True)
        for g in gold
    ]
    assert len(both[0]) > 0 and both[0].equals(both[1])


def open_gold(spark, config):
    from jobs.tablestore import open_table_store

    store = open_table_store(config, spark)
    return store.read_pandas(store.name("gold", config.use_case.features.table))


def test_a_server_lost_mid_job_is_a_retryable_error_and_the_rerun_writes_the_same_tables(
    server, spark, tmp_path
):
    own = tmp_path / "server"
    state = spark_server.start(own)  # a server of this test's own, to kill under the job
    assert spark_server.status(own)["url"] == state["url"]
    interrupted, reference = make_config(tmp_path / "interrupted"), make_config(tmp_path / "reference")
    for config in (interrupted, reference):
        seed(config, Window(date(2013, 1, 1), date(2013, 1, 4)))
    command, env = _refresh_command(tmp_path / "interrupted", "2013-01-01", "2013-01-04", state["url"])
    job = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in job.stdout:  # the first table written: kill the server under the job
        lines.append(line)
        if "runway.feature_refresh: bronze" in line:
            os.killpg(state["pid"], signal.SIGKILL)
            break
    started = time.monotonic()
    out = "".join(lines) + job.communicate(timeout=300)[0]
    assert time.monotonic() - started < 120  # bounded retries, no hang
    outcome = read_result(out)
    assert job.returncode == 5 and outcome["exit_code"] == 5, out[-3000:]  # transient: Airflow retries
    assert f"the Spark Connect server {state['url']} stopped answering during the job" in outcome["error"]
    assert spark_server.stop(own) and spark_server.status(own) is None  # the record of the dead server goes

    # Airflow's retry, on a live server (the session's); the reference never interrupted, in this
    # process (the next test holds that a server's run and an in-process one write the same rows).
    done, outcome = _refresh(tmp_path / "interrupted", "2013-01-01", "2013-01-04", server)
    assert outcome.get("ok"), done.stderr[-3000:]
    refresh(JobContext.open(reference, "same-run"), Window(date(2013, 1, 1), date(2013, 1, 4)))
    assert _checksums(spark, interrupted) == _checksums(spark, reference)


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


def test_a_server_that_lost_its_port_to_another_is_not_taken_for_ready(tmp_path, monkeypatch):
    """`make demo` started while a test session's warm Spark was starting: both chose 15002, the
    demo's server failed to bind, yet it was taken for ready because the port answered — the other
    server's — and the demo's jobs lost Spark when that session ended. A server is ready only when
    its own process group holds the port; a port lost that way is chosen again."""
    import socket

    from background import listening_groups

    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    taken = holder.getsockname()[1]
    try:
        assert os.getpgid(0) in listening_groups(taken)
        with pytest.raises(SystemExit, match="the spark_connect service did not start"):
            spark_server.start(tmp_path / "explicit", port=taken)
        monkeypatch.setattr(spark_server, "_free_port", lambda: taken)  # the preferred port, taken meanwhile
        record = spark_server.start(tmp_path / "chosen")
        try:
            assert record["port"] != taken and record["pid"] in listening_groups(record["port"])
        finally:
            spark_server.stop(tmp_path / "chosen")
    finally:
        holder.close()
