"""Airflow DAGs for model training and rollback, one of each per deployed environment."""

from dag_factories.common import deployed_envs
from dag_factories.training import build_rollback_dag, build_training_dag

for _env in deployed_envs():
    globals()[f"{_env}_training"] = build_training_dag(_env)
    globals()[f"{_env}_rollback"] = build_rollback_dag(_env)
