"""Reads the inference table and judges a canary step (jobs.release.rollout.judge)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.sdk import BaseHook


class RolloutHook(BaseHook):
    """One Runway environment's canary judgement from its inference table (Delta read without a
    SparkSession on the local engine)."""

    hook_name = "Runway rollout"

    def __init__(self, runway_env: str) -> None:
        super().__init__()
        self.runway_env = runway_env

    def judge(self, since: str, candidate: str | None = None, phase: str = "canary") -> dict[str, Any]:
        from jobs.config.loader import load_config
        from jobs.release.rollout import judge
        from jobs.tablestore import open_table_store

        config = load_config(self.runway_env)
        return judge(config, open_table_store(config), datetime.fromisoformat(since), candidate, phase)
