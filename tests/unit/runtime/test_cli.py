"""The job contract's failure mapping: Runway's error classes decide the exit code; a library's
built-in exception is a crash (exit 1, traceback), never read as "bad input" or "missing input"."""

from __future__ import annotations

import pytest

from jobs.core.errors import BadInputError, GateFailedError, MissingInputError, TransientError
from jobs.runtime.cli import run_cli


def failing(exc: BaseException):
    def main(argv=None):
        raise exc

    return main


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (BadInputError("x"), 2),
        (GateFailedError("x"), 3),
        (MissingInputError("x"), 4),
        (TransientError("x"), 5),
    ],
)
def test_runway_errors_map_to_their_exit_codes(error, code, capsys):
    assert run_cli(failing(error)) == code
    assert "runway: error: x" in capsys.readouterr().err


@pytest.mark.parametrize("error", [KeyError("column"), ValueError("library"), FileNotFoundError("f")])
def test_a_library_exception_is_a_crash_not_an_expected_failure(error):
    """Before: any KeyError was 'missing input, retry' and any ValueError 'bad input, no retry'."""
    with pytest.raises(type(error)):
        run_cli(failing(error))


def test_malformed_arguments_are_usage_errors_naming_the_argument(capsys):
    from jobs.train import main

    with pytest.raises(SystemExit) as exited:
        main(["--end", "2013-02-30"])
    assert exited.value.code == 2 and "argument --end: '2013-02-30' is not a date" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--end", "2013-03-01", "--params", "{max_iter: 3}"])
    assert "argument --params: not valid JSON" in capsys.readouterr().err
