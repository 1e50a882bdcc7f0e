"""The table-upkeep DAG of one environment: compact and vacuum every Delta table of its catalog."""

from __future__ import annotations

from airflow.sdk import DAG

from dag_factories.common import dag_kwargs
from dag_factories.compute import job_task
from jobs.config.loader import load_config

DOC = """
### Table upkeep — `{env}`

Compacts (OPTIMIZE) every Delta table of the **{catalog}** catalog — the many small files of
streaming micro-batches and daily windows become a few large ones, no row changes — and vacuums
the files that no version of the last **{retention:g} hours** reads. Safe beside the other
pipelines: a compaction that loses a commit race to a writer is retried, and readers or time
travel within the retention never miss a file. Schedule: `{schedule}`.
"""


def build_maintenance_dag(env: str) -> DAG:
    config = load_config(env)
    kwargs = dag_kwargs(config, "maintenance", config.schedules.maintenance, "", ["upkeep"])
    kwargs["doc_md"] = DOC.format(
        env=env,
        catalog=config.catalog,
        retention=config.maintenance.retention_hours,
        schedule=config.schedules.maintenance or "manual only",
    )
    with DAG(**kwargs, max_active_runs=1) as dag:
        job_task(
            config,
            task_id="compact_and_vacuum",
            job="maintenance",
            arguments=[],
            doc_md="OPTIMIZE and VACUUM every table of the catalog (jobs.maintenance).",
        )
    return dag
