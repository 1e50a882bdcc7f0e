"""Use cases: write a new one from the template, check one, list the shipped ones.

    python -m jobs.use_case new churn                    # include/use_cases/churn/ (make use-case NAME=churn)
    python -m jobs.use_case check --env dev              # the selected use case, against its own shapes
    python -m jobs.use_case list

``new`` writes a complete, working use case folder: ``use_case.yaml`` (commented), the feature SQL,
the expectation suites and a small generated sample (``sample/<source>.csv``: sensor readings of a
few devices, one year, a binary "failed" label) that ``python -m jobs.seed`` lands as a feed. Select
it with ``RUNWAY_USE_CASE=<name>`` (or ``use_case: <name>`` in base.yaml / <env>.yaml), run
``check``, then replace the sample, sources, SQL and suites with your own.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

from jobs.config.loader import list_use_cases
from jobs.core.paths import use_cases_dir
from jobs.features.use_case_files import check, new_use_case
from jobs.runtime.cli import base_parser, iso_date, run_cli


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = base_parser(__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    new = commands.add_parser("new", help="write a new use case folder from the template")
    new.add_argument("name")
    new.add_argument("--dir", type=Path, default=None, help="parent folder (default: include/use_cases)")
    new.add_argument("--start", type=iso_date, default=date(2024, 1, 1), help="first day of the sample")
    new.add_argument("--days", type=int, default=365, help="days of sample data")
    new.add_argument("--rows-per-day", type=int, default=40, help="sample readings per day")
    new.add_argument("--force", action="store_true", help="rewrite an existing folder")
    commands.add_parser("check", help="check the selected use case (columns, SQL, suites)")
    commands.add_parser("list", help="the use cases under include/use_cases")
    args = parser.parse_args(argv)
    if args.command == "new":
        folder = new_use_case(
            args.name,
            args.dir or use_cases_dir(),
            start=args.start,
            days=args.days,
            rows_per_day=args.rows_per_day,
            force=args.force,
        )
        return {"folder": str(folder), "select_with": f"RUNWAY_USE_CASE={args.name}"}
    if args.command == "check":
        return check(args.env)
    return {"use_cases": list_use_cases()}


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
