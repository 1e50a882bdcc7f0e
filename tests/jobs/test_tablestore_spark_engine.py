"""The native ``spark`` engine with delta-spark's jars (fetched by `make install` with Maven; a
machine without ``mvn`` skips, saying so): the verbs, in an interpreter of their own because the
session must start with the jars."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from jobs.core.paths import delta_jars

JARS, WHY_NONE = delta_jars()


@pytest.mark.skipif(not JARS, reason=f"delta-spark's JVM jars are not on this machine: {WHY_NONE}")
def test_spark_engine_verbs(tmp_path):
    scenario = Path(__file__).with_name("spark_engine_scenario.py")
    done = subprocess.run(
        [sys.executable, str(scenario), str(tmp_path / "warehouse")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "all verbs passed" in done.stdout
