"""Runway's error classes and the exit codes they map to: whether a retry can help is decided here,
once, instead of from built-in exception types raised anywhere in a library.

Jobs raise these; ``jobs.runtime.cli.run_cli`` turns them into one sentence and an exit code that
the orchestrator reads (codes 2 and 3 are not retried).
"""

from __future__ import annotations

EXIT_BAD_INPUT = 2  # config, arguments, permissions, malformed data: a retry cannot fix it
EXIT_QUALITY_GATE = 3  # a data-quality or model-validation gate failed: a retry cannot fix it
EXIT_MISSING_INPUT = 4  # an input (landing file, table) is not there yet: retry later
EXIT_TRANSIENT = 5  # a service did not answer (registry, commit conflicts): retry later
NON_RETRYABLE_EXIT_CODES = {EXIT_BAD_INPUT: "bad input", EXIT_QUALITY_GATE: "a quality gate failed"}


class RunwayError(Exception):
    """Base of Runway's expected failures; ``exit_code`` tells whether a retry can help."""

    exit_code = 1


class BadInputError(RunwayError, ValueError):
    """Config, arguments, state or data that a retry cannot fix."""

    exit_code = EXIT_BAD_INPUT


class MissingInputError(RunwayError, LookupError):
    """An input that is not there yet (a landing file, a table): a later retry may find it."""

    exit_code = EXIT_MISSING_INPUT


class GateFailedError(RunwayError):
    """A quality gate (data expectations, model validation) did not pass."""

    exit_code = EXIT_QUALITY_GATE


class TransientError(RunwayError):
    """A service did not answer or a commit lost a race: the same call may succeed later."""

    exit_code = EXIT_TRANSIENT
