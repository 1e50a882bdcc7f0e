"""Airflow DAGs refreshing the assistant's knowledge base (chunks, embeddings, vector index), one per
deployed environment."""

from dag_factories.common import deployed_envs
from dag_factories.knowledge_refresh import build_knowledge_refresh_dag

for _env in deployed_envs():
    globals()[f"{_env}_knowledge_refresh"] = build_knowledge_refresh_dag(_env)
