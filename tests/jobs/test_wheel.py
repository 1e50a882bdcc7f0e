"""`make wheel` builds what a cluster installs: the jobs, the `runway_job` entry point and the
use case's configs, SQL and suites, found by the installed code without a checkout."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_wheel_installs_the_entry_point_and_the_include_files(project_wheel, tmp_path):
    wheel = project_wheel
    names = zipfile.ZipFile(wheel).namelist()
    assert "jobs/__main__.py" in names and "jobs/train.py" in names
    assert not any(n.startswith(("tests/", "plugins/", "dags/")) for n in names)  # Airflow code stays out

    venv = tmp_path / "cluster-env"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    probe = "from jobs.core.paths import include_dir; print(include_dir())"
    where = subprocess.run(
        [str(python), "-c", probe], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    include = Path(where.stdout.strip())
    assert include == venv / "share" / "runway" / "include"
    shipped = [p.relative_to(ROOT / "include") for p in (ROOT / "include").rglob("*") if p.is_file()]
    assert {
        "configs/base.yaml",
        "configs/prod.yaml",
        "use_cases/flight_delay/sql/gold_flight_features.sql",
        "use_cases/seattle_weather/expectations/silver_weather.json",
    } <= {str(p) for p in shipped}
    for relative in shipped:  # every use case folder travels whole
        assert (include / relative).read_text() == (ROOT / "include" / relative).read_text()
    lineage = "from jobs.core.paths import git_commit; print(git_commit())"  # no checkout there: the stamp
    stamped = subprocess.run(
        [str(python), "-c", lineage], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    head = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    )
    assert stamped.stdout.strip() == head.stdout.strip() != ""
    usage = subprocess.run(
        [str(venv / "bin" / "runway_job"), "--help"], capture_output=True, text=True, cwd=tmp_path
    )
    assert usage.returncode == 0 and "feature_refresh" in usage.stdout
