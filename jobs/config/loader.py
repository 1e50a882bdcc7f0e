"""Typed, validated configuration for one Runway environment.

An environment's config is three YAML files deep-merged in order: ``base.yaml`` (platform defaults),
the selected use case's ``use_case.yaml`` and ``<env>.yaml``. A use case is one folder
(``include/use_cases/<name>/``: its ``use_case.yaml``, ``sql/``, ``expectations/``, optional sample
data); ``use_case: <name or folder>`` in ``base.yaml`` or ``<env>.yaml`` selects it. Values may
reference environment variables as ``${NAME}`` or ``${NAME:-default}``.

This module is imported when Airflow parses DAG files: it must stay light (yaml and pydantic only).
"""

from __future__ import annotations

import os
import re
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from jobs.config.base import ENVIRONMENTS, IDENTIFIER, ConfigError, ConfigKeyError
from jobs.config.env import EnvConfig
from jobs.config.use_case import USE_CASE_FILE, USE_CASE_KEYS
from jobs.core.paths import config_dir, data_dir, include_dir, use_cases_dir


def _defaults_for_interpolation() -> dict[str, str]:
    return {"RUNWAY_DATA_DIR": str(data_dir()), "RUNWAY_INCLUDE_DIR": str(include_dir())}


def _expand(text: str, where: str, path: str) -> str:
    """Expand ``${NAME}`` and ``${NAME:-default}`` (defaults may nest further references)."""
    out, i = [], 0
    while (start := text.find("${", i)) >= 0:
        depth, end = 0, start
        for end in range(start, len(text)):
            depth += {"{": 1, "}": -1}.get(text[end], 0)
            if depth == 0 and text[end] == "}":
                break
        else:
            raise ConfigError(f"{where}: {path}: unclosed '${{' in {text!r}")
        body = text[start + 2 : end]
        name, sep, default = body.partition(":-")
        if not IDENTIFIER.fullmatch(name):
            raise ConfigError(f"{where}: {path}: bad variable reference ${{{body}}}")
        if name in os.environ:
            value = os.environ[name]
        elif sep:
            value = _expand(default, where, path)
        elif name in (defaults := _defaults_for_interpolation()):
            value = defaults[name]
        else:
            raise ConfigError(
                f"{where}: {path}: environment variable ${{{name}}} is not set and has no default"
            )
        out += [text[i:start], value]
        i = end + 1
    out.append(text[i:])
    return "".join(out)


def _interpolate(node: Any, where: str, path: str = "") -> Any:
    if isinstance(node, dict):
        return {k: _interpolate(v, where, f"{path}.{k}" if path else str(k)) for k, v in node.items()}
    if isinstance(node, list):
        return [_interpolate(v, where, f"{path}[{i}]") for i, v in enumerate(node)]
    return _expand(node, where, path) if isinstance(node, str) else node


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        content = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(content, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys")
    return _interpolate(content, str(path))


def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _has_path(tree: Any, loc: tuple[Any, ...]) -> bool:
    node = tree
    for part in loc:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            return False
    return True


def _explain(exc: ValidationError, layers: list[tuple[Path, dict[str, Any]]]) -> str:
    lines = []
    for error in exc.errors():
        loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        cause = (error.get("ctx") or {}).get("error")
        if isinstance(cause, ConfigKeyError):  # a check of one key below the model that raised it
            loc = (*loc, *cause.key)
        key = ".".join(str(p) for p in loc) or "(top level)"
        # Name the file that set the key (last layer wins), or the environment's file when it is missing.
        owner = next((path for path, tree in reversed(layers) if _has_path(tree, loc)), layers[-1][0])
        kind = error["type"]
        message = "unknown key" if kind == "extra_forbidden" else error["msg"]
        if kind == "missing":
            message = "missing value"
        lines.append(f"{owner}: {key}: {message}")
    return "invalid Runway config:\n  " + "\n  ".join(lines)


def config_files(env: str, directory: Path | None = None) -> list[Path]:
    """The platform's files of ``env``: ``base.yaml`` and ``<env>.yaml`` (the use case's file sits
    in its folder, see :func:`use_case_folder`)."""
    directory = directory or config_dir()
    return [directory / "base.yaml", directory / f"{env}.yaml"]


def use_case_folder(selector: str) -> Path:
    """The folder a ``use_case:`` selector names: a name under ``include/use_cases/`` or a path."""
    candidate = Path(selector).expanduser()
    if "/" in selector or candidate.is_absolute():
        folder = candidate if candidate.is_absolute() else Path.cwd() / candidate
    else:
        folder = use_cases_dir() / selector
    if not (folder / USE_CASE_FILE).is_file():
        raise ConfigError(
            f"use case {selector!r}: {folder / USE_CASE_FILE} not found (use cases in {use_cases_dir()}: "
            f"{list_use_cases()}; `make use-case NAME=...` writes a new one)"
        )
    return folder.resolve()


def list_use_cases() -> list[str]:
    """The use cases shipped under ``include/use_cases/``."""
    return sorted(p.parent.name for p in use_cases_dir().glob(f"*/{USE_CASE_FILE}"))


def _variables(paths: list[Path]) -> tuple[tuple[str, str | None], ...]:
    """The environment variables ``paths`` interpolate, with their values (they key the cache)."""
    names: set[str] = set()
    for path in paths:
        if path.is_file():
            names |= set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", path.read_text()))
    return tuple((name, os.environ.get(name)) for name in sorted(names))


def _selected_use_case(layers: list[tuple[Path, dict[str, Any]]]) -> tuple[Path, str]:
    """(file, selector) of the ``use_case:`` that wins (the environment's file over base.yaml)."""
    for path, tree in reversed(layers):
        if "use_case" not in tree:
            continue
        selector = tree.pop("use_case")
        if not isinstance(selector, str) or not selector.strip():
            raise ConfigError(
                f"{path}: use_case: selects a use case folder by name (e.g. use_case: flight_delay); "
                "the use case's own settings live in its folder's use_case.yaml"
            )
        for _, other in layers:
            other.pop("use_case", None)
        return path, selector.strip()
    raise ConfigError(f"{layers[0][0]}: use_case: is missing (the name of a folder under include/use_cases)")


def _stamps(paths: list[Path]) -> tuple[tuple[Path, tuple[int, int]], ...]:
    """Each file with its (modification time, size): what tells an edited file."""
    stats = [(path, path.stat() if path.is_file() else None) for path in paths]
    return tuple((path, (s.st_mtime_ns, s.st_size) if s else (-1, -1)) for path, s in stats)


@cache
def _load(
    env: str, directory: Path, variables: tuple[tuple[str, str | None], ...] = ()
) -> tuple[EnvConfig, tuple[tuple[Path, tuple[int, int]], ...]]:
    """(the config, the files it was read from with their modification times)."""
    if env not in ENVIRONMENTS:
        raise ConfigError(f"unknown environment '{env}': choose one of {', '.join(ENVIRONMENTS)}")
    (base_path, base), (env_path, env_tree) = platform = [
        (path, _read_yaml(path)) for path in config_files(env, directory)
    ]
    declared = env_tree.get("env")
    if declared != env:
        raise ConfigError(
            f"{env_path}: declares env {declared!r} but was loaded for '{env}': an environment's file "
            "must say which environment it configures (env: <name>)"
        )
    selected_in, selector = _selected_use_case(platform)
    try:
        folder = use_case_folder(selector)
    except ConfigError as exc:
        raise ConfigError(f"{selected_in}: {exc}") from None
    use_case_path = folder / USE_CASE_FILE
    use_case = _read_yaml(use_case_path)
    if extra := sorted(set(use_case) - USE_CASE_KEYS):
        raise ConfigError(
            f"{use_case_path}: {extra} do not belong in a use case file (it may set {sorted(USE_CASE_KEYS)}; "
            "platform settings go in base.yaml or <env>.yaml)"
        )
    if not isinstance(use_case.get("use_case"), dict):
        raise ConfigError(f"{use_case_path}: use_case: must be a mapping (name, sources, features, model)")
    use_case["use_case"] = {**use_case["use_case"], "folder": str(folder)}
    layers = [(base_path, base), (use_case_path, use_case), (env_path, env_tree)]
    merged = _deep_merge(_deep_merge(base, use_case), env_tree)
    try:
        return EnvConfig.model_validate(merged), _stamps([path for path, _ in layers])
    except ValidationError as exc:
        raise ConfigError(_explain(exc, layers)) from None


def load_config(env: str | None = None, directory: str | Path | None = None) -> EnvConfig:
    """The validated config of ``env`` (default: ``$RUNWAY_ENV`` or ``dev``); cached per process and
    per value of the environment variables the files interpolate (``RUNWAY_USE_CASE``, ...), and
    read again when one of its files changed (a long-running DAG processor sees edits)."""
    env = env or current_env()
    directory = Path(directory) if directory else config_dir()
    if env not in ENVIRONMENTS:
        return _load(env, directory)[0]  # raises the one-sentence error
    # a changed ${VAR} of the platform's files or any RUNWAY_*/MLFLOW_* variable (what use case files
    # use) or another working directory (relative use case paths) loads afresh
    platform = _variables(config_files(env, directory))
    runway = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith(("RUNWAY_", "MLFLOW_"))))
    key = (*platform, *runway, ("cwd", os.getcwd()))
    config, stamps = _load(env, directory, key)
    if _stamps([path for path, _ in stamps]) != stamps:
        _load.cache_clear()
        config, stamps = _load(env, directory, key)
    if (checked := (env, directory, key, stamps)) not in _ISOLATED:  # once per loaded version
        _check_isolation(config, stamps[-1][0], directory, key)
        _ISOLATED.add(checked)
    return config


_ISOLATED: set[tuple] = set()


def owned_places(config: EnvConfig) -> dict[str, tuple[str, ...]]:
    """What an environment writes, by the key that sets it: no other environment may resolve one
    of these to the same place (its tables, MLflow experiment and registered models, streaming
    checkpoints, serving WAL, reports, vector indexes)."""
    mlflow, storage = config.mlflow, config.storage
    registry = mlflow.registry_uri or mlflow.tracking_uri
    index_root = storage.index_root or Path(storage.lakehouse_root) / "_indexes"
    return {
        "catalog": (config.catalog,),
        "access.write_catalog": (config.access.write_catalog,),
        "mlflow.experiment": (mlflow.tracking_uri, mlflow.experiment),
        "the registered model (catalog, schemas.ml)": (registry, config.registered_model_name),
        "storage.checkpoint_root": (str((Path(storage.checkpoint_root) / config.env).resolve()),),
        "serving.inference_log.wal_root": (str(config.serving.wal_dir(config.env).resolve()),),
        "storage.reports_root": (str((Path(storage.reports_root) / config.env).resolve()),),
        "storage.index_root": (str((Path(index_root) / config.catalog).resolve()),),
    }


def isolation_problems(config: EnvConfig, others: dict[str, EnvConfig]) -> list[str]:
    """Where ``config`` would write a place another environment writes (pure: the check's rule)."""
    mine = owned_places(config)
    shared = {"catalog", "access.write_catalog"}  # one catalog name: compared across both keys
    problems = []
    for other_env, other in others.items():
        theirs = owned_places(other)
        catalogs = {theirs["catalog"], theirs["access.write_catalog"]}
        for key, place in mine.items():
            if place in catalogs if key in shared else place == theirs[key]:
                problems.append(f"{key}: {' '.join(place)!r} is also {other_env}'s")
    return problems


def _check_isolation(config: EnvConfig, env_file: Path, directory: Path, key: tuple) -> None:
    """Refuse, before anything runs, an environment that would write another one's catalog or any
    other place it owns (one edited line in ``dev.yaml`` wrote prod's tables)."""
    others = {}
    for env in ENVIRONMENTS:
        if env == config.env or not (directory / f"{env}.yaml").is_file():
            continue
        try:
            others[env] = _load(env, directory, key)[0]
        except ConfigError:  # that environment's own load says what is wrong with it
            continue
    if problems := isolation_problems(config, others):
        raise ConfigError(
            f"{env_file}: {problems[0]}: an environment writes only its own places, and no two share one"
            + (f" (also: {'; '.join(problems[1:])})" if problems[1:] else "")
        )


def shared_mlflow(config: EnvConfig) -> list[str]:
    """The other environments whose MLflow tracking store is this one's (stated at start-up)."""
    others = []
    for env in ENVIRONMENTS:
        if env == config.env:
            continue
        try:
            if load_config(env).mlflow.tracking_uri == config.mlflow.tracking_uri:
                others.append(env)
        except ConfigError:
            continue
    return others


def current_env() -> str:
    """The environment this deployment runs as: ``$RUNWAY_ENV``, default ``dev``."""
    return os.environ.get("RUNWAY_ENV", "dev")


def deployed_envs() -> list[str]:
    """Which environments' DAGs this Airflow deployment shows: ``$RUNWAY_DAG_ENVS`` (comma list or
    ``all``), default just the deployment's own environment."""
    raw = os.environ.get("RUNWAY_DAG_ENVS", "").strip()
    if not raw:
        return [current_env()]
    if raw == "all":
        return list(ENVIRONMENTS)
    envs = [e.strip() for e in raw.split(",") if e.strip()]
    unknown = [e for e in envs if e not in ENVIRONMENTS]
    if unknown:
        raise ConfigError(f"RUNWAY_DAG_ENVS names unknown environments {unknown}: choose from {ENVIRONMENTS}")
    return envs
