"""One entry point for every job: ``python -m jobs <job> [arguments]``, or ``runway_job <job> ...``
once the wheel is installed (what a Databricks ``python_wheel_task`` or ``spark-submit`` runs).

    python -m jobs train --env prod --start 2013-01-01 --end 2013-04-01
"""

from __future__ import annotations

import importlib
import sys

from jobs.runnable import JOBS, UnknownJobError, check_job
from jobs.runtime.cli import run_cli


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(f"usage: runway_job <job> [arguments]\njobs: {', '.join(JOBS)}")
        return 0 if argv else 2
    job, arguments = argv[0], argv[1:]
    try:
        check_job(job)
    except UnknownJobError as exc:
        print(exc, file=sys.stderr)
        return 2

    return run_cli(importlib.import_module(f"jobs.{job}").main, arguments)


def entry() -> None:
    """The wheel's console script ``runway_job``."""
    raise SystemExit(main())


if __name__ == "__main__":
    raise SystemExit(main())
