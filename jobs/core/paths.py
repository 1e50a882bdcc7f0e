"""Where the project's files live. Overridable by environment variables for clusters and tests.

On the DAG parse path (the DAG factories import it): pyspark, mlflow, pyarrow and the engines are
imported in the functions that use them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def include_dir() -> Path:
    """SQL, configs and expectation suites: ``$RUNWAY_INCLUDE_DIR``, else ``<project>/include`` in a
    checkout, else the copy an installed wheel carries (``<prefix>/share/runway/include``)."""
    if "RUNWAY_INCLUDE_DIR" in os.environ:
        return Path(os.environ["RUNWAY_INCLUDE_DIR"])
    checkout = PROJECT_ROOT / "include"
    return checkout if checkout.is_dir() else Path(sys.prefix) / "share" / "runway" / "include"


def delta_jars() -> tuple[list[str], str | None]:
    """delta-spark's JVM jars for a local session of the ``spark`` engine, and why there are none:
    ``$RUNWAY_DELTA_JARS`` (comma-separated), else what `make install` fetched with Maven
    (``<project>/.jars/delta/manifest.json``, scripts/fetch_delta_jars.py)."""
    if os.environ.get("RUNWAY_DELTA_JARS"):
        jars = os.environ["RUNWAY_DELTA_JARS"].split(",")
    else:
        manifest = PROJECT_ROOT / ".jars" / "delta" / "manifest.json"
        if not manifest.is_file():
            return [], f"{manifest} is missing: run `make install` (it fetches them with mvn)"
        import json

        recorded = json.loads(manifest.read_text())
        if recorded.get("skipped"):
            return [], recorded["skipped"]
        jars = recorded["jars"]
    missing = [jar for jar in jars if not Path(jar).is_file()]
    if missing:
        return [], f"delta-spark jar {missing[0]} is missing: run `make install` again"
    return jars, None


def git_commit() -> str:
    """The code version being deployed: ``$RUNWAY_GIT_COMMIT`` (set by CI), the checkout's HEAD,
    else the commit the installed wheel was built from (``<prefix>/share/runway/build_info.json``,
    stamped by setup.py: a Docker image, a Databricks cluster), else ``unknown``."""

    if os.environ.get("RUNWAY_GIT_COMMIT"):
        return os.environ["RUNWAY_GIT_COMMIT"]
    if (PROJECT_ROOT / ".git").exists():
        try:
            done = subprocess.run(
                ["git", "-C", str(PROJECT_ROOT), "rev-parse", "HEAD"],
                capture_output=True,
                text=True,
                timeout=10,
            )
            if done.stdout.strip():
                return done.stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    stamped = Path(sys.prefix) / "share" / "runway" / "build_info.json"
    return json.loads(stamped.read_text()).get("git_commit", "unknown") if stamped.is_file() else "unknown"


def use_cases_dir() -> Path:
    """Where use case folders live: ``<include>/use_cases/<name>/``."""
    return include_dir() / "use_cases"


def config_dir() -> Path:
    return Path(os.environ.get("RUNWAY_CONFIG_DIR", include_dir() / "configs"))


def data_dir() -> Path:
    """Default root of local state (landing zone, lakehouse, MLflow store): ``$RUNWAY_DATA_DIR``."""
    return Path(os.environ.get("RUNWAY_DATA_DIR", PROJECT_ROOT / "data"))


def landing_file(landing_root: Path, source: str, day: date | None = None) -> Path:
    """Where a source's file for ``day`` lands: ``<source>/<YYYY-MM-DD>.csv``; a reference source
    has one snapshot file, ``<source>/<source>.csv``."""
    name = f"{day.isoformat()}.csv" if day is not None else f"{source}.csv"
    return Path(landing_root) / source / name
