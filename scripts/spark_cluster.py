"""A Spark standalone cluster on this machine: a master and one worker on loopback, started from
the pyspark package's own launcher (``spark-class``), for trying the spark-submit mode without a
cluster of your own, for the tests (one per session) and for `make bench`.

    python scripts/spark_cluster.py start [--cores 2] [--memory 2g]   # prints the master URL and UI
    python scripts/spark_cluster.py stop
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
import urllib.request
from pathlib import Path

from background import free_port, kill_group, start_group

ROOT = Path(__file__).resolve().parents[1]
STATE = ROOT / "data" / "spark-cluster"


class SparkStandaloneCluster:
    """A real Spark standalone master and worker on loopback, started from the pyspark package's
    own launcher (``spark-class ...deploy.master.Master`` / ``...deploy.worker.Worker``), each in a
    process group of its own; ``url`` once the worker has registered; ``stop()`` ends both groups."""

    def __init__(self, root: Path, cores: int = 2, memory: str = "2g") -> None:
        self.root, self.cores, self.memory = root, cores, memory
        self.processes: list = []

    def start(self, timeout: float = 120) -> str:
        import pyspark

        home = Path(pyspark.__file__).parent
        port, ui_port = free_port(), free_port()
        env = {
            **os.environ,
            "SPARK_HOME": str(home),
            "PYSPARK_PYTHON": sys.executable,
            "SPARK_LOCAL_IP": "127.0.0.1",
            "SPARK_WORKER_DIR": str(self.root / "work"),
            "SPARK_LOG_DIR": str(self.root / "logs"),
        }
        self.url, self.ui = f"spark://127.0.0.1:{port}", f"http://127.0.0.1:{ui_port}"
        launcher = str(home / "bin" / "spark-class")
        commands = {
            "master": [
                launcher,
                "org.apache.spark.deploy.master.Master",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--webui-port",
                str(ui_port),
            ],
            "worker": [
                launcher,
                "org.apache.spark.deploy.worker.Worker",
                "--host",
                "127.0.0.1",
                "--cores",
                str(self.cores),
                "--memory",
                self.memory,
                "--webui-port",
                str(free_port()),
                self.url,
            ],
        }
        self.root.mkdir(parents=True, exist_ok=True)
        for name, command in commands.items():
            with (self.root / f"{name}.log").open("w") as log:
                self.processes.append(start_group(command, env, log))
        try:
            if self._wait_until_registered(timeout):
                return self.url
        except BaseException:  # an interrupted or failed start leaves no JVM behind
            self.stop()
            raise
        self.stop()
        logs = "\n".join((self.root / f"{n}.log").read_text()[-1500:] for n in commands)
        raise RuntimeError(f"the standalone cluster did not start:\n{logs}")

    def _wait_until_registered(self, timeout: float) -> bool:
        """True once the master lists a live worker; False if either process ended or time ran out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            # The UI's port as bound: Spark moves to the next port when the one asked for was taken
            # meanwhile, and then another server (a worker's, an application's UI) answers there.
            bound = re.search(r"service 'MasterUI' on port (\d+)", (self.root / "master.log").read_text())
            self.ui = f"http://127.0.0.1:{bound.group(1)}" if bound else self.ui
            try:
                with urllib.request.urlopen(f"{self.ui}/json/", timeout=2) as answer:
                    if bound and json.load(answer).get("aliveworkers", 0) >= 1:
                        return True
            except (OSError, ValueError):  # not up yet
                pass
            if any(p.poll() is not None for p in self.processes):
                return False
            time.sleep(0.5)
        return False

    def applications(self) -> list[dict]:
        """The master's view of the applications it ran and runs (its JSON API)."""
        with urllib.request.urlopen(f"{self.ui}/json/", timeout=5) as answer:
            state = json.load(answer)
        return state.get("completedapps", []) + state.get("activeapps", [])

    def stop(self) -> None:
        for process in self.processes:
            kill_group(process.pid)
        self.processes.clear()


def main() -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["start", "stop"])
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--memory", default="2g")
    args = parser.parse_args()
    state = STATE / "cluster.json"
    if args.action == "start":
        cluster = SparkStandaloneCluster(STATE, args.cores, args.memory)
        cluster.start()
        state.write_text(
            json.dumps({"url": cluster.url, "ui": cluster.ui, "pids": [p.pid for p in cluster.processes]})
        )
        print(json.dumps({"url": cluster.url, "ui": cluster.ui}))
    elif state.exists():
        for pid in json.loads(state.read_text())["pids"]:
            kill_group(pid)
        state.unlink()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
