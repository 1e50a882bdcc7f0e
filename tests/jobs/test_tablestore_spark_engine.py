"""The native ``spark`` table engine, where delta-spark's JVM jars are present.

These machines cannot download them (Maven Central is unreachable), so here the scenario skips and
says why. Point ``RUNWAY_DELTA_JARS`` at the jars (comma-separated) to run it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

JARS = os.environ.get("RUNWAY_DELTA_JARS", "")


@pytest.mark.skipif(
    not JARS or not all(Path(j).is_file() for j in JARS.split(",")),
    reason="delta-spark's JVM jars are not on this machine (Maven Central is unreachable here); "
    "set RUNWAY_DELTA_JARS=/path/delta-spark_2.13-<v>.jar,/path/delta-storage-<v>.jar to run the spark engine",
)
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
