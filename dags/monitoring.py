"""Airflow DAGs for monitoring and drift-triggered retraining, one per deployed environment."""

from dag_factories.common import deployed_envs
from dag_factories.monitoring import build_monitoring_dag

for _env in deployed_envs():
    globals()[f"{_env}_monitoring"] = build_monitoring_dag(_env)
