"""The demo's DAG runs show their real durations in the UI (dag.test() dates a run's start at its
logical date: the demo's 2013 runs showed about 4,900 days)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_a_demo_run_records_when_it_really_began(airflow_db):
    from airflow.models import DagBag
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from demo import record_real_start  # scripts/demo.py
    from sqlalchemy import select

    dag = DagBag(dag_folder=str(ROOT / "dags" / "maintenance.py")).dags["dev_maintenance"]
    began = datetime.now(UTC)
    run = dag.test(logical_date=datetime(2013, 3, 1, tzinfo=UTC))
    assert run.start_date.year == 2013  # what dag.test records
    record_real_start(run, began)
    with create_session() as session:
        stored = session.scalar(
            select(DagRun.start_date).where(DagRun.dag_id == run.dag_id, DagRun.run_id == run.run_id)
        )
    assert timedelta(0) <= run.end_date - stored < timedelta(hours=1)
