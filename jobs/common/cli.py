"""What every job's entry point shares: arguments, the date window, logging, clean failures."""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from jobs.common.errors import (  # noqa: F401 (the exit codes are part of the job contract)
    EXIT_BAD_INPUT,
    EXIT_MISSING_INPUT,
    EXIT_QUALITY_GATE,
    EXIT_TRANSIENT,
    NON_RETRYABLE_EXIT_CODES,
    RunwayError,
)

log = logging.getLogger("runway")
RESULT_MARKER = "RUNWAY_RESULT "


@dataclass(frozen=True)
class Window:
    """A half-open date interval ``[start, end)``, the unit of every idempotent write."""

    start: date
    end: date

    def __post_init__(self) -> None:
        if self.end <= self.start:
            raise ValueError(f"the window's end {self.end} must be after its start {self.start}")

    @classmethod
    def parse(cls, start: str, end: str) -> Window:
        try:
            return cls(date.fromisoformat(start[:10]), date.fromisoformat(end[:10]))
        except ValueError as exc:
            raise ValueError(f"bad date window [{start}, {end}): {exc}") from None

    def __iter__(self) -> Iterator[date]:
        day = self.start
        while day < self.end:
            yield day
            day += timedelta(days=1)

    def __len__(self) -> int:
        return (self.end - self.start).days

    def __str__(self) -> str:
        return f"[{self.start}, {self.end})"


def base_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--env", default=None, help="dev, staging or prod (default: $RUNWAY_ENV or dev)")
    return parser


def add_window(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--start", required=True, help="first day of the interval (YYYY-MM-DD)")
    parser.add_argument("--end", required=True, help="day after the last day of the interval (YYYY-MM-DD)")


def add_run_id(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--run-id", default=manual_run_id(),
        help="the orchestrator's run id: lineage, and the key that makes a retry of the same run a no-op "
             "(default: a new id per command, so a repeated command is a new request)",
    )  # fmt: skip


def manual_run_id() -> str:
    """A run id of its own for a command run by hand."""
    import uuid
    from datetime import UTC, datetime

    return f"manual__{datetime.now(UTC):%Y%m%dT%H%M%S}_{uuid.uuid4().hex[:6]}"


def setup_logging() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stdout
    )
    for noisy in ("py4j", "great_expectations", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def write_result(payload: dict[str, Any]) -> None:
    """Hand a small JSON result to the caller through ``$RUNWAY_RESULT_FILE`` (if set) and stdout."""
    text = json.dumps(payload, default=str)
    target = os.environ.get("RUNWAY_RESULT_FILE")
    if target:
        Path(target).write_text(text)
    print(RESULT_MARKER + text, flush=True)


def read_result(output: str) -> dict[str, Any]:
    """The payload ``write_result`` printed (its last ``RUNWAY_RESULT`` line) from a job's output:
    ``{"ok": true, "result": {...}}`` or ``{"ok": false, "exit_code": N, "error": "..."}``; ``{}``
    when the job printed none (it crashed)."""
    lines = [line.strip() for line in (output or "").splitlines() if line.strip().startswith(RESULT_MARKER)]
    return json.loads(lines[-1][len(RESULT_MARKER) :]) if lines else {}


def run_cli(main: Callable[[list[str] | None], dict[str, Any] | None], argv: list[str] | None = None) -> int:
    """Run a job's main as a process's entry point and report its result; expected failures end
    in one clear sentence. Returns the exit code."""
    try:
        return _report(main, argv)
    finally:
        # The process is about to exit: spare it the interpreter's final garbage collection over
        # every object the heavy imports created (about a second with MLflow and scikit-learn).
        # atexit handlers still run; objects are still freed by reference counting.
        gc.freeze()


def _report(main: Callable[[list[str] | None], dict[str, Any] | None], argv: list[str] | None) -> int:
    setup_logging()
    try:
        write_result({"ok": True, "result": main(argv) or {}})
        return 0
    except RunwayError as exc:
        code, message = exc.exit_code, str(exc)
    except (FileNotFoundError, LookupError) as exc:
        code, message = EXIT_MISSING_INPUT, str(exc)
    except (ValueError, PermissionError) as exc:
        code, message = EXIT_BAD_INPUT, str(exc)
    log.error("%s", message)
    print(f"runway: error: {message}", file=sys.stderr, flush=True)
    write_result({"ok": False, "exit_code": code, "error": message})
    return code
