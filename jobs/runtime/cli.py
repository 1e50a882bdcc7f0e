"""What every job's entry point shares: arguments, logging, and one clean sentence and exit code
for an expected failure (the result protocol is in ``jobs.core.results``)."""

from __future__ import annotations

import argparse
import gc
import json
import logging
import sys
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

from jobs.core.errors import RunwayError
from jobs.core.results import write_result

log = logging.getLogger("runway")


def base_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--env", default=None, help="dev, staging or prod (default: $RUNWAY_ENV or dev)")
    return parser


def add_window(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--start", required=True, help="first day of the interval (YYYY-MM-DD)")
    parser.add_argument("--end", required=True, help="day after the last day of the interval (YYYY-MM-DD)")


def add_run_id(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--run-id",
        default=manual_run_id(),
        help="the orchestrator's run id: lineage, and the key that makes a retry of the same run a no-op "
        "(default: a new id per command, so a repeated command is a new request)",
    )


def add_target(parser: argparse.ArgumentParser, chain_note: str) -> None:
    """``--model``: the target acted on, the use case's model or the assistant's chain (``chain_note``
    says what the chain's differs in) — the key of ``EnvConfig.target``. ``--requested-by``: the
    person it is done for (audited; default: the authenticated caller)."""
    parser.add_argument(
        "--model",
        choices=["use_case", "assistant"],
        default="use_case",
        help=f"the use case's model, or {chain_note}",
    )
    parser.add_argument(
        "--requested-by", default=None, help="whom it is done for (default: the authenticated caller)"
    )


def target_key(args: argparse.Namespace) -> str:
    """The ``EnvConfig.target`` key ``--model`` names."""
    return "assistant" if args.model == "assistant" else "model"


def manual_run_id() -> str:
    """A run id of its own for a command run by hand."""

    return f"manual__{datetime.now(UTC):%Y%m%dT%H%M%S}_{uuid.uuid4().hex[:6]}"


def iso_date(text: str):
    """An argparse type: a ``YYYY-MM-DD`` day (a bad one is argparse's usage error, exit 2)."""

    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def json_object(text: str) -> dict[str, Any]:
    """An argparse type: a JSON object (a bad one is argparse's usage error, exit 2)."""

    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON ({exc.msg} at character {exc.pos})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("a JSON object ({...}) is expected")
    return value


def setup_logging() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stdout
    )
    for noisy in ("py4j", "great_expectations", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


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
    except RunwayError as exc:  # expected: one sentence; anything else is a crash (traceback, exit 1)
        code, message = exc.exit_code, str(exc)
    except Exception as exc:
        from jobs.runtime.spark_session import server_lost

        if (lost := server_lost(exc)) is None:
            raise
        code, message = lost.exit_code, str(lost)
    log.error("%s", message)
    print(f"runway: error: {message}", file=sys.stderr, flush=True)
    write_result({"ok": False, "exit_code": code, "error": message})
    return code
