"""Airflow DAGs for safe rollout (load test, canary ladder, promotion or rollback), one an environment."""

from dag_factories.common import deployed_envs
from dag_factories.deployment import build_deployment_dag

for _env in deployed_envs():
    globals()[f"{_env}_deployment"] = build_deployment_dag(_env)
