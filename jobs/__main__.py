"""One entry point for every job: ``python -m jobs <job> [arguments]``, or ``runway_job <job> ...``
once the wheel is installed (what a Databricks ``python_wheel_task`` or ``spark-submit`` runs).

    python -m jobs train --env prod --start 2013-01-01 --end 2013-04-01
"""

from __future__ import annotations

import importlib
import sys

JOBS = ("seed", "feature_refresh", "train", "validate_model", "promote", "batch_inference", "maintenance",
        "streaming_inference", "monitoring", "knowledge_refresh", "build_assistant", "evaluate_assistant",
        "monitor_assistant")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(f"usage: runway_job <job> [arguments]\njobs: {', '.join(JOBS)}")
        return 0 if argv else 2
    job, arguments = argv[0], argv[1:]
    if job not in JOBS:
        print(f"unknown job {job!r}: choose from {', '.join(JOBS)}", file=sys.stderr)
        return 2
    from jobs.common.cli import run_cli

    return run_cli(importlib.import_module(f"jobs.{job}").main, arguments)


def entry() -> None:
    """The wheel's console script ``runway_job``."""
    raise SystemExit(main())


if __name__ == "__main__":
    raise SystemExit(main())
