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

from jobs.core.errors import NON_RETRYABLE_EXIT_CODES  # a retry cannot fix bad input or a failed gate
from jobs.runtime.fork_server import SOCKET_ENV, ForkedJob, JobServerUnavailable, run_job


class RunwayJobError(RuntimeError):
    def __init__(self, message: str, exit_code: int, retryable: bool):
        super().__init__(message)
        self.exit_code = exit_code
        self.retryable = retryable


class LocalJobHook(BaseHook):
    """Runs jobs on this worker with the worker's interpreter; the job's process group is killable.

    Where ``$RUNWAY_JOB_SERVER`` names a running job server of this interpreter (the warm Python
    `make up` and `make demo` start: jobs/runtime/fork_server.py), the job is forked from it instead
    of a new interpreter importing its libraries again; the job's process, environment, output and
    exit code are the same either way. A server that does not answer is logged and skipped.
    """

    hook_name = "Runway local job"

    def __init__(self, python: str | None = None, extra_env: dict[str, str] | None = None) -> None:
        super().__init__()
        self.python = python or sys.executable
        self.extra_env = extra_env or {}
        self._subprocess: SubprocessHook | None = None
        self._forked: ForkedJob | None = None

    def command(self, job: str, arguments: list[str]) -> list[str]:
        return [self.python, "-m", f"jobs.{job}", *[str(a) for a in arguments]]

    def run(self, job: str, arguments: list[str]) -> dict[str, Any]:
        """Run the job to completion; return its result payload or raise RunwayJobError."""
        with tempfile.TemporaryDirectory(prefix="runway-job-") as workdir:
            result_file = Path(workdir) / "result.json"
            env = {**os.environ, **self.extra_env, "RUNWAY_RESULT_FILE": str(result_file)}
            exit_code, output = self._execute(job, arguments, env, workdir)
            payload = json.loads(result_file.read_text()) if result_file.is_file() else {}
        if exit_code == 0 and payload.get("ok"):
            return payload.get("result", {})
        reason = NON_RETRYABLE_EXIT_CODES.get(exit_code)
        message = payload.get("error") or f"job {job} exited with code {exit_code}: {output}"
        raise RunwayJobError(f"{reason or 'job failed'}: {message}", exit_code, retryable=reason is None)

    def _execute(self, job: str, arguments: list[str], env: dict[str, str], workdir: str) -> tuple[int, str]:
        """The job's exit code and last line of output: forked from the job server if one serves
        this interpreter, else a new interpreter."""
        server = env.get(SOCKET_ENV)
        if server:
            try:
                return self._run_forked(server, job, arguments, env, workdir)
            except JobServerUnavailable as exc:
                self.log.warning("%s: starting a new interpreter instead", exc)
        self._subprocess = SubprocessHook()
        outcome = self._subprocess.run_command(self.command(job, arguments), env=env, cwd=workdir)
        return outcome.exit_code, outcome.output

    def _run_forked(
        self, server: str, job: str, arguments: list[str], env: dict[str, str], workdir: str
    ) -> tuple[int, str]:
        last_line = [""]

        def on_line(line: str) -> None:
            self.log.info("%s", line)
            last_line[0] = line

        def on_start(forked: ForkedJob) -> None:
            self._forked = forked
            self.log.info(
                "Forked from the job server %s as pid %d: %s",
                server,
                forked.pid,
                self.command(job, arguments),
            )

        exit_code = run_job(
            server,
            f"jobs.{job}",
            [str(a) for a in arguments],
            env=env,
            cwd=workdir,
            on_line=on_line,
            on_start=on_start,
            python=self.python,
        )
        if exit_code is None:
            return -1, f"the job server {server} stopped while the job ran"
        return exit_code, last_line[0]

    def kill(self) -> None:
        if self._forked is not None:
            self._forked.terminate()
        elif self._subprocess is not None:
            self._subprocess.send_sigterm()
