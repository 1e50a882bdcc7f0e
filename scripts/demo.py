"""The Runway lifecycle demo on the embedded default (local engine, dev environment, SQLite Airflow DB).

    make demo
    make demo USE_CASE=seattle_weather                       # another use case
    .venv/bin/python scripts/demo.py --last-month 2013-07   # a shorter run

Runs the dev DAGs through Airflow (``dag.test()``: the scheduler's loop in this process, the tasks
as they run in production), headless, on the selected use case's data (``RUNWAY_USE_CASE``; the
2013 NYC flights by default), on the days its ``demo:`` section names:

 1. seed the landing zone from its start_date to training_end, refresh features (bronze → silver →
    gold, DQ gates);
 2. train → validate → compare → promote: the first ``Champion``;
 3. the following months land and are refreshed;
 4. batch inference for the first month, then streaming inference over stream_day's events;
 5. month by month: batch-score the month with the current ``Champion``, monitor it (drift against
    the Champion's training window, quality once labels are in); when the retraining policy holds,
    the monitoring DAG triggers ``dev_training`` (reason ``drift``) and the demo runs that queued
    run, as the scheduler would: a new ``Champion``, or the old one kept;
 6. a summary: model versions and aliases, metrics, drift by month, alerts, time per stage.

Rerunning is safe: the demo starts its dev environment over (dev tables, checkpoints, the stream's
landing folder, dev reports, the dev registered model and the dev DAGs' run history), so a rerun
tells the same story. Task logs go to ``<data>/logs/demo.log``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import runway_env  # noqa: E402


def record_real_start(run, began: datetime) -> None:
    """``dag.test()`` dates a run's start at its logical date (2013 here), so the UI showed the
    demo's runs lasting about 4,900 days: record when the run really began."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import update

    with create_session() as session:
        session.execute(
            update(DagRun)
            .where(DagRun.dag_id == run.dag_id, DagRun.run_id == run.run_id)
            .values(start_date=began)
        )
    run.start_date = began


class DemoError(RuntimeError):
    """A stage failed: the message says which and where its log is."""


class Demo:
    def __init__(self, data_dir: Path, last_month: date | None = None) -> None:
        from jobs.config.loader import load_config

        self.config = load_config("dev")
        calendar = self.config.use_case.demo
        if calendar is None or self.config.use_case.start_date is None:
            raise DemoError(
                f"use case {self.config.use_case.name!r} has no start_date and demo: section (training_end, "
                f"stream_day, last_month) in {self.config.use_case.folder}/use_case.yaml"
            )
        self.first_day, self.training_end = self.config.use_case.start_date, calendar.training_end
        self.stream_day = calendar.stream_day
        self.last_month = last_month or calendar.last_month
        if self.last_month < self.training_end:
            raise DemoError(f"the last month must be {self.training_end:%Y-%m} or later")
        self.data_dir = data_dir
        self.warm_spark = True
        self.started_services: list[str] = []  # the warm services this demo started (and stops)
        self.log_path = data_dir / "logs" / "demo.log"
        self.timings: dict[str, float] = {}
        self.runs: list[tuple[str, str, str]] = []  # (dag id, run id, state)
        self.training_ends: list[str] = []  # what each training run learned up to (for make bench)
        self.dags: dict[str, Any] = {}

    # -- plumbing -------------------------------------------------------------------------------
    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        print(f"  {name} ...", end="", flush=True)
        started = time.perf_counter()
        try:
            yield
        finally:
            seconds = time.perf_counter() - started
            self.timings[name] = self.timings.get(name, 0.0) + seconds
            print(f" {seconds:.0f} s", flush=True)

    @contextlib.contextmanager
    def _task_output_to_log(self) -> Iterator[None]:
        """Task logs (and the jobs' subprocess output) go to the log file, progress to the terminal."""
        sys.stdout.flush()
        sys.stderr.flush()
        saved = os.dup(1), os.dup(2)
        with self.log_path.open("a") as log:
            os.dup2(log.fileno(), 1)
            os.dup2(log.fileno(), 2)
            try:
                yield
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os.dup2(saved[0], 1)
                os.dup2(saved[1], 2)
                os.close(saved[0])
                os.close(saved[1])

    def dag(self, pipeline: str):
        dag_id = f"dev_{pipeline}"
        if dag_id not in self.dags:
            file = {
                "feature_refresh": "feature_refresh.py",
                "training": "training.py",
                "batch_inference": "inference.py",
                "streaming_inference": "inference.py",
                "monitoring": "monitoring.py",
            }[pipeline]
            with self._task_output_to_log():
                self.dags[dag_id] = runway_env.load_dag(dag_id, file)
        return self.dags[dag_id]

    def run(self, pipeline: str, logical_day: date, conf: dict[str, Any], *, run_id: str | None = None):
        """One DAG run under dag.test(), dated ``logical_day`` (a rerun of the demo replaces it)."""
        from unittest import mock

        from airflow.models.dagrun import DagRun

        dag = self.dag(pipeline)
        logical = datetime.combine(logical_day, datetime.min.time(), tzinfo=UTC)
        # A run the scheduler would pick up (queued by a trigger) keeps its id when the demo runs it.
        named = (
            mock.patch.object(DagRun, "generate_run_id", return_value=run_id)
            if run_id
            else contextlib.nullcontext()
        )
        began = datetime.now(UTC)
        with named, self._task_output_to_log():
            run = dag.test(logical_date=logical, run_conf=conf)
        record_real_start(run, began)
        states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
        self.runs.append((dag.dag_id, run.run_id, str(run.state)))
        return run, states

    def require(self, pipeline: str, run, states: dict[str, str]) -> None:
        if str(run.state) != "success":
            failed = sorted(t for t, s in states.items() if s in {"failed", "upstream_failed"})
            raise DemoError(f"dev_{pipeline} run {run.run_id} failed at {failed}: see {self.log_path}")

    # -- stages ---------------------------------------------------------------------------------
    def reset(self) -> None:
        """Start the dev environment over; other environments and the Airflow history stay."""
        from jobs.runtime.mlflow_setup import mlflow_client

        config = self.config
        for path in (
            Path(config.storage.lakehouse_root) / config.catalog,
            Path(config.storage.checkpoint_root) / config.env,
            Path(config.inference.streaming.landing_dir),
            Path(config.storage.reports_root) / config.env,
        ):
            shutil.rmtree(path, ignore_errors=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_path.write_text("")
        with self._task_output_to_log():
            client = mlflow_client(config)
            if client.search_registered_models(filter_string=f"name = '{config.registered_model_name}'"):
                client.delete_registered_model(config.registered_model_name)
        runway_env.migrate_airflow_db()
        with self._task_output_to_log():
            from jobs.config.base import PIPELINES

            forget_dag_runs([f"dev_{p}" for p in PIPELINES])

    def start_warm_services(self) -> None:
        """Jobs connect to one warm Spark instead of each starting a JVM, and are forked from one
        warm Python instead of each importing their libraries (a running server, or the variable
        set by the user, is used as it is)."""
        from background import start_warm_services

        variables, self.started_services = start_warm_services(self.data_dir, os.environ)
        os.environ.update(variables)

    def stop_warm_services(self) -> None:
        from background import stop_warm_services

        stop_warm_services(self.data_dir, self.started_services)

    def seed(self, start: date, end: date) -> dict[str, int]:
        from jobs.core.window import Window
        from jobs.features.seed import seed

        with self._task_output_to_log():
            return seed(self.config, Window(start, end))

    def refresh(self, start: date, end: date) -> None:
        run, states = self.run("feature_refresh", end, {"start_date": str(start), "end_date": str(end)})
        self.require("feature_refresh", run, states)

    def train(self, logical_day: date, conf: dict[str, Any], run_id: str | None = None) -> str:
        """A training run; returns what became of its model (promoted, kept, failed validation)."""
        run, states = self.run("training", logical_day, conf, run_id=run_id)
        self.training_ends.append(str(conf.get("training_end") or logical_day))
        if states.get("validation_failed") == "failed":
            return "failed validation: Champion kept"
        self.require("training", run, states)
        return "promoted to Champion" if states.get("promote") == "success" else "not better: Champion kept"

    def batch(self, start: date, end: date) -> None:
        run, states = self.run("batch_inference", end, {"start_date": str(start), "end_date": str(end)})
        self.require("batch_inference", run, states)

    def stream(self, day: date) -> dict[str, int]:
        from jobs.core.window import Window
        from jobs.features.seed import emit_events

        with self._task_output_to_log():
            landed = emit_events(self.config, Window(day, next_day(day)), files_per_day=24)
        run, states = self.run("streaming_inference", next_day(day), {})
        self.require("streaming_inference", run, states)
        return landed

    def monitor(self, start: date, end: date) -> dict[str, Any] | None:
        """Monitor a month; the queued drift retrain it started, if any (run id and conf)."""
        run, states = self.run("monitoring", end, {"start_date": str(start), "end_date": str(end)})
        self.require("monitoring", run, states)
        if states.get("retrain") != "success":
            return None
        queued = queued_run("dev_training", f"drift__{end}")
        if queued is None:
            raise DemoError(
                f"monitoring {start}..{end} triggered a retrain but no queued dev_training run exists"
            )
        return queued

    # -- the lifecycle ----------------------------------------------------------------------------
    def lifecycle(self) -> None:
        first, training_end = self.first_day, self.training_end
        months = month_starts(training_end, self.last_month)
        last_day = add_month(self.last_month)
        print("Stage 0 — set-up")
        with self.stage("reset the dev environment, migrate the Airflow DB"):
            self.reset()
        if self.warm_spark:
            with self.stage("start a warm Spark and a warm Python (Spark Connect and job servers)"):
                self.start_warm_services()

        print(f"Stage 1 — {first:%b %Y}–{training_end - timedelta(days=1):%b %Y} land; features refreshed")
        with self.stage(f"seed landing zone [{first}, {training_end})"):
            self.seed(first, training_end)
        with self.stage(f"dev_feature_refresh [{first}, {training_end})"):
            self.refresh(first, training_end)

        print("Stage 2 — the first model")
        conf = {"training_end": str(training_end), "reason": "manual", "hyperparameters": {}}
        with self.stage("dev_training (train → validate → compare → promote)"):
            print(f" {self.train(training_end, conf)};", end="")

        print(f"Stage 3 — the following months land ({training_end:%b}–{self.last_month:%b %Y})")
        with self.stage(f"seed landing zone [{training_end}, {last_day})"):
            self.seed(training_end, last_day)
        with self.stage(f"dev_feature_refresh [{training_end}, {last_day})"):
            self.refresh(training_end, last_day)

        print("Stage 4 — inference with the Champion")
        with self.stage(f"dev_batch_inference for {months[0]:%B}"):
            self.batch(months[0], add_month(months[0]))
        with self.stage(f"dev_streaming_inference over {self.stream_day} (24 event files)"):
            landed = self.stream(self.stream_day)
            print(f" {landed['events']} event{'' if landed['events'] == 1 else 's'};", end="")

        print("Stage 5 — monitoring month by month; drift triggers retraining")
        for month in months:
            end = add_month(month)
            if month != months[0]:
                with self.stage(f"dev_batch_inference for {month:%B}"):
                    self.batch(month, end)
            with self.stage(f"dev_monitoring for {month:%B}"):
                queued = self.monitor(month, end)
                print(" drift policy holds: retrain queued;" if queued else " no retrain;", end="")
            if queued:
                with self.stage(f"dev_training {queued['run_id']} (reason: drift)"):
                    print(f" {self.train(end, queued['conf'], run_id=queued['run_id'])};", end="")


def forget_dag_runs(dag_ids: list[str]) -> int:
    """Delete the DAG runs (and their task instances) of ``dag_ids``: the dev history the demo
    starts over from. Otherwise a previous demo's ``drift__<date>`` training runs would make this
    demo's retrain triggers skip (one drift retrain per window id)."""
    from airflow.models import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        runs = session.scalars(select(DagRun).where(DagRun.dag_id.in_(dag_ids))).all()
        for run in runs:
            session.delete(run)
    return len(runs)


def queued_run(dag_id: str, run_id: str) -> dict[str, Any] | None:
    from airflow.models import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        run = session.scalar(select(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id))
        return (
            None
            if run is None
            else {"run_id": run.run_id, "conf": dict(run.conf or {}), "state": str(run.state)}
        )


def next_day(day: date) -> date:
    return date.fromordinal(day.toordinal() + 1)


def add_month(day: date) -> date:
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)


def month_starts(first: date, last: date) -> list[date]:
    months = [first]
    while months[-1] < last:
        months.append(add_month(months[-1]))
    return months


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--last-month",
        default=None,
        help="last month to score and monitor (YYYY-MM; default: the use case's)",
    )
    parser.add_argument(
        "--cold",
        "--cold-spark",
        dest="cold",
        action="store_true",
        help="no warm services: every job starts its own interpreter, and every Spark task its own JVM",
    )
    args = parser.parse_args()
    last_month = date.fromisoformat(f"{args.last_month}-01") if args.last_month else None
    data_dir = runway_env.configure()

    from demo_summary import print_summary

    try:
        demo = Demo(data_dir, last_month)
    except DemoError as exc:
        parser.error(str(exc))
    print(
        f"Runway demo — use case {demo.config.use_case.name}, dev environment, local engine, data under "
        f"{data_dir}\n"
        f"(task logs: {demo.log_path})\n"
    )
    demo.warm_spark = not args.cold
    started = time.perf_counter()
    try:
        demo.lifecycle()
    except DemoError as exc:
        print(f"\n\nThe demo stopped: {exc}")
        return 1
    finally:
        demo.stop_warm_services()
    total = time.perf_counter() - started
    print_summary(demo.config, demo.timings, demo.runs, total, data_dir)
    timings = {
        "total_seconds": round(total, 1),
        "stages": {k: round(v, 1) for k, v in demo.timings.items()},
        "dag_runs": len(demo.runs),
        "training_ends": demo.training_ends,
        "last_month": f"{demo.last_month:%Y-%m}",
        "use_case": demo.config.use_case.name,
        "warm_spark": demo.warm_spark,
    }
    (data_dir / "logs" / "demo_timings.json").write_text(json.dumps(timings, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
