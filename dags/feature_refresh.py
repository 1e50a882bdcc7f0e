"""Airflow DAGs for feature refresh, one per deployed environment (built by plugins/dag_factories)."""

from dag_factories.common import deployed_envs
from dag_factories.feature_refresh import build_feature_refresh_dag

for _env in deployed_envs():
    globals()[f"{_env}_feature_refresh"] = build_feature_refresh_dag(_env)
