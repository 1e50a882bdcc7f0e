"""Airflow DAGs monitoring the assistant (answered questions, feedback, query drift → re-index or
re-evaluate), one per deployed environment."""

from dag_factories.assistant_monitoring import build_assistant_monitoring_dag
from dag_factories.common import deployed_envs

for _env in deployed_envs():
    globals()[f"{_env}_assistant_monitoring"] = build_assistant_monitoring_dag(_env)
