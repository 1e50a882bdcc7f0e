"""The feature refresh: landing files to bronze, silver and gold Delta tables behind quality gates."""

from __future__ import annotations

import csv
import hashlib
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import reduce
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyspark.sql import functions as F

from jobs.config.env import EnvConfig
from jobs.config.use_case import SourceConfig
from jobs.core.errors import BadInputError, MissingInputError
from jobs.core.paths import landing_file
from jobs.core.window import Window
from jobs.features.pipeline import (
    QUARANTINE_TABLE,
    build_features,
    deduplicate,
    feature_sql,
    in_window,
    looks_back,
    quarantine_frame,
    silver_views,
    type_rows,
)
from jobs.features.quality import FAIL, QUARANTINE, QualityGateError, load_suite, validate, volume_parameters
from jobs.features.use_case_check import check_use_case_once
from jobs.runtime.spark_session import get_spark
from jobs.tablestore import DuplicateKeysError, open_table_store

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from jobs.tablestore import TableStore


log = logging.getLogger("runway.feature_refresh")
PASSED_GATE = "passed"
FAILED_GATE = "failed"

STEPS = ("bronze", "silver", "gate", "gold")

CORRUPT = "_corrupt_record"

GATE_LOG = "gate_log"

GATE_LOG_SCHEMA = "source string, day date, status string, run_id string, checked_at timestamp, detail string"


def staged(table: str) -> str:
    """Where a daily source's interval waits for the gate (write-audit-publish)."""
    return f"{table}__staged"


DELIMITERS = {";": "semicolon", "\t": "tab", "|": "pipe"}

REPLACEMENT = "\ufffd"  # what a UTF-8 reader makes of bytes that are not UTF-8


def check_header(path: Path, source: SourceConfig) -> list[str]:
    """The file's header; raises one sentence when it cannot be read as the source's CSV (not
    UTF-8, another delimiter, a declared column missing). Extra columns are logged and ignored."""
    with path.open("rb") as handle:
        first = handle.readline()
    try:
        line = first.decode("utf-8").lstrip("\ufeff")
    except UnicodeDecodeError as exc:
        raise BadInputError(
            f"landing file {path}: its header is not UTF-8 (byte 0x{first[exc.start]:02x} at offset "
            f"{exc.start})"
        ) from None
    header = next(csv.reader([line]), None)
    if not header or not "".join(header).strip():
        raise BadInputError(f"landing file {path} is empty: it has no header line")
    missing = [c for c in source.columns if c not in header]
    if missing and len(header) == 1:
        for delimiter, label in DELIMITERS.items():
            if not [c for c in source.columns if c not in header[0].split(delimiter)]:
                raise BadInputError(
                    f"landing file {path} is {label}-delimited: Runway reads comma-separated CSV"
                )
    if missing:
        raise BadInputError(f"landing file {path} is missing columns {missing}")
    if extra := [c for c in header if c not in source.columns]:
        log.warning("landing file %s has columns the source does not declare, ignored: %s", path, extra)
    return header


def undecodable_lines(path: Path, header: list[str]) -> list[str]:
    """Where the file has bytes that are not UTF-8: ``line N, column C (byte 0xNN at offset O)``."""
    data = path.read_bytes()
    try:
        data.decode("utf-8")
        return []
    except UnicodeDecodeError:
        pass
    found, offset = [], 0
    for number, raw in enumerate(data.split(b"\n"), start=1):
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            fields = next(csv.reader([raw.decode("utf-8", errors="replace")]), [])
            index = next((i for i, field in enumerate(fields) if REPLACEMENT in field), None)
            column = header[index] if index is not None and index < len(header) else "?"
            found.append(
                f"line {number}, column {column} (byte 0x{raw[exc.start]:02x} at offset {offset + exc.start})"
            )
        offset += len(raw) + 1
    return found


def read_landing(spark: SparkSession, files: list[Path], source: SourceConfig) -> DataFrame:
    """Raw rows of ``files`` as strings, with ``_corrupt_record`` set on malformed lines and
    ``_bad_bytes`` on lines whose bytes are not UTF-8 (naming file, line, column, offset).

    Files are grouped by header, so columns are matched by name even when a feed reorders them.
    """

    groups: dict[tuple[str, ...], list[str]] = {}
    bad_bytes = {}
    for path in files:
        header = check_header(path, source)
        groups.setdefault(tuple(header), []).append(str(path))
        if found := undecodable_lines(path, header):
            bad_bytes[path.name] = f"bytes that are not UTF-8 in {path.name}: " + "; ".join(found[:20])
    frames = []
    for header, paths in groups.items():
        schema = ", ".join(f"`{c}` string" for c in header) + f", {CORRUPT} string"
        frame = spark.read.csv(
            paths,
            schema=schema,
            header=True,
            mode="PERMISSIVE",
            columnNameOfCorruptRecord=CORRUPT,
            enforceSchema=True,
        )
        frames.append(
            frame.select(
                *[F.col(f"`{c}`") for c in source.columns],
                F.col(CORRUPT),
                F.col("_metadata.file_path").alias("_source_file"),
            )
        )
    raw = reduce(lambda a, b: a.unionByName(b), frames)
    replaced = reduce(
        lambda a, b: a | b,
        [F.coalesce(F.col(f"`{c}`").contains(REPLACEMENT), F.lit(False)) for c in source.columns],
    )
    reason = F.lit(None).cast("string")
    for name, text in bad_bytes.items():
        reason = F.when(F.col("_source_file").endswith("/" + name), F.lit(text)).otherwise(reason)
    return raw.withColumn(
        "_bad_bytes", F.when(replaced, F.coalesce(reason, F.lit("bytes that are not UTF-8")))
    )


def to_bronze(raw: DataFrame, run_id: str, ingested_at: datetime, daily: bool) -> tuple[DataFrame, DataFrame]:
    """(bronze rows, malformed lines with ``_record`` and ``_reason``) from raw landing rows."""

    file_date = (
        F.to_date(F.regexp_extract("_source_file", r"(\d{4}-\d{2}-\d{2})\.csv$", 1))
        if daily
        else F.lit(None).cast("date")
    )
    tagged = raw.withColumns(
        {
            "_file_date": file_date,
            "_ingested_at": F.lit(ingested_at).cast("timestamp"),
            "_run_id": F.lit(run_id),
        }
    )
    values = [c for c in raw.columns if c not in (CORRUPT, "_bad_bytes", "_source_file")]
    bad = F.col(CORRUPT).isNotNull() | F.col("_bad_bytes").isNotNull()
    malformed = tagged.where(bad).withColumns(
        {
            "_record": F.coalesce(F.col(CORRUPT), F.to_json(F.struct(*values))),
            "_reason": F.coalesce(F.col("_bad_bytes"), F.lit("malformed line")),
        }
    )
    good = tagged.where(~bad).drop(CORRUPT, "_bad_bytes")
    return good, malformed


@dataclass
class JobContext:
    config: EnvConfig
    spark: SparkSession
    store: TableStore
    run_id: str

    @classmethod
    def open(cls, config: EnvConfig, run_id: str) -> JobContext:

        spark = get_spark(config, app_name=f"runway-feature-refresh-{config.env}")
        return cls(config, spark, open_table_store(config, spark), run_id)

    @property
    def validation_backend(self) -> str:
        """GX on pandas for local compute (rows already pass through the driver), Spark on clusters."""
        return "pandas" if self.config.compute.kind == "local" else "spark"

    def metadata(self, step: str, window: Window) -> dict[str, str]:
        return {"job": f"feature_refresh.{step}", "run_id": self.run_id, "window": str(window)}

    def report_path(self, source: str, window: Window, stage: str) -> Path:
        safe_run = re.sub(r"[^A-Za-z0-9_.-]+", "_", self.run_id)
        return (
            Path(self.config.storage.reports_root)
            / self.config.env
            / "data_quality"
            / source
            / f"{window.start}_{window.end}"
            / f"{stage}__{safe_run}.json"
        )


def _write_quarantine(
    ctx: JobContext, rows: DataFrame, source: str, layer: str, window: Window | None
) -> int:
    predicate = f"source = '{source}' AND layer = '{layer}'"
    name = ctx.store.name("silver", QUARANTINE_TABLE)
    meta = ctx.metadata(f"{layer}.quarantine", window) if window else {"run_id": ctx.run_id}
    # Written even when empty: a rerun must clear what an earlier run quarantined for this window.
    if window is None:
        return ctx.store.overwrite(name, rows, predicate=predicate, metadata=meta).rows
    return ctx.store.overwrite_window(
        name, rows, "file_date", window.start, window.end, extra_predicate=predicate, metadata=meta
    ).rows


def run_bronze(ctx: JobContext, window: Window) -> dict[str, Any]:
    """Land the interval's files (and the reference snapshots) in bronze."""

    landing_root = Path(ctx.config.storage.landing_root)
    ingested_at = datetime.now(UTC)  # ingestion metadata, not business time
    summary: dict[str, Any] = {}
    for name, source in ctx.config.use_case.sources.items():
        daily = source.kind == "daily"
        files = (
            [landing_file(landing_root, name, day) for day in window]
            if daily
            else [landing_file(landing_root, name)]
        )
        absent = [str(f) for f in files if not f.is_file()]
        if absent:
            raise MissingInputError(f"no landing file for source '{name}': {', '.join(absent)}")
        table = ctx.store.name("bronze", staged(name) if daily else name)
        meta = ctx.metadata("bronze", window)
        if not daily:  # a snapshot already loaded is not written again
            meta["source_sha256"] = hashlib.sha256(files[0].read_bytes()).hexdigest()
            if (
                ctx.store.exists(table)
                and ctx.store.last_commit_metadata(table).get("source_sha256") == meta["source_sha256"]
            ):
                summary[name] = {"unchanged": True, "version": ctx.store.version(table)}
                log.info("bronze %s: snapshot %s unchanged since its last load, kept", name, files[0])
                continue
        raw = read_landing(ctx.spark, files, source).cache()
        good, malformed = to_bronze(raw, ctx.run_id, ingested_at, daily)
        if daily:
            commit = ctx.store.overwrite_window(
                table, good, "_file_date", window.start, window.end, metadata=meta
            )
        else:
            commit = ctx.store.overwrite(table, good, metadata=meta)
        bad = quarantine_frame(
            malformed, name, "bronze", F.col("_record"), F.array(F.col("_reason")), ctx.run_id
        )
        quarantined = _write_quarantine(ctx, bad, name, "bronze", window if daily else None)
        raw.unpersist()
        summary[name] = {"rows": commit.rows, "quarantined": quarantined, "version": commit.version}
        log.info(
            "bronze %s %s: %d rows, %d malformed lines quarantined", name, window, commit.rows, quarantined
        )
    return summary


def _check(ctx: JobContext, df: DataFrame, name: str, source: SourceConfig, window: Window, severity: str):
    """Run one severity of the source's suite on ``df``; the result JSON is kept under reports."""

    suite_name, expectations = load_suite(ctx.config.use_case.file("expectations", source.expectations))
    fraction = ctx.config.sample_fraction if source.sampled else 1.0
    return validate(
        df,
        suite_name,
        expectations,
        severity=severity,
        parameters=volume_parameters(source.quality, len(window), fraction),
        report_path=ctx.report_path(name, window, "rows" if severity == QUARANTINE else "gate"),
        backend=ctx.validation_backend,
    )


def run_silver(ctx: JobContext, window: Window) -> dict[str, Any]:
    """Type, sample, de-duplicate and row-check bronze into silver; quarantine what fails."""

    summary: dict[str, Any] = {}
    for name, source in ctx.config.use_case.sources.items():
        daily = source.kind == "daily"
        bronze_table = ctx.store.name("bronze", staged(name) if daily else name)
        table = ctx.store.name("silver", staged(name) if daily else name)
        meta = {**ctx.metadata("silver", window), "bronze_version": str(ctx.store.version(bronze_table))}
        already = (
            not daily
            and ctx.store.exists(table)
            and ctx.store.last_commit_metadata(table).get("bronze_version")
        )
        if already == meta["bronze_version"]:
            summary[name] = {"unchanged": True, "version": ctx.store.version(table)}
            log.info("silver %s: bronze version %s already merged, kept", name, meta["bronze_version"])
            continue
        bronze = ctx.store.read(
            bronze_table, window=("_file_date", window.start, window.end) if daily else None
        )
        typed = deduplicate(type_rows(bronze, source, ctx.config.sample_fraction), source.keys).cache()
        candidates = typed.where(F.size("_problems") == 0)

        row_failures: dict[str, list[str]] = {}
        if source.expectations:
            row_failures = _check(ctx, candidates, name, source, window, QUARANTINE).row_failures
        failures = ctx.spark.createDataFrame(
            [(key, checks) for key, checks in row_failures.items()], "_row_key string, _failed array<string>"
        )
        checked = typed.join(F.broadcast(failures), "_row_key", "left").withColumn(
            "_problems", F.concat("_problems", F.coalesce("_failed", F.array().cast("array<string>")))
        )
        good = checked.where(F.size("_problems") == 0)
        keep = [*source.columns, *(["event_date"] if daily else []), "_source_file"]
        if daily:
            commit = ctx.store.overwrite_window(
                table, good.select(*keep), "event_date", window.start, window.end, metadata=meta
            )
        else:
            commit = ctx.store.merge(table, good.select(*keep), source.keys, metadata=meta)
        bad = checked.where(F.size("_problems") > 0)
        quarantine = quarantine_frame(
            bad, name, "silver", F.col("_record"), F.col("_problems"), ctx.run_id, F.col("_row_key")
        )
        quarantined = _write_quarantine(ctx, quarantine, name, "silver", window if daily else None)
        typed.unpersist()
        summary[name] = {"rows": commit.rows, "quarantined": quarantined, "version": commit.version}
        log.info("silver %s %s: %d rows landed, %d quarantined", name, window, commit.rows, quarantined)
    return summary


def run_gate(ctx: JobContext, window: Window) -> dict[str, Any]:
    """Table-level expectations on the interval's staged silver rows; when every daily source
    passes, publish the staged bronze and silver rows and log the pass per day. Raises
    QualityGateError (nothing published) on failure."""

    summary: dict[str, Any] = {}
    failures = []
    daily = {name: source for name, source in ctx.config.use_case.sources.items() if source.kind == "daily"}
    for name, source in daily.items():
        if not source.expectations:
            continue
        silver = ctx.store.read(
            ctx.store.name("silver", staged(name)), window=("event_date", window.start, window.end)
        )
        outcome = _check(ctx, silver, name, source, window, FAIL)
        summary[name] = {
            "success": outcome.success,
            "failed": outcome.failed,
            "report": str(outcome.report_path),
        }
        log.info("quality gate %s %s: %s (report: %s)", name, window, outcome.summary(), outcome.report_path)
        if not outcome.success:
            why = quarantined_all(ctx, name, window) if silver.isEmpty() else ""
            failures.append(
                (name, f"{name} {window}: {outcome.summary()}{why}\n  report: {outcome.report_path}")
            )
    if failures:
        _log_gate(
            ctx, window, {name: FAILED_GATE for name, _ in failures}, {name: text for name, text in failures}
        )
        raise QualityGateError(
            "data-quality gate failed (nothing published: the last good rows stay):\n"
            + "\n".join(text for _, text in failures)
        )
    for name in daily:
        summary.setdefault(name, {"success": True, "failed": [], "report": None})
        summary[name]["published"] = _publish(ctx, name, window)
    _log_gate(ctx, window, dict.fromkeys(daily, PASSED_GATE), {})
    return summary


def quarantined_all(ctx: JobContext, name: str, window: Window) -> str:
    """Why a source's window has no silver rows when silver quarantined them all: how many, and
    the commonest reasons (values aside), e.g. every date written in another format."""
    table = ctx.store.name("silver", QUARANTINE_TABLE)
    if not ctx.store.exists(table):
        return ""
    rows = ctx.store.read_pandas(
        table, window=("file_date", window.start, window.end), columns=["source", "layer", "failed_checks"]
    )
    rows = rows[(rows.source == name) & (rows.layer == "silver")]
    reasons = rows.failed_checks.explode().dropna().astype(str)
    if reasons.empty:
        return ""
    kinds = reasons.str.replace(r": '.*'$", "", regex=True)
    counted = kinds.groupby(kinds).size().reset_index(name="n").rename(columns={"failed_checks": "kind"})
    top = counted.sort_values(["n", "kind"], ascending=[False, True]).head(2)
    examples = reasons.groupby(kinds).min()
    said = "; ".join(
        f"{kind} ({n} rows, e.g. {examples[kind]})" for kind, n in zip(top.kind, top.n, strict=True)
    )
    return f"\n  all {len(rows)} rows of {name} in {window} were quarantined; the commonest reasons: {said}"


def _publish(ctx: JobContext, name: str, window: Window) -> dict[str, int]:
    """The staged interval of a daily source replaces its interval in bronze, then in silver."""
    published = {}
    for layer, column in (("bronze", "_file_date"), ("silver", "event_date")):
        commit = ctx.store.copy_window(
            ctx.store.name(layer, staged(name)),
            ctx.store.name(layer, name),
            column,
            window.start,
            window.end,
            metadata=ctx.metadata(f"{layer}.publish", window),
        )
        published[layer] = commit.rows
    log.info(
        "published %s %s: %d bronze, %d silver rows", name, window, published["bronze"], published["silver"]
    )
    return published


def _log_gate(ctx: JobContext, window: Window, status: dict[str, str], detail: dict[str, str]) -> None:
    now = datetime.now(UTC)
    rows = [
        {
            "source": name,
            "day": day,
            "status": outcome,
            "run_id": ctx.run_id,
            "checked_at": now,
            "detail": detail.get(name, "")[:2000],
        }
        for name, outcome in status.items()
        for day in window
    ]
    ctx.store.merge(
        ctx.store.name("silver", GATE_LOG),
        ctx.store.small_frame(rows, GATE_LOG_SCHEMA),
        ["source", "day"],
        metadata=ctx.metadata("gate.log", window),
    )


def ungated_days(ctx: JobContext, window: Window) -> list[str]:
    """The window's days whose latest gate (any daily source) did not pass, with why."""
    table = ctx.store.name("silver", GATE_LOG)
    log_rows = (
        ctx.store.read_pandas(table, window=("day", window.start, window.end))
        if ctx.store.exists(table)
        else None
    )
    latest = {} if log_rows is None else {(r.source, r.day): r for r in log_rows.itertuples()}
    problems = []
    for name, source in ctx.config.use_case.sources.items():
        if source.kind != "daily":
            continue
        for day in window:
            row = latest.get((name, day))
            if row is None:
                problems.append(f"{name} {day} was never published by the gate")
            elif row.status != PASSED_GATE:
                problems.append(f"{name} {day} failed its gate in run {row.run_id}")
    return problems


def run_gold(ctx: JobContext, window: Window) -> dict[str, Any]:
    """Compute the interval's features with the use case's SQL and replace them in gold; refuses a
    window whose silver did not pass its gate."""

    if problems := ungated_days(ctx, window):
        shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        raise QualityGateError(
            f"gold {window} refused: {shown} (gold keeps its rows; rerun the refresh after fixing the "
            "landing files)"
        )
    features = ctx.config.use_case.features
    sources = ctx.config.use_case.sources
    views = silver_views(ctx.store, sources, window.start, window.end)  # with each source's look-back
    gold = build_features(ctx.spark, feature_sql(ctx.config), views)
    if looks_back(sources):  # the history's days are other refreshes' rows
        gold = in_window(gold, features.date_column, window.start, window.end)
    table = ctx.store.name("gold", features.table)
    try:
        commit = ctx.store.overwrite_window(
            table,
            gold,
            features.date_column,
            window.start,
            window.end,
            metadata=ctx.metadata("gold", window),
            unique_by=features.keys,
        )
    except DuplicateKeysError as exc:
        raise BadInputError(
            f"feature SQL {features.sql} yields {exc.repeated} duplicated keys {features.keys}"
        ) from None
    log.info("gold %s %s: %d rows, table version %d", table, window, commit.rows, commit.version)
    return {"table": str(table), "rows": commit.rows, "version": commit.version}


STEP_FUNCTIONS = {"bronze": run_bronze, "silver": run_silver, "gate": run_gate, "gold": run_gold}


def refresh(ctx: JobContext, window: Window, steps: tuple[str, ...] = STEPS) -> dict[str, Any]:
    """Run ``steps`` for ``window``, after checking the use case's columns, SQL and (for the steps
    that validate) suites against its declared sources: a config mistake fails before any write."""

    check_use_case_once(ctx.spark, ctx.config, suites=bool({"silver", "gate"} & set(steps)))
    return {step: STEP_FUNCTIONS[step](ctx, window) for step in steps}
