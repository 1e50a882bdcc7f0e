"""A warm Spark for the embedded stack: one local Spark Connect server the jobs connect to, instead
of each job starting its own JVM (`make up`, `make demo` and the test session start it).

    .venv/bin/python scripts/spark_server.py start     # prints RUNWAY_SPARK_REMOTE=sc://127.0.0.1:<port>
    .venv/bin/python scripts/spark_server.py status
    .venv/bin/python scripts/spark_server.py stop      # stops exactly what start started

Jobs use it when ``compute.spark_remote`` (``$RUNWAY_SPARK_REMOTE``) names it: the same client API
Databricks Connect uses. The server runs as its own process group, recorded with its port in
``<data>/run/spark_connect.json``; its log is ``<data>/logs/spark_connect.log``. Starting an already
running server only prints its URL.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from background import Background, free_port, port_answers, service_cli  # noqa: E402

SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"
START_TIMEOUT = 90


def _free_port(preferred: int = 15002) -> int:
    return preferred if not port_answers(preferred) else free_port()


def service(data_dir: Path) -> Background:
    return Background("spark_connect", data_dir, lambda state: port_answers(state["port"]))


def status(data_dir: Path) -> dict | None:
    """The running server's record, or None."""
    return service(data_dir).status()


def server_command(port: int) -> list[str]:
    """spark-submit of the Connect server with the dev environment's static settings (master,
    driver memory, JVM options); session settings are set by each job's session."""
    import pyspark

    from jobs.config.loader import load_config

    compute = load_config("dev").compute
    spark_submit = Path(pyspark.__file__).parent / "bin" / "spark-submit"
    conf = {
        **compute.spark_conf,
        "spark.connect.grpc.binding.port": str(port),
        "spark.connect.grpc.binding.address": "127.0.0.1",
        "spark.ui.enabled": "false",
        "spark.sql.session.timeZone": "UTC",
        # Jobs release their sessions at exit; a killed job's session is dropped after this idle time.
        "spark.connect.session.manager.defaultSessionTimeout": "10m",
    }
    command = [str(spark_submit), "--master", compute.spark_master, "--driver-memory", compute.driver_memory]
    for key, value in conf.items():
        command += ["--conf", f"{key}={value}"]
    return [*command, "--class", SERVER_CLASS, "spark-internal"]


def start(data_dir: Path, port: int | None = None) -> dict:
    """Start the server unless one runs; returns its record (pid, port, url, log)."""
    running = status(data_dir)
    if running:
        return running
    import pyspark

    env = {
        **os.environ,
        "SPARK_HOME": str(Path(pyspark.__file__).parent),
        "PYSPARK_PYTHON": sys.executable,
        "SPARK_LOCAL_IP": "127.0.0.1",
    }
    for attempt in range(1 if port else 3):  # a chosen port taken meanwhile by another starter: choose again
        chosen = port or (_free_port() if attempt == 0 else free_port())
        record = {"port": chosen, "url": f"sc://127.0.0.1:{chosen}"}
        try:
            return service(data_dir).start(server_command(chosen), env, record, START_TIMEOUT)
        except SystemExit:
            if port or attempt == 2 or not port_answers(chosen):  # not a port lost to another starter
                raise
    raise AssertionError("unreachable: the last attempt returns or raises")


def stop(data_dir: Path) -> bool:
    """Stop the recorded server (its whole process group); False when none ran."""
    return service(data_dir).stop()


def main() -> int:
    def port_option(parser) -> None:
        parser.add_argument("--port", type=int, default=None, help="default: 15002, or a free port")

    return service_cli(
        __doc__.splitlines()[0], "RUNWAY_SPARK_REMOTE", "url", start, stop, status, port_option
    )


if __name__ == "__main__":
    raise SystemExit(main())
