"""Seed data: a use case's sample frames written as landing files, day by day, and its event feed."""

from __future__ import annotations

import importlib
import logging
import os
import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from jobs.config.env import EnvConfig
from jobs.config.use_case import SeedConfig, SourceConfig
from jobs.core.errors import BadInputError
from jobs.core.paths import landing_file
from jobs.core.window import Window

log = logging.getLogger("runway.seed")


def _write_atomically(frame: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".csv.tmp")
    frame.to_csv(tmp, index=False)
    os.replace(tmp, path)


def _as_feed(frame: pd.DataFrame, source: SourceConfig) -> pd.DataFrame:
    """The source's declared columns as a feed writes them: integers without a trailing '.0', dates
    and timestamps as ISO text (in CSV files and JSON events alike)."""
    frame = frame[list(source.columns)].copy()
    for column, kind in source.columns.items():
        values = frame[column]
        if kind in ("int", "bigint") and pd.api.types.is_float_dtype(values):
            frame[column] = values.astype("Int64")
        elif kind == "date" and pd.api.types.is_datetime64_any_dtype(values):
            frame[column] = values.dt.strftime("%Y-%m-%d")
        elif kind == "date":  # text: a midnight timestamp ("1985-01-01T00:00:00Z") is that day
            frame[column] = _midnight_as_day(values)
        elif kind == "timestamp" and pd.api.types.is_datetime64_any_dtype(values):
            frame[column] = values.dt.strftime("%Y-%m-%dT%H:%M:%S%z").str.replace(r"\+0000$", "Z", regex=True)
    return frame


def _midnight_as_day(values: pd.Series) -> pd.Series:
    """Text dates written as midnight timestamps, as days (``YYYY-MM-DD``); other values as they
    are (a real time of day, or no date at all, is for silver's typing to quarantine)."""
    parsed = pd.to_datetime(values, errors="coerce", utc=True, format="ISO8601")
    midnight = parsed.notna() & (parsed == parsed.dt.normalize()) & values.astype(str).str.contains("T")
    return values.where(~midnight, parsed.dt.strftime("%Y-%m-%d"))


def _seed_config(config: EnvConfig) -> SeedConfig:
    if config.use_case.seed is None:
        raise BadInputError(
            f"{config.use_case.folder}/use_case.yaml: the use case has no `seed` section: nothing to seed "
            "from"
        )
    return config.use_case.seed


def source_frame(config: EnvConfig, name: str) -> pd.DataFrame:
    """All rows of source ``name`` as the use case's seed provides them (its declared columns)."""
    spec, source = _seed_config(config), config.use_case.sources[name]
    if spec.directory is not None:
        path = config.use_case.folder / spec.directory / f"{name}.csv"
        if not path.is_file():
            raise BadInputError(f"use_case.seed.directory: {path} not found (one <source>.csv per source)")
        frame = pd.read_csv(path, keep_default_na=False, na_values=source.null_values, dtype=str)
    else:
        frame = package_frame(spec, name)
    if missing := [c for c in source.columns if c not in frame.columns]:
        raise BadInputError(f"seed data of source {name!r} lacks its declared columns {missing}")
    return _as_feed(frame, source)


def package_frame(spec: SeedConfig, name: str) -> pd.DataFrame:
    """Source ``name``'s frame from ``seed.package``: the attribute ``frames`` names (called when
    callable), or a loader called with its ``args`` and ``kwargs``."""
    loader = spec.frames.get(name, name)
    path, args, kwargs = (
        (loader, [], {}) if isinstance(loader, str) else (loader.call, loader.args, loader.kwargs)
    )
    found = importlib.import_module(spec.package)
    for attribute in path.split("."):
        if not hasattr(found, attribute):
            raise BadInputError(f"use_case.seed.frames.{name}: {spec.package} has no {path!r}")
        found = getattr(found, attribute)
    frame = found(*args, **kwargs) if callable(found) else found
    if not isinstance(frame, pd.DataFrame):
        raise BadInputError(
            f"use_case.seed.frames.{name}: {spec.package}.{path} gave a {type(frame).__name__}, not a "
            "DataFrame"
        )
    return frame


def row_days(config: EnvConfig, frame: pd.DataFrame) -> pd.Series:
    """Each row's day from ``seed.date_columns`` (one date column, or year, month, day)."""
    columns = _seed_config(config).date_columns
    if len(columns) == 1:
        return pd.to_datetime(frame[columns[0]], errors="coerce").dt.date
    parts = frame[columns].apply(pd.to_numeric, errors="coerce").set_axis(["year", "month", "day"], axis=1)
    return pd.to_datetime(parts, errors="coerce").dt.date


def seed(config: EnvConfig, window: Window, landing_root: Path | None = None) -> dict[str, int]:
    """Write the landing files for ``window``; returns rows written per source."""
    landing_root = Path(landing_root or config.storage.landing_root)
    written: dict[str, int] = {}
    for name, source in config.use_case.sources.items():
        frame = source_frame(config, name)
        if source.kind == "reference":
            _write_atomically(frame, landing_file(landing_root, name))
            written[name] = len(frame)
            continue
        days = row_days(config, frame)
        check_days(config, name, frame, days, window)
        by_day = dict(tuple(frame.groupby(days, sort=False)))
        written[name] = 0
        for day in window:
            rows = by_day.get(day, frame.iloc[0:0])
            _write_atomically(rows, landing_file(landing_root, name, day))
            written[name] += len(rows)
    log.info("seeded %s into %s: %s", window, landing_root, written)
    return written


def check_days(config: EnvConfig, name: str, frame: pd.DataFrame, days: pd.Series, window: Window) -> None:
    """Seeding nothing is an error: ``seed.date_columns`` that give no row a date (a column that is
    not a date), or a window outside the seed's days, are one sentence each, not ``ok: true``."""
    known = days.dropna()
    if known.empty:
        columns = _seed_config(config).date_columns
        shown = frame[columns].head(2).to_dict("records")
        raise BadInputError(
            f"use_case.seed.date_columns {columns} give no row of source {name!r} a date "
            f"(values like {shown}): nothing to seed"
        )
    if not known.between(window.start, window.end, inclusive="left").any():
        raise BadInputError(
            f"the seed of source {name!r} has no rows in {window}: its days run from {known.min()} to "
            f"{known.max()}"
        )


def event_file(landing_dir: Path, day: date, part: int) -> Path:
    return Path(landing_dir) / f"{day.isoformat()}-{part:03d}.jsonl"


def emit_events(
    config: EnvConfig,
    window: Window,
    *,
    landing_dir: Path | None = None,
    files_per_day: int = 24,
    pace_seconds: float = 0.0,
) -> dict[str, int]:
    """Land each day's rows of the streaming source as JSON-lines event files, in the order they
    would arrive (``seed.events_ordered_by``), split into ``files_per_day`` small files, ``pace_seconds``
    apart. Columns
    not known before the event happens (``seed.withheld_from_events``) are left out."""
    spec, streaming = _seed_config(config), config.inference.streaming
    name, _ = config.streaming_source()
    landing_dir = Path(landing_dir or streaming.landing_dir)
    landing_dir.mkdir(parents=True, exist_ok=True)
    frame = source_frame(config, name)
    days = row_days(config, frame)
    frame = frame.drop(columns=[c for c in spec.withheld_from_events if c in frame])
    files = rows = 0
    for day in window:
        events = frame[days == day]
        order = spec.events_ordered_by
        events = events.sort_values(order, kind="stable") if order else events
        for part, chunk in enumerate(np.array_split(events, max(1, min(files_per_day, len(events))))):
            if files and pace_seconds:
                time.sleep(pace_seconds)
            path = event_file(landing_dir, day, part)
            tmp = path.with_name(f".{path.name}.tmp")  # hidden: the stream never sees partial files
            chunk.to_json(tmp, orient="records", lines=True)
            os.replace(tmp, path)
            files, rows = files + 1, rows + len(chunk)
    log.info("emitted %d events in %d files for %s into %s", rows, files, window, landing_dir)
    return {"events": rows, "files": files}
