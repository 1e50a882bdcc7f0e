"""The fast tier: pure functions and policies. No Spark, no servers, no session fixtures: a test
here that asks for one is a usage error (it belongs beside the module it exercises)."""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).parent
HEAVY_FIXTURES = {
    "spark",
    "store",
    "dev_config",
    "airflow_db",
    "spark_cluster",
    "project_wheel",
    "warm_spark",
    "warm_python",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        heavy = HEAVY_FIXTURES & set(getattr(item, "fixturenames", ()))
        if heavy and item.path.is_relative_to(HERE):
            raise pytest.UsageError(f"{item.nodeid} is a unit test but uses {sorted(heavy)}")
