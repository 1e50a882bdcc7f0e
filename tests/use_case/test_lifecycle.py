"""The selected use case end to end, as its jobs run under Airflow (each a `python -m jobs.<name>`
process): seed, feature refresh, train, validate, compare, promote, batch and streaming inference,
monitoring — on the days of its ``demo:`` section, in a fresh data folder and MLflow store.

`make test-use-case USE_CASE=<name>` runs that use case alone. Otherwise this set runs the use
case `make test` was started with (``RUNWAY_USE_CASE``; base.yaml's default,
the flights demo, otherwise) and every example use case shipped under include/use_cases/. The rest
of the suite tests the framework on its own generated use case (tests/use_cases/tiny).
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date, timedelta

import pytest
from deltalake import DeltaTable

from jobs.config.loader import list_use_cases, load_config
from jobs.core.results import read_result
from jobs.runtime.fork_server import SOCKET_ENV, run_job
from tests.conftest import ROOT, SELECTED_USE_CASE

# `make test-use-case USE_CASE=<name>` (RUNWAY_TEST_ONLY_SELECTED=1): that use case alone.
ONLY_SELECTED = bool(os.environ.get("RUNWAY_TEST_ONLY_SELECTED")) and bool(SELECTED_USE_CASE)
USE_CASES = (
    [SELECTED_USE_CASE]
    if ONLY_SELECTED
    else list(dict.fromkeys([SELECTED_USE_CASE or "flight_delay", *list_use_cases()]))
)


def next_month(day: date) -> date:
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)


class UseCaseRun:
    """Runs job CLIs on one use case in its own data folder and MLflow store."""

    def __init__(self, use_case: str, root) -> None:
        self.env = {
            **os.environ,
            "RUNWAY_USE_CASE": use_case,
            "RUNWAY_DATA_DIR": str(root),
            "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
            "MLFLOW_ARTIFACT_ROOT": str(root / "artifacts"),
        }
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("RUNWAY_USE_CASE", use_case)
            self.config = load_config("dev")
        self.root = root

    def job(self, name: str, *args: str) -> dict:
        """``python -m jobs.<name> --env dev <args>``, forked from the session's job server as the
        stack's Airflow tasks are (a new interpreter when the session runs without one)."""
        arguments = ["--env", "dev", *args]
        if server := os.environ.get(SOCKET_ENV):
            lines: list[str] = []
            exit_code = run_job(
                server, f"jobs.{name}", arguments, env=self.env, cwd=ROOT, on_line=lines.append
            )
            output = "\n".join(lines)
        else:
            done = subprocess.run(
                [sys.executable, "-m", f"jobs.{name}", *arguments],
                env=self.env,
                capture_output=True,
                text=True,
                timeout=900,
                cwd=ROOT,
            )
            exit_code, output = done.returncode, done.stdout + done.stderr
        outcome = read_result(output)
        assert exit_code == 0 and outcome.get("ok"), (
            f"jobs.{name} {' '.join(args)}: exit {exit_code}: {outcome or output[-3000:]}"
        )
        return outcome["result"]

    def table(self, schema: str, name: str):
        return DeltaTable(str(self.root / "lakehouse" / "dev" / schema / name)).to_pandas()


@pytest.mark.parametrize("use_case", USE_CASES)
def test_the_use_case_runs_its_whole_lifecycle(use_case, tmp_path):
    run = UseCaseRun(use_case, tmp_path)
    config = run.config
    calendar, first = config.use_case.demo, config.use_case.start_date
    assert calendar and first, f"use case {use_case!r}: give it a start_date and a demo: section to test it"
    training_end, month_end = calendar.training_end, next_month(calendar.training_end)
    span = ("--start", str(first), "--end", str(month_end))

    assert run.job("use_case", "check")["ok"]
    run.job("seed", *span)
    refreshed = run.job("feature_refresh", "all", *span)
    gold = run.table("gold", config.use_case.features.table)
    model = config.use_case.model
    assert refreshed["gold"]["rows"] == len(gold) > 0
    assert set(model.features.all) | {model.label} <= set(gold.columns)

    trained = run.job(
        "train",
        "--start",
        str(training_end - timedelta(days=model.training.window_days)),
        "--end",
        str(training_end),
        "--reason",
        "manual",
    )
    version = trained["version"]
    validated = run.job("validate_model", "--version", version)
    assert validated["status"] == "PASSED", validated
    assert run.job("promote", "compare", "--version", version)["decision"] == "promote"
    assert run.job("promote", "promote", "--version", version)["to_version"] == version

    window = ("--start", str(training_end), "--end", str(month_end))
    scored = run.job("batch_inference", *window)
    month = gold[(gold[config.use_case.features.date_column] >= training_end)]
    assert scored["rows"] == len(month) > 0 and scored["model_version"] == version

    stream_day = ("--start", str(calendar.stream_day), "--end", str(calendar.stream_day + timedelta(days=1)))
    events = run.job("seed", *stream_day, "--events", "--files-per-day", "4")["events"]
    streamed = run.job("streaming_inference", "--available-now")
    assert streamed["predictions"] == events > 0 and streamed["quarantined"] == 0

    monitored = run.job("monitoring", "monitor", *window)
    assert monitored["model_version"] == version and monitored["rows"] == len(month)
    metrics = run.table("monitoring", "metrics")
    drift = metrics[metrics.metric == "feature_drift"]
    assert set(drift.column) == set(model.features.all)


def test_make_test_use_case_runs_that_use_case_alone():
    """The README said `make test USE_CASE=<name>`, which ran the whole suite and both shipped
    examples beside the selected one."""
    env = {**os.environ, "RUNWAY_USE_CASE": "seattle_weather", "RUNWAY_TEST_ONLY_SELECTED": "1"}
    listed = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "tests/use_case/test_lifecycle.py"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    ids = [line for line in listed.stdout.splitlines() if "[" in line]
    assert ids and all("[seattle_weather]" in line for line in ids), listed.stdout[-2000:]
    assert "RUNWAY_TEST_ONLY_SELECTED=1 $(PY) -m pytest tests/use_case" in (ROOT / "Makefile").read_text()
