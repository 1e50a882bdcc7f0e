"""Environment for running Runway's DAGs headless on the embedded default (demo, bench).

Sets the variables before Airflow is imported: an Airflow home with a SQLite metadata DB under the
data folder, this project's DAG and plugin folders, no example DAGs, a parallelism fit for 2 cores.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def configure(data_dir: Path | None = None, *, override: bool = False) -> Path:
    """Set the variables (keeping ones the caller already set, unless ``override``: tests must not
    inherit a developer's AIRFLOW_HOME); returns the data folder."""
    data_dir = Path(data_dir or os.environ.get("RUNWAY_DATA_DIR", ROOT / "data")).resolve()
    for key, value in variables(data_dir).items():
        if override:
            os.environ[key] = value
        else:
            os.environ.setdefault(key, value)
    if str(ROOT / "plugins") not in sys.path:
        sys.path.insert(0, str(ROOT / "plugins"))
    return data_dir


def variables(data_dir: Path) -> dict[str, str]:
    """Runway's variables for a data folder."""
    return {
        "RUNWAY_DATA_DIR": str(data_dir),
        "RUNWAY_ENV": "dev",
        "AIRFLOW_HOME": str(data_dir / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "PYSPARK_PYTHON": sys.executable,
        "SPARK_LOCAL_IP": "127.0.0.1",
    }


def migrate_airflow_db() -> None:
    """Create or upgrade the SQLite metadata DB (idempotent, about 4 s)."""
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True)


def load_dag(dag_id: str, file_name: str):
    from airflow.models import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags" / file_name))
    if dag_id not in bag.dags:
        raise SystemExit(f"DAG {dag_id} not found in dags/{file_name}: {bag.import_errors}")
    return bag.dags[dag_id]
