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
        from jobs.common.config import load_config

        return load_config(self.runway_env)

    @property
    def store(self):
        if self._store is None:
            from jobs.tablestore import open_table_store

            self._store = open_table_store(self.config)
        return self._store

    def _rows(self, table: str, columns: list[str], before: date):
        name = self.store.name("monitoring", table)
        if not self.store.exists(name):
            return []
        frame = self.store.read_pandas(name, window=("window_end", date(1900, 1, 1), before), columns=columns)
        return frame.to_dict("records")

    def decide(self, window_end: str | date) -> dict[str, Any]:
        """The policy's decision for the window ending ``window_end`` (see jobs.common.retraining)."""
        from datetime import timedelta

        from jobs.common.retraining import decide, window_statuses

        end = date.fromisoformat(str(window_end)[:10])
        policy = self.config.monitoring.policy
        rows = self._rows("metrics", ["window_start", "window_end", "metric", "column", "value", "violated"],
                          end + timedelta(days=1))  # fmt: skip
        alerts = [
            a for a in self._rows("alerts", ["window_end", "kind"], end) if a["kind"] == "drift_retrain"
        ]
        last = max((date.fromisoformat(str(a["window_end"])[:10]) for a in alerts), default=None)
        decision = decide(window_statuses(rows, policy), end, policy, last)
        self.log.info("retraining policy for the window ending %s: %s", end, decision.reason)
        return decision.as_dict()
