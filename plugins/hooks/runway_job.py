"""Run a Runway job (``python -m jobs.<name> ...``) as a local subprocess and read its result."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from airflow.providers.standard.hooks.subprocess import SubprocessHook
from airflow.sdk import BaseHook

from jobs.common.errors import NON_RETRYABLE_EXIT_CODES  # a retry cannot fix bad input or a failed gate


class RunwayJobError(RuntimeError):
    def __init__(self, message: str, exit_code: int, retryable: bool):
        super().__init__(message)
        self.exit_code = exit_code
        self.retryable = retryable


class LocalJobHook(BaseHook):
    """Runs jobs on this worker with the worker's interpreter; the job's process group is killable."""

    hook_name = "Runway local job"

    def __init__(self, python: str | None = None, extra_env: dict[str, str] | None = None) -> None:
        super().__init__()
        self.python = python or sys.executable
        self.extra_env = extra_env or {}
        self._subprocess: SubprocessHook | None = None

    def command(self, job: str, arguments: list[str]) -> list[str]:
        return [self.python, "-m", f"jobs.{job}", *[str(a) for a in arguments]]

    def run(self, job: str, arguments: list[str]) -> dict[str, Any]:
        """Run the job to completion; return its result payload or raise RunwayJobError."""
        with tempfile.TemporaryDirectory(prefix="runway-job-") as workdir:
            result_file = Path(workdir) / "result.json"
            env = {**os.environ, **self.extra_env, "RUNWAY_RESULT_FILE": str(result_file)}
            self._subprocess = SubprocessHook()
            outcome = self._subprocess.run_command(self.command(job, arguments), env=env, cwd=workdir)
            payload = json.loads(result_file.read_text()) if result_file.is_file() else {}
        if outcome.exit_code == 0 and payload.get("ok"):
            return payload.get("result", {})
        reason = NON_RETRYABLE_EXIT_CODES.get(outcome.exit_code)
        message = payload.get("error") or f"job {job} exited with code {outcome.exit_code}: {outcome.output}"
        raise RunwayJobError(
            f"{reason or 'job failed'}: {message}", outcome.exit_code, retryable=reason is None
        )

    def kill(self) -> None:
        if self._subprocess is not None:
            self._subprocess.send_sigterm()
