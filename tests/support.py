"""Helpers shared by tests."""

from __future__ import annotations

import hashlib
from pathlib import Path


def content_checksum(df) -> tuple[int, str]:
    """(row count, order-independent digest of every row's content) of a Spark DataFrame."""
    from pyspark.sql import functions as F

    digests = sorted(r[0] for r in df.select(F.sha2(F.to_json(F.struct(*df.columns)), 256)).collect())
    return len(digests), hashlib.sha256("".join(digests).encode()).hexdigest()


def make_config(root: Path, env: str = "dev"):
    """``env``'s config with its lakehouse, landing zones, reports and checkpoints under ``root``."""
    from jobs.common.config import Storage, load_config

    storage = Storage(
        lakehouse_root=root / "lakehouse", landing_root=root / "landing", reports_root=root / "reports",
        checkpoint_root=root / "checkpoints",
    )  # fmt: skip
    config = load_config(env)
    landing_dir = (
        root / "stream" / Path(config.inference.streaming.landing_dir).name
    )  # as ${RUNWAY_DATA_DIR}/stream/...
    streaming = config.inference.streaming.model_copy(update={"landing_dir": landing_dir})
    inference = config.inference.model_copy(update={"streaming": streaming})
    return config.model_copy(update={"storage": storage, "inference": inference})


def spark_engine_store(config, spark, namespace: str = "path"):
    """A store of the native ``spark`` engine on the test session (which loads delta-spark's jars
    where `make install` fetched them), its tables by location under the config's lakehouse (the
    spark-submit default) or in the session catalog (``namespace="session"``); a generator for
    fixtures: the databases it created are dropped after the test. Skips, saying why, without the jars."""
    import pytest

    from jobs.common.paths import delta_jars
    from jobs.tablestore import open_table_store
    from jobs.tablestore.spark import delta_jars_available

    if not delta_jars_available(spark):
        pytest.skip(f"delta-spark's JVM jars are not on this machine: {delta_jars()[1]}")
    settings = config.table_store.model_copy(update={"engine": "spark", "namespace": namespace})
    before = {d.name for d in spark.catalog.listDatabases()}
    yield open_table_store(config.model_copy(update={"table_store": settings}), spark)
    for database in {d.name for d in spark.catalog.listDatabases()} - before:
        spark.sql(f"DROP DATABASE IF EXISTS {database} CASCADE")


class SparkStandaloneCluster:
    """A real Spark standalone master and worker on loopback, started from the pyspark package's
    own launcher (``spark-class ...deploy.master.Master`` / ``...deploy.worker.Worker``), each in a
    process group of its own; ``url`` once the worker has registered; ``stop()`` ends both groups."""

    def __init__(self, root: Path, cores: int = 2, memory: str = "2g") -> None:
        self.root, self.cores, self.memory = root, cores, memory
        self.processes: list = []

    def start(self, timeout: float = 120) -> str:
        import json
        import os
        import subprocess
        import sys
        import time
        import urllib.request

        import pyspark
        from background import free_port  # scripts/background.py

        home = Path(pyspark.__file__).parent
        port, ui_port = free_port(), free_port()
        env = {**os.environ, "SPARK_HOME": str(home), "PYSPARK_PYTHON": sys.executable, "SPARK_LOCAL_IP": "127.0.0.1",
               "SPARK_WORKER_DIR": str(self.root / "work"), "SPARK_LOG_DIR": str(self.root / "logs")}  # fmt: skip
        self.url, self.ui = f"spark://127.0.0.1:{port}", f"http://127.0.0.1:{ui_port}"
        launcher = str(home / "bin" / "spark-class")
        commands = {
            "master": [launcher, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(port),
                       "--webui-port", str(ui_port)],
            "worker": [launcher, "org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1", "--cores",
                       str(self.cores), "--memory", self.memory, "--webui-port", str(free_port()), self.url],
        }  # fmt: skip
        self.root.mkdir(parents=True, exist_ok=True)
        for name, command in commands.items():
            with (self.root / f"{name}.log").open("w") as log:
                self.processes.append(subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT,
                                                       stdin=subprocess.DEVNULL, start_new_session=True))  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{ui_port}/json/", timeout=2) as answer:
                    if json.load(answer).get("aliveworkers", 0) >= 1:
                        return self.url
            except OSError:
                pass
            if any(p.poll() is not None for p in self.processes):
                break
            time.sleep(0.5)
        self.stop()
        logs = "\n".join((self.root / f"{n}.log").read_text()[-1500:] for n in commands)
        raise RuntimeError(f"the standalone cluster did not start:\n{logs}")

    def applications(self) -> list[dict]:
        """The master's view of the applications it ran and runs (its JSON API)."""
        import json
        import urllib.request

        with urllib.request.urlopen(f"{self.ui}/json/", timeout=5) as answer:
            state = json.load(answer)
        return state.get("completedapps", []) + state.get("activeapps", [])

    def stop(self) -> None:
        from background import kill_group

        for process in self.processes:
            kill_group(process.pid)
        self.processes.clear()
