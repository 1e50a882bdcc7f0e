"""The wheel's data files: everything under include/ (platform configs, every use case folder with
its SQL, suites and sample data), installed as <prefix>/share/runway/include. Metadata is in
pyproject.toml."""

from pathlib import Path

from setuptools import setup


def include_files() -> list[tuple[str, list[str]]]:
    folders: dict[str, list[str]] = {}
    for path in sorted(Path("include").rglob("*")):
        if path.is_file() and not path.name.startswith(".") and "__pycache__" not in path.parts:
            folders.setdefault(str(Path("share/runway") / path.parent), []).append(str(path))
    return sorted(folders.items())


setup(data_files=include_files())
