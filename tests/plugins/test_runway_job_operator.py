"""RunwayJobOperator and LocalJobHook against real job subprocesses."""

from __future__ import annotations

import pytest
from airflow.sdk.exceptions import AirflowFailException

from hooks.runway_job import LocalJobHook, RunwayJobError
from operators.runway_job import RunwayJobOperator


def test_hook_returns_the_jobs_result(tmp_path):
    hook = LocalJobHook(extra_env={"RUNWAY_DATA_DIR": str(tmp_path)})
    result = hook.run("seed", ["--env", "dev", "--start", "2013-01-01", "--end", "2013-01-02"])
    assert result["readings"] == 36 and result["devices"] == 24  # the test use case's first day
    assert (tmp_path / "landing" / "readings" / "2013-01-01.csv").is_file()


def test_missing_input_is_retryable(tmp_path):
    hook = LocalJobHook(extra_env={"RUNWAY_DATA_DIR": str(tmp_path)})
    with pytest.raises(RunwayJobError, match="no landing file for source 'readings'") as caught:
        hook.run(
            "feature_refresh", ["bronze", "--env", "dev", "--start", "2013-01-01", "--end", "2013-01-02"]
        )
    assert caught.value.retryable and caught.value.exit_code == 4


def test_bad_input_fails_the_task_without_retries(tmp_path):
    operator = RunwayJobOperator(
        task_id="seed", job="seed", arguments=["--start", "2013-02-01", "--end", "2013-01-01"], env="dev"
    )
    with pytest.raises(AirflowFailException, match="bad input: .*must be after its start"):
        operator.execute(context={})


def test_operator_is_thin():
    operator = RunwayJobOperator(task_id="t", job="seed", arguments=["{{ ds }}"], env="dev")
    assert operator._hook is None  # nothing built before execute
    assert "arguments" in operator.template_fields
