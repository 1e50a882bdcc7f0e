"""Streaming inference on real events, a real registry and real Delta tables: malformed events
quarantined while good ones are scored, a Champion hot swap mid-stream, exactly once across a
replayed micro-batch and across a ``kill -9`` of the running job."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from datetime import date
from pathlib import Path

import pytest

from jobs.config.env import checkpoint_dir
from jobs.core.window import Window
from jobs.features.seed import emit_events
from jobs.modeling.streaming_scoring import STREAM, MicroBatchScorer, run_stream

CHAMPION = "Champion"
BAD_LINES = [
    '{"reading_id": "20130205-9000", "site"',  # truncated JSON
    '["not", "an", "object"]',
    json.dumps(
        {
            "reading_id": "20130205-9001",
            "device_id": "D001",
            "site": "north",
            "reading_date": "2013-02-05",
            "hour": "noon",
            "read_at": "2013-02-05T12:00:00Z",
            "temperature": 60.0,
            "vibration": 1.0,
            "load_pct": 50.0,
        }
    ),  # mistyped
    json.dumps(
        {
            "reading_id": "20130205-9002",
            "device_id": "D001",
            "reading_date": "2013-02-05",
            "hour": 12,
            "read_at": "2013-02-05T12:00:00Z",
            "temperature": 60.0,
            "vibration": 1.0,
            "load_pct": 50.0,
        }
    ),  # no site
]


def _events(landing: Path, day: str) -> set[str]:
    """Keys of the well-formed events that landed for ``day``."""
    ids = set()
    for path in sorted(landing.glob(f"{day}-[0-9]*.jsonl")):
        ids |= {json.loads(line)["reading_id"] for line in path.read_text().splitlines()}
    return ids


def _stream_rows(store, config, day: date):
    table = store.name("ml", config.inference.predictions_table)
    if not store.exists(table):
        return None
    frame = store.read_pandas(table, window=("reading_date", day, date.fromordinal(day.toordinal() + 1)))
    return frame[frame.scoring_mode == STREAM]


def _quarantined(store, run_prefix: str = ""):
    frame = store.read_pandas(store.name("silver", "quarantine"))
    return frame[(frame.layer == STREAM) & frame.run_id.str.startswith(run_prefix)]


def test_malformed_events_are_quarantined_good_ones_scored_and_champion_swaps_mid_stream(champion, tmp_path):
    config, result, store, client = champion
    name = config.registered_model_name
    landing = Path(config.inference.streaming.landing_dir)
    day = date(2013, 2, 5)
    emit_events(config, Window(day, date(2013, 2, 6)), files_per_day=8)
    (landing / "2013-02-05-bad.jsonl").write_text("\n".join(BAD_LINES) + "\n\n")
    expected = _events(landing, "2013-02-05")
    current = client.get_model_version(name, result["version"])
    from jobs.runtime.mlflow_setup import point_mlflow

    point_mlflow(config)  # MLflow resolves a models:/ source through the process-wide tracking URI
    swapped = client.create_model_version(name, current.source, run_id=current.run_id).version

    stop = threading.Event()

    def promote_then_stop():  # the "other DAG": moves Champion after the first committed batch
        deadline = time.monotonic() + 240
        moved = False
        while time.monotonic() < deadline:
            rows = _stream_rows(store, config, day)
            if rows is not None and len(rows) and not moved:
                client.set_registered_model_alias(name, CHAMPION, swapped)
                moved = True
            if rows is not None and len(rows) >= len(expected):
                break
            time.sleep(0.3)
        stop.set()

    helper = threading.Thread(target=promote_then_stop)
    helper.start()
    try:
        outcome = run_stream(
            config, store, available_now=False, trigger_seconds=0.5, max_files_per_trigger=2, stop=stop
        )
    finally:
        stop.set()
        helper.join()
        client.set_registered_model_alias(name, CHAMPION, result["version"])

    rows = _stream_rows(store, config, day)
    assert set(rows.reading_id) == expected and rows.reading_id.is_unique
    versions = rows.groupby("run_id").model_version.agg(set)
    assert all(len(v) == 1 for v in versions)  # one version per micro-batch
    by_batch = [
        next(iter(versions[r])) for r in sorted(versions.index, key=lambda r: int(r.rsplit(":", 1)[1]))
    ]
    assert by_batch[0] == result["version"] and by_batch[-1] == str(swapped)  # swapped without a restart
    first_swapped = by_batch.index(str(swapped))
    assert set(by_batch[first_swapped:]) == {str(swapped)}  # every batch after the move uses it
    assert outcome["model_versions"].keys() == {result["version"], str(swapped)}

    bad = _quarantined(store)
    reasons = sorted(c for checks in bad.failed_checks for c in checks)
    assert len(bad) == len(BAD_LINES) and outcome["quarantined"] == len(BAD_LINES)
    assert reasons.count("malformed JSON: a line must be one JSON object") == 2
    assert "invalid int in hour: 'noon'" in reasons and "missing field site" in reasons
    assert set(bad.record) == set(BAD_LINES)


def test_a_replayed_micro_batch_commits_nothing_twice(champion, spark):
    from pyspark.sql import functions as F

    config, result, store, _ = champion
    landing = Path(config.inference.streaming.landing_dir)
    checkpoint = checkpoint_dir(config)
    assert (checkpoint / "metadata").is_file()  # the query above ran; replay under its id
    files = [str(p) for p in sorted(landing.glob("2013-02-05-00[01].jsonl"))]
    batch = spark.read.text(files).select("value", F.col("_metadata.file_path").alias("_source_file"))
    scorer = MicroBatchScorer(config, checkpoint)
    table = store.name("ml", config.inference.predictions_table)
    before = store.version(table)
    scorer(batch, 10_000)
    after_first = store.version(table)
    scorer(batch, 10_000)  # the same batch id again, as after a crash before the checkpoint commit
    assert after_first == before + 1 and store.version(table) == after_first
    assert scorer.state.skipped == 1


def test_exactly_once_across_a_kill_9_and_restart(champion, tmp_path):
    config, result, store, _ = champion
    # A separate data root (same registry): its own landing folder, checkpoint and predictions.
    source_root = Path(config.storage.lakehouse_root).parent
    root = tmp_path / "data"
    for source in config.use_case.sources:  # the static tables the stream joins, nothing else
        shutil.copytree(
            source_root / "lakehouse" / "dev" / "silver" / source,
            root / "lakehouse" / "dev" / "silver" / source,
        )
    from tests.support import make_config

    isolated = make_config(root)
    day = date(2013, 2, 6)
    emit_events(isolated, Window(day, date(2013, 2, 7)), files_per_day=12)
    landing = Path(isolated.inference.streaming.landing_dir)
    (landing / "2013-02-06-bad.jsonl").write_text(BAD_LINES[0] + "\n")
    expected = _events(landing, "2013-02-06")
    env = {**os.environ, "RUNWAY_DATA_DIR": str(root), "MLFLOW_TRACKING_URI": config.mlflow.tracking_uri}
    command = [sys.executable, "-m", "jobs.streaming_inference", "--env", "dev"]
    from jobs.tablestore import open_table_store

    isolated_store = open_table_store(isolated, store.spark)
    table = isolated_store.name("ml", "predictions")
    running = subprocess.Popen(
        [*command, "--trigger-seconds", "0.5", "--max-files-per-trigger", "1"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and running.poll() is None:
            if isolated_store.exists(table) and isolated_store.version(table) >= 2:
                break
            time.sleep(0.2)
        assert running.poll() is None, "the stream stopped before it could be killed"
    finally:
        os.killpg(running.pid, signal.SIGKILL)  # the machine dies: no clean stop, no checkpoint commit
        running.wait()
    partial = _stream_rows(isolated_store, isolated, day)
    assert 0 < len(partial) < len(expected)  # killed mid-stream

    restarted = subprocess.run(
        [*command, "--available-now"], env=env, capture_output=True, text=True, timeout=600
    )
    assert restarted.returncode == 0, restarted.stdout[-3000:] + restarted.stderr[-3000:]
    rows = _stream_rows(isolated_store, isolated, day)
    assert len(rows) == len(expected) and set(rows.reading_id) == expected  # none lost, none twice
    bad = _quarantined(isolated_store)
    assert list(bad.record) == [BAD_LINES[0]]


def test_one_query_per_checkpoint_and_the_lock_dies_with_its_process(dev_config, tmp_path):
    """Finding 10: the 10-minute --available-now drain could run on the checkpoint of the continuous
    service. A second query now fails at once; a killed holder (kill -9) frees the checkpoint."""
    import subprocess
    import sys

    from jobs.core.errors import EXIT_TRANSIENT
    from jobs.modeling.streaming_scoring import CheckpointInUseError, exclusive_checkpoint
    from jobs.tablestore import open_table_store

    checkpoint = checkpoint_dir(dev_config)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; "
            "from jobs.modeling.streaming_scoring import exclusive_checkpoint\n"
            f"with exclusive_checkpoint(Path({str(checkpoint)!r})):\n    print('held', flush=True); "
            "time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(CheckpointInUseError, match=rf"in use by pid {holder.pid}") as raised:
        run_stream(dev_config, open_table_store(dev_config), available_now=True)
    assert raised.value.exit_code == EXIT_TRANSIENT
    holder.kill()
    holder.wait()
    with exclusive_checkpoint(checkpoint):
        pass  # free again
