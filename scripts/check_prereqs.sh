#!/usr/bin/env bash
# One clear sentence when a prerequisite is missing; silent when all is well.
set -u
PY="${1:-python3}"
if ! command -v "$PY" >/dev/null 2>&1; then
  echo "Runway needs Python 3.11 or newer, and '$PY' was not found: install Python 3.11+ or run 'make PYTHON=/path/to/python3.11'." >&2
  exit 1
fi
if ! "$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
  echo "Runway needs Python 3.11 or newer, but '$PY' is $("$PY" -c 'import platform; print(platform.python_version())'): run 'make PYTHON=/path/to/python3.11'." >&2
  exit 1
fi
if ! command -v java >/dev/null 2>&1; then
  echo "Runway needs Java 17 for Spark, and no 'java' is on the PATH: install a JDK 17 (e.g. 'apt-get install openjdk-17-jdk-headless') or set JAVA_HOME." >&2
  exit 1
fi
JAVA_MAJOR=$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n1)
if [ -z "$JAVA_MAJOR" ] || [ "$JAVA_MAJOR" -lt 17 ]; then
  echo "Runway needs Java 17 or newer for Spark 4, but 'java' is version ${JAVA_MAJOR:-unknown}: install a JDK 17 and put it first on the PATH." >&2
  exit 1
fi
