"""Airflow DAGs of the assistant's lifecycle (build the chain, evaluation gate, promotion), one per
deployed environment."""

from dag_factories.assistant import build_assistant_dag
from dag_factories.common import deployed_envs

for _env in deployed_envs():
    globals()[f"{_env}_assistant"] = build_assistant_dag(_env)
