"""A stand-in for the ``spark-submit`` binary — a TEST DOUBLE, not Spark's launcher.

Tests put it first on PATH as ``spark-submit``. It records its command line (one JSON line per call
in ``$SPARK_SUBMIT_STANDIN_LOG``) and then becomes the driver, as client deploy mode does: the
application runs in this process (``exec``) with the ``--py-files`` on its Python path and the
``--conf`` settings handed to PySpark, on ``local[2]`` whatever ``--master`` says. So a job submitted
through the provider really runs, on this machine, and killing the submission kills the driver.
"""

from __future__ import annotations

import json
import os
import sys

WITH_VALUE = {
    "--master", "--deploy-mode", "--conf", "--py-files", "--files", "--archives", "--jars", "--packages",
    "--exclude-packages", "--repositories", "--name", "--driver-memory", "--executor-memory",
    "--driver-class-path", "--num-executors", "--executor-cores", "--total-executor-cores", "--queue",
    "--keytab", "--principal", "--proxy-user", "--properties-file", "--class",
}  # fmt: skip


def parse(argv: list[str]) -> tuple[dict[str, list[str]], str, list[str]]:
    options: dict[str, list[str]] = {}
    i = 0
    while i < len(argv) and argv[i].startswith("--"):
        flag = argv[i]
        if flag in WITH_VALUE:
            options.setdefault(flag, []).append(argv[i + 1])
            i += 2
        else:
            options.setdefault(flag, []).append("")
            i += 1
    return options, argv[i], argv[i + 1 :]


def main() -> None:
    argv = sys.argv[1:]
    options, application, arguments = parse(argv)
    with open(os.environ["SPARK_SUBMIT_STANDIN_LOG"], "a") as log:
        log.write(json.dumps({"argv": argv, "options": options, "application": application,
                              "arguments": arguments, "pid": os.getpid()}) + "\n")  # fmt: skip
    py_files = [p for value in options.get("--py-files", []) for p in value.split(",")]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([*py_files, env.get("PYTHONPATH", "")])
    confs = " ".join(f"--conf {c}" for c in options.get("--conf", []))
    env["PYSPARK_SUBMIT_ARGS"] = f"--master local[2] {confs} pyspark-shell"
    os.execve(sys.executable, [sys.executable, application, *arguments], env)


if __name__ == "__main__":
    main()
