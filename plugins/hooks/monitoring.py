"""Reads the monitoring tables and applies the environment's retraining policy."""

from __future__ import annotations

from datetime import date
from typing import Any

from airflow.sdk import BaseHook


class MonitoringHook(BaseHook):
    """The monitoring metrics and alerts of one Runway environment (Delta tables read without a
    SparkSession on the local engine), and the retraining decision for a window."""

    hook_name = "Runway monitoring"

    def __init__(self, runway_env: str) -> None:
        super().__init__()
        self.runway_env = runway_env
        self._store = None

    @property
    def config(self):
        from jobs.config.loader import load_config

        return load_config(self.runway_env)

    @property
    def store(self):
        if self._store is None:
            from jobs.tablestore import open_table_store

            self._store = open_table_store(self.config)
        return self._store

    def decide(self, window_end: str | date) -> dict[str, Any]:
        """The policy's decision for the window ending ``window_end`` (jobs.modeling.retraining)."""
        from jobs.modeling.retraining import retraining_decision

        end = date.fromisoformat(str(window_end)[:10])
        decision = retraining_decision(self.config, self.store, end)
        self.log.info("retraining policy for the window ending %s: %s", end, decision["reason"])
        return decision
