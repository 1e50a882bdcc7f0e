"""Airflow DAGs for batch and streaming inference, one of each per deployed environment."""

from dag_factories.common import deployed_envs
from dag_factories.inference import build_batch_inference_dag, build_streaming_inference_dag

for _env in deployed_envs():
    globals()[f"{_env}_batch_inference"] = build_batch_inference_dag(_env)
    globals()[f"{_env}_streaming_inference"] = build_streaming_inference_dag(_env)
