"""The version the endpoint serves: it follows the configured alias.

A poller thread resolves the alias every ``poll_seconds``. When it names another version, that
version is loaded beside the serving one, its inputs are checked against the serving version's
(clients send those columns: a new required column or a changed type would fail them), it is
warmed up on the last rows actually scored (else its logged input example), and only then does one
assignment make it the served version. A version that fails any step is refused — the old one
keeps serving, the refusal is logged and counted — and is not tried again until the alias moves.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from jobs.common.config import EnvConfig
    from jobs.common.scoring import ModelRef

log = logging.getLogger("runway.serving.follower")

NUMERIC = {"double", "float", "long", "integer"}


@dataclass(frozen=True)
class Served:
    """A loaded, warmed-up version: what a batch is scored with from start to end."""

    model: ModelRef
    pyfunc: Any

    @property
    def input_types(self) -> dict[str, str]:
        return dict(self.model.inputs)


def incompatibilities(serving: ModelRef, candidate: ModelRef) -> list[str]:
    """Why clients of ``serving`` could not call ``candidate`` unchanged (empty: they can)."""
    before = dict(serving.inputs)
    problems = [f"new input column {name!r}" for name, _ in candidate.inputs if name not in before]
    for name, kind in candidate.inputs:
        if name in before and (kind in NUMERIC) != (before[name] in NUMERIC):
            problems.append(f"{name!r} changed type {before[name]} -> {kind}")
    return problems


class ModelFollower:
    """Holds the served version and moves it when the alias moves."""

    def __init__(self, config: EnvConfig, alias: str, poll_seconds: float,
                 on_event: Callable[[str, str, str], None] | None = None) -> None:  # fmt: skip
        self.config, self.alias, self.poll_seconds = config, alias, poll_seconds
        self.served: Served | None = None
        self.refused: dict[str, str] = {}  # version -> why (until the alias moves again)
        self.last_rows: pa.Table | None = None  # the last scored inputs: the next warm-up
        self._on_event = on_event or (lambda *_: None)
        self._registry = None  # the environment's ModelRegistry, made on the first check
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="alias-follower", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.check()
            except Exception:  # the registry may be down: keep serving, look again later
                log.exception(
                    "alias %s: could not check the registry; still serving %s", self.alias, self.describe()
                )
            self._stop.wait(self.poll_seconds)

    def recheck(self) -> str | None:
        """``check`` at once, versions refused before included (an admin's forced reload)."""
        with self._lock:
            self.refused.clear()
        return self.check()

    def describe(self) -> str:
        served = self.served
        return "nothing" if served is None else f"{served.model.name} v{served.model.version}"

    def check(self) -> str | None:
        """Resolve the alias once; load and swap in a new version. Returns the outcome
        (``loaded``/``refused``), None when nothing changed. One check at a time."""
        from jobs.common.registry import ModelRegistry
        from jobs.common.scoring import NoModelVersionError, resolve_model

        with self._lock:
            self._registry = self._registry or ModelRegistry.for_config(self.config)
            version = self._registry.alias_version(self.alias)  # one registry read per poll
            served = self.served
            if version is None or version in self.refused or (served and served.model.version == version):
                return None  # nothing (new) to serve: /health stays as it is
            try:
                candidate = resolve_model(self.config, self.alias)  # the signature: only when it moved
            except NoModelVersionError:
                return None
            why = self._refusal(served, candidate)
            if why is None:
                try:
                    pyfunc = self._load_and_warm(candidate)
                except Exception as exc:  # a version that cannot load or predict is refused
                    why = f"it failed to load or to predict: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
            if why is not None:
                self.refused[candidate.version] = why
                log.error("alias %s -> v%s refused, still serving %s: %s", self.alias, candidate.version,
                          self.describe(), why)  # fmt: skip
                self._on_event("refused", candidate.version, why)
                return "refused"
            self.refused.clear()
            self.served = Served(
                candidate, pyfunc
            )  # one assignment: a batch keeps the version it started with
            log.info("alias %s -> %s v%s: serving it", self.alias, candidate.name, candidate.version)
            self._on_event("loaded", candidate.version, "")
            return "loaded"

    @staticmethod
    def _refusal(served: Served | None, candidate: ModelRef) -> str | None:
        if served is None:
            return None
        problems = incompatibilities(served.model, candidate)
        return (
            f"its signature is incompatible with v{served.model.version}'s: {'; '.join(problems)}"
            if problems
            else None
        )

    def _load_and_warm(self, candidate: ModelRef):
        import mlflow

        from jobs.common.scoring import positive_probability

        pyfunc = mlflow.pyfunc.load_model(candidate.uri)
        sample = self._warm_up_rows(candidate, pyfunc)
        if sample is not None:
            positive_probability(pyfunc, sample)
        return pyfunc

    def _warm_up_rows(self, candidate: ModelRef, pyfunc) -> pd.DataFrame | None:
        import pandas as pd

        names = [name for name, _ in candidate.inputs]
        if self.last_rows is not None and set(names) <= set(self.last_rows.column_names):
            return self.last_rows.select(names).slice(0, 64).to_pandas()
        example = pyfunc.input_example
        return example[names] if isinstance(example, pd.DataFrame) else None
