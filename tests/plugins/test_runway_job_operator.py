"""RunwayJobOperator and LocalJobHook against real job processes: forked from the session's job
server (tests/conftest.py) and started as a new interpreter, with the same outcomes."""

from __future__ import annotations

import threading
import time

import pytest
from airflow.sdk.exceptions import AirflowFailException
from background import free_port, port_answers  # scripts/background.py

from hooks.runway_job import LocalJobHook, RunwayJobError
from operators.runway_job import RunwayJobOperator


@pytest.fixture(params=["forked", "new interpreter"])
def job_env(request, tmp_path, warm_python):
    """Variables for LocalJobHook: the job forked from the session's job server, or not."""
    if request.param == "forked" and warm_python is None:
        pytest.skip("RUNWAY_TEST_COLD_PYTHON=1: the session runs without a job server")
    return {
        "RUNWAY_DATA_DIR": str(tmp_path),
        "RUNWAY_JOB_SERVER": warm_python if request.param == "forked" else "",
    }


def test_hook_returns_the_jobs_result(job_env, tmp_path):
    hook = LocalJobHook(extra_env=job_env)
    result = hook.run("seed", ["--env", "dev", "--start", "2013-01-01", "--end", "2013-01-02"])
    assert result["readings"] == 36 and result["devices"] == 24  # the test use case's first day
    assert (tmp_path / "landing" / "readings" / "2013-01-01.csv").is_file()


def test_a_job_server_that_does_not_answer_is_skipped(tmp_path, capsys):
    hook = LocalJobHook(
        extra_env={"RUNWAY_DATA_DIR": str(tmp_path), "RUNWAY_JOB_SERVER": str(tmp_path / "gone.sock")}
    )
    result = hook.run("seed", ["--env", "dev", "--start", "2013-01-01", "--end", "2013-01-02"])
    assert result["readings"] == 36
    logged = capsys.readouterr().out  # the task log (Airflow's structlog writes to stdout here)
    assert "no job server answers on" in logged and "starting a new interpreter instead" in logged


def test_on_kill_stops_a_forked_job(job_env, tmp_path):
    """The endpoint runs until stopped: the task's on_kill ends it."""
    port = free_port()
    hook = LocalJobHook(extra_env=job_env)
    outcome: list[object] = []

    def serve() -> None:
        try:
            outcome.append(hook.run("serve", ["--env", "dev", "--port", str(port)]))
        except Exception as exc:  # noqa: BLE001 — the test reads what happened
            outcome.append(exc)

    runner = threading.Thread(target=serve)
    runner.start()
    deadline = time.monotonic() + 120
    while not port_answers(port):
        assert runner.is_alive() and time.monotonic() < deadline, f"the endpoint did not start: {outcome}"
        time.sleep(0.2)
    hook.kill()
    runner.join(60)
    assert not runner.is_alive() and not port_answers(port)
    # uvicorn stops gracefully, then re-raises the signal: the process ends by SIGTERM, as the task asked
    assert isinstance(outcome[0], RunwayJobError) and outcome[0].exit_code == -15 and outcome[0].retryable


def test_missing_input_is_retryable(job_env):
    hook = LocalJobHook(extra_env=job_env)
    with pytest.raises(RunwayJobError, match="no landing file for source 'readings'") as caught:
        hook.run(
            "feature_refresh", ["bronze", "--env", "dev", "--start", "2013-01-01", "--end", "2013-01-02"]
        )
    assert caught.value.retryable and caught.value.exit_code == 4


def test_bad_input_fails_the_task_without_retries(job_env, monkeypatch):
    for key, value in job_env.items():
        monkeypatch.setenv(key, value)
    operator = RunwayJobOperator(
        task_id="seed", job="seed", arguments=["--start", "2013-02-01", "--end", "2013-01-01"], env="dev"
    )
    with pytest.raises(AirflowFailException, match="bad input: .*must be after its start"):
        operator.execute(context={})


def test_operator_is_thin():
    operator = RunwayJobOperator(task_id="t", job="seed", arguments=["{{ ds }}"], env="dev")
    assert operator._hook is None  # nothing built before execute
    assert "arguments" in operator.template_fields
