"""The wheel's data files: everything under include/ (platform configs, every use case folder with
its SQL, suites and sample data), installed as <prefix>/share/runway/include, and the build's
lineage (the git commit it was built from) as <prefix>/share/runway/build_info.json, which
training records where there is no checkout (a Docker image, a Databricks cluster). Metadata is in
pyproject.toml."""

import json
import subprocess
from pathlib import Path

from setuptools import setup


def include_files() -> list[tuple[str, list[str]]]:
    folders: dict[str, list[str]] = {}
    for path in sorted(Path("include").rglob("*")):
        if path.is_file() and not path.name.startswith(".") and "__pycache__" not in path.parts:
            folders.setdefault(str(Path("share/runway") / path.parent), []).append(str(path))
    return sorted(folders.items())


def build_info() -> list[tuple[str, list[str]]]:
    """The commit this build is made from (``unknown`` outside a git checkout)."""
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        commit = done.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        commit = "unknown"
    target = Path("build") / "runway" / "build_info.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps({"git_commit": commit}))
    return [("share/runway", [str(target)])]


setup(data_files=include_files() + build_info())
