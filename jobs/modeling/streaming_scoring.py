"""Streaming inference: landing events scored by the Champion as they arrive, exactly once."""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow
from pyspark.sql import functions as F

from jobs.config.env import STREAMING_QUERY, EnvConfig, checkpoint_dir
from jobs.config.use_case import SourceConfig
from jobs.core.errors import TransientError
from jobs.features.pipeline import (
    QUARANTINE_TABLE,
    build_features,
    feature_sql,
    quarantine_frame,
    silver_views,
    type_rows,
)
from jobs.features.use_case_check import check_use_case_once
from jobs.modeling.scoring import NoModelVersionError, load_pyfunc, model_udf, resolve_model, score_frame
from jobs.release.registry import ModelRegistry
from jobs.tablestore import open_table_store

if TYPE_CHECKING:
    from collections.abc import Iterator

    from pyspark.sql import DataFrame, SparkSession

    from jobs.modeling.scoring import ModelRef
    from jobs.tablestore import TableStore


log = logging.getLogger("runway.streaming_inference")

STREAM = "stream"


def parse_events(raw: DataFrame, source: SourceConfig, required: list[str]) -> DataFrame:
    """Typed event rows with ``_problems`` from raw JSON lines (``value``, ``_source_file``).

    Each line must be a JSON object; its fields are read as text and typed exactly as the source's
    silver rows are (same casts, same key and event-date checks); fields in ``required`` must be
    present. ``_line`` keeps the raw line for the quarantine. Blank lines are ignored.
    """

    fields = F.from_json("value", "map<string,string>")
    lines = raw.where(F.trim("value") != "").select(
        "value", "_source_file", fields.alias("_fields"), F.current_timestamp().alias("_ingested_at")
    )
    as_bronze = lines.select(
        *[F.col("_fields").getItem(c).alias(c) for c in source.columns],
        "_source_file",
        F.lit(None).cast("date").alias("_file_date"),  # an event file is not one day's file
        "_ingested_at",
        F.col("_fields").isNull().alias("_malformed"),
        F.col("value").alias("_line"),
    )
    typed = type_rows(as_bronze, source, carry=("_malformed", "_line"))
    missing = [F.when(F.col(c).isNull(), F.lit(f"missing field {c}")) for c in required]
    checks = (
        F.filter(F.concat("_problems", F.array(*missing)), lambda p: p.isNotNull())
        if missing
        else F.col("_problems")
    )
    malformed = F.array(F.lit("malformed JSON: a line must be one JSON object"))
    return typed.withColumn("_problems", F.when(F.col("_malformed"), malformed).otherwise(checks))


@dataclass
class StreamState:
    """What the query's micro-batches did, for the job's result and logs."""

    batches: int = 0
    skipped: int = 0  # batches already committed before a restart
    events: int = 0
    predictions: int = 0
    quarantined: int = 0
    versions: dict[str, int] = field(default_factory=dict)
    error: BaseException | None = None


class MicroBatchScorer:
    """The ``foreachBatch`` function: parse, enrich, score, and commit once per batch id."""

    def __init__(self, config: EnvConfig, checkpoint: Path):
        self.config = config
        self.checkpoint = checkpoint
        self.source_name, self.source = config.streaming_source()
        self.state = StreamState()
        self._query_id: str | None = None
        self._registry = None
        self.stopping = False
        self._models: dict[str, ModelRef] = {}

    @property
    def query_id(self) -> str:
        """The query's id, kept in its checkpoint across restarts (a new checkpoint is a new query)."""
        if self._query_id is None:
            self._query_id = json.loads((self.checkpoint / "metadata").read_text())["id"]
        return self._query_id

    def current_model(self) -> ModelRef:
        """The version the alias points at now (looked up every micro-batch; details cached per version)."""

        if self._registry is None:
            self._registry = ModelRegistry.for_config(self.config)
        alias, name = self.config.champion_alias, self.config.registered_model_name
        version = self._registry.by_alias(alias)
        if version is None:
            raise NoModelVersionError(f"model {name} has no '{alias}' version")
        if str(version.version) not in self._models:
            self._models[str(version.version)] = resolve_model(self.config, alias)
        return self._models[str(version.version)]

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        try:
            self._process(batch, batch_id)
        except BaseException as exc:  # the query wraps it: keep the original for one clear message
            if not self.stopping:  # a batch interrupted by stop() is replayed on the next start
                self.state.error = exc
            raise

    def _process(self, batch: DataFrame, batch_id: int) -> None:

        started = time.perf_counter()
        # The micro-batch lives in the query's own session: read and join the static tables there.
        store = open_table_store(self.config, batch.sparkSession)
        app_id = f"runway.{STREAMING_QUERY}.{self.query_id}"
        run_id = f"{self.query_id}:{batch_id}"
        meta = {"job": STREAMING_QUERY, "run_id": run_id, "batch_id": str(batch_id)}
        events = parse_events(batch, self.source, self.config.inference.streaming.required).persist()
        try:
            # One pass for the counts and the good rows' dates (each Spark action costs a job).
            is_good = F.size("_problems") == 0
            summary = events.agg(
                F.count(F.lit(1)).alias("events"),
                F.sum(is_good.cast("int")).alias("good"),
                F.min(F.when(is_good, F.col("event_date"))).alias("first"),
                F.max(F.when(is_good, F.col("event_date"))).alias("last"),
            ).first()
            total, good_rows = summary["events"], summary["good"] or 0
            model = None
            if good_rows:
                model = self.current_model()
                good = events.where(is_good)
                views = self._views(store, good, summary["first"], summary["last"])
                features = build_features(batch.sparkSession, feature_sql(self.config), views)
                scored = score_frame(  # in this process on the local engine (delta-rs commits Arrow)
                    features,
                    model,
                    in_process=store.engine == "local",
                    keys=self.config.use_case.features.keys,
                    date_column=self.config.use_case.features.date_column,
                    mode=STREAM,
                    run_id=run_id,
                    scored_at=datetime.now(UTC),
                )
                table = store.name("ml", self.config.inference.predictions_table)
                if not store.append_once(table, scored, app_id, batch_id, metadata=meta):
                    self.state.skipped += 1  # committed before a crash: the replay writes nothing
                    log.info("batch %d: predictions already committed before a restart", batch_id)
            if total > good_rows:
                bad = events.where(~is_good)
                quarantine = quarantine_frame(
                    bad,
                    self.source_name,
                    STREAM,
                    F.col("_line"),
                    F.col("_problems"),
                    run_id,
                    F.col("_row_key"),
                )
                store.append_once(
                    store.name("silver", QUARANTINE_TABLE), quarantine, app_id, batch_id, metadata=meta
                )
        finally:
            events.unpersist()
        self.state.batches += 1
        self.state.events += total
        self.state.predictions += good_rows
        self.state.quarantined += total - good_rows
        if model is not None:
            self.state.versions[model.version] = self.state.versions.get(model.version, 0) + good_rows
        log.info(
            "batch %d: %d events, %d scored%s, %d quarantined in %.1f s",
            batch_id,
            total,
            good_rows,
            f" by {model.name} v{model.version}" if model else "",
            total - good_rows,
            time.perf_counter() - started,
        )

    def warm_up(self, spark: SparkSession, *, in_process: bool) -> None:
        """Load the Champion (in this process, or in Spark's Python workers) and score its input
        example before the first events arrive, so the first micro-batch is as fast as the rest."""

        model = self.current_model()
        example = mlflow.models.Model.load(model.uri).load_input_example()
        if example is None:
            return
        if in_process:
            load_pyfunc(model).predict(example)
            return
        frame = spark.createDataFrame(example)
        udf = model_udf(spark, model)
        frame.select(udf(*[frame[c] for c, _ in model.inputs])).collect()

    def _views(self, store: TableStore, good: DataFrame, first: date, last: date) -> dict[str, DataFrame]:
        """The micro-batch as the streaming source's view; the other sources as static silver
        tables (daily ones only for the batch's event dates): a stream–static join in the SQL."""

        sources = self.config.use_case.sources
        others = silver_views(store, sources, first, last + timedelta(days=1), skip=(self.source_name,))
        return {self.source_name: good, **others}


class CheckpointInUseError(TransientError):
    """Another streaming query holds the checkpoint: one writer per checkpoint."""


@contextlib.contextmanager
def exclusive_checkpoint(checkpoint: Path) -> Iterator[None]:
    """Hold the checkpoint's lock (``<checkpoint>.lock``, an OS file lock released when the process
    dies, also by kill -9) for the query's life: a second query on the same checkpoint — the
    scheduled ``--available-now`` drain next to the continuous service — fails at once."""

    lock_path = checkpoint.parent / f"{checkpoint.name}.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise CheckpointInUseError(
                f"streaming checkpoint {checkpoint} is in use by {holder}: one query per checkpoint; "
                "this run can try again once that one stops"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} since {datetime.now(UTC).isoformat(timespec='seconds')}")
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def event_stream(
    spark: SparkSession, config: EnvConfig, max_files_per_trigger: int | None = None
) -> DataFrame:
    """The landing directory's JSON-lines files as a stream of raw lines with their file."""

    streaming = config.inference.streaming
    Path(streaming.landing_dir).mkdir(parents=True, exist_ok=True)
    reader = spark.readStream.format("text").option("pathGlobFilter", "*.jsonl")
    max_files = max_files_per_trigger or streaming.max_files_per_trigger
    if max_files:
        reader = reader.option("maxFilesPerTrigger", max_files)
    return reader.load(str(streaming.landing_dir)).select(
        "value", F.col("_metadata.file_path").alias("_source_file")
    )


def run_stream(
    config: EnvConfig,
    store: TableStore,
    *,
    available_now: bool,
    run_seconds: float | None = None,
    trigger_seconds: float | None = None,
    max_files_per_trigger: int | None = None,
    stop: threading.Event | None = None,
) -> dict[str, Any]:
    """Run the query: until the landed files are drained (``available_now``), for ``run_seconds``,
    until SIGTERM/SIGINT or until ``stop`` is set (continuous); stops cleanly between micro-batches."""
    checkpoint = checkpoint_dir(config)
    with exclusive_checkpoint(checkpoint):
        return _run_stream(
            config,
            store,
            checkpoint,
            available_now=available_now,
            run_seconds=run_seconds,
            trigger_seconds=trigger_seconds,
            max_files_per_trigger=max_files_per_trigger,
            stop=stop,
        )


def _run_stream(
    config: EnvConfig,
    store: TableStore,
    checkpoint: Path,
    *,
    available_now: bool,
    run_seconds: float | None,
    trigger_seconds: float | None,
    max_files_per_trigger: int | None,
    stop: threading.Event | None,
) -> dict[str, Any]:

    check_use_case_once(store.spark, config, suites=False)  # before the first event: a config mistake
    scorer = MicroBatchScorer(config, checkpoint)
    scorer.warm_up(store.spark, in_process=store.engine == "local")
    interval = trigger_seconds or config.inference.streaming.trigger_seconds
    writer = (
        event_stream(store.spark, config, max_files_per_trigger)
        .writeStream.queryName(f"{STREAMING_QUERY}_{config.env}")
        .option("checkpointLocation", str(checkpoint))
        .foreachBatch(scorer)
    )
    writer = (
        writer.trigger(availableNow=True)
        if available_now
        else writer.trigger(processingTime=f"{interval} seconds")
    )
    query = writer.start()
    stop = stop or threading.Event()
    in_main_thread = threading.current_thread() is threading.main_thread()
    if not available_now and in_main_thread:
        previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    started = time.monotonic()
    try:
        while query.isActive and not stop.is_set():
            if run_seconds is not None and time.monotonic() - started >= run_seconds:
                break
            query.awaitTermination(0.5)
    finally:
        if query.isActive:
            _stop_between_batches(query, scorer)
        if not available_now and in_main_thread:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    if scorer.state.error is not None:
        raise scorer.state.error
    if query.exception() is not None:
        raise RuntimeError(f"the streaming query failed: {query.exception()}")
    state = scorer.state
    log.info(
        "stream stopped: %d batches, %d events, %d predictions, %d quarantined, versions %s",
        state.batches,
        state.events,
        state.predictions,
        state.quarantined,
        state.versions,
    )
    return {
        "query_id": scorer.query_id if (checkpoint / "metadata").exists() else None,
        "batches": state.batches,
        "skipped_batches": state.skipped,
        "events": state.events,
        "predictions": state.predictions,
        "quarantined": state.quarantined,
        "model_versions": state.versions,
        "checkpoint": str(checkpoint),
    }


def _stop_between_batches(query, scorer: MicroBatchScorer, timeout: float = 120.0) -> None:
    """Let a running micro-batch finish, then stop (``stop()`` interrupts a batch in flight; that
    batch would only be replayed on the next start, but a clean stop should not need it)."""
    deadline = time.monotonic() + timeout
    while query.status.get("isTriggerActive") and time.monotonic() < deadline:
        time.sleep(0.05)
    scorer.stopping = True
    query.stop()
