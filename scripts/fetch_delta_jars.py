"""delta-spark's JVM jars for the installed PySpark, fetched with the ordinary Maven client (what
`make install` runs where ``mvn`` is present): the ``spark`` table engine's local sessions load them.

    .venv/bin/python scripts/fetch_delta_jars.py          # -> .jars/delta/manifest.json (quiet when current)

The artifact is the one ``delta.configure_spark_with_delta_pip`` names
(``io.delta:delta-spark_<spark major.minor>_2.13:<delta-spark's pip version>``), resolved with its
runtime dependencies by ``mvn dependency:copy-dependencies`` from a small generated pom; jars of
libraries PySpark already ships (Scala, Hadoop, Jackson, Parquet, logging...) are left out, so
Spark's own versions win. The manifest names the jars; without ``mvn`` (or when Maven cannot
resolve the artifact) it records why, and the spark engine's tests skip with that reason.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
JARS_DIR = ROOT / ".jars" / "delta"
MANIFEST = JARS_DIR / "manifest.json"
POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>runway</groupId><artifactId>delta-jars</artifactId><version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>io.delta</groupId><artifactId>{artifact}</artifactId><version>{version}</version></dependency>
  </dependencies>
</project>
"""
_VERSIONED_JAR = re.compile(r"^(?P<name>.+?)-\d[\w.\-]*\.jar$")


def wanted() -> tuple[str, str]:
    """(artifact, version) of delta-spark for the installed PySpark and delta-spark packages."""
    import pyspark

    spark_minor = ".".join(pyspark.__version__.split(".")[:2])
    return f"delta-spark_{spark_minor}_2.13", metadata.version("delta-spark")


def _artifact_name(jar: str) -> str:
    match = _VERSIONED_JAR.match(jar)
    return match.group("name") if match else jar


def spark_shipped() -> set[str]:
    """Artifact names of the jars the pyspark package ships."""
    import pyspark

    return {_artifact_name(j.name) for j in (Path(pyspark.__file__).parent / "jars").glob("*.jar")}


def fetch() -> dict | None:
    """Fetch the jars unless the manifest already names them all; the new manifest, or None when
    nothing needed doing (a manifest that recorded why it has none is tried again)."""
    artifact, version = wanted()
    manifest = {"artifact": f"io.delta:{artifact}:{version}", "jars": [], "skipped": None}
    current = json.loads(MANIFEST.read_text()) if MANIFEST.is_file() else {}
    if (
        current.get("artifact") == manifest["artifact"]
        and current.get("jars")
        and all(Path(j).is_file() for j in current["jars"])
    ):
        return None
    mvn = shutil.which("mvn")
    if mvn is None:
        return _write(
            {**manifest, "skipped": "mvn (Maven 3) is not installed: delta-spark's jars were not fetched"}
        )
    shutil.rmtree(JARS_DIR, ignore_errors=True)
    (JARS_DIR / "all").mkdir(parents=True)
    (JARS_DIR / "pom.xml").write_text(POM.format(artifact=artifact, version=version))
    done = subprocess.run(
        [
            mvn,
            "-q",
            "-B",
            "-f",
            str(JARS_DIR / "pom.xml"),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={JARS_DIR / 'all'}",
            "-DincludeScope=runtime",
        ],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if done.returncode != 0:
        reason = next((line for line in done.stdout.splitlines() if "[ERROR]" in line), done.stdout[-300:])
        return _write(
            {**manifest, "skipped": f"mvn could not resolve {manifest['artifact']}: {reason.strip()}"}
        )
    shipped = spark_shipped()
    jars = sorted(p for p in (JARS_DIR / "all").glob("*.jar") if _artifact_name(p.name) not in shipped)
    return _write({**manifest, "jars": [str(p) for p in jars]})


def _write(manifest: dict) -> dict:
    JARS_DIR.mkdir(parents=True, exist_ok=True)
    MANIFEST.write_text(json.dumps(manifest, indent=2))
    return manifest


def main() -> int:
    manifest = fetch()
    if manifest is None:  # up to date: `make` runs this every time, quietly
        return 0
    if manifest["skipped"]:
        print(
            f"delta-spark jars: {manifest['skipped']} (the spark engine's tests will skip)", file=sys.stderr
        )
    else:
        print(f"delta-spark jars: {manifest['artifact']} ({len(manifest['jars'])} jars) in {JARS_DIR}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
