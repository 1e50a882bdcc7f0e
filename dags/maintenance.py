"""Airflow DAGs for table upkeep (compaction and vacuum), one per deployed environment."""

from dag_factories.common import deployed_envs
from dag_factories.maintenance import build_maintenance_dag

for _env in deployed_envs():
    globals()[f"{_env}_maintenance"] = build_maintenance_dag(_env)
