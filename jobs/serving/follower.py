"""The versions the endpoint serves: it follows the traffic in force and the aliases it names.

A poller thread reads the registered model every ``poll_seconds`` (its aliases and its
``runway.traffic`` tag in one call; without the tag, the config's ``serving.traffic``). When a
route or the shadow names another version, that version is loaded beside the serving ones, its
inputs are checked against the primary version's (clients send those columns: a new required column
or a changed type would fail them), it is warmed up on the last rows actually scored (else its
logged input example), and only then does one assignment put the new traffic in force. A version
that fails any step is refused — the traffic in force stays, the refusal is logged and counted —
and is not tried again until what the traffic names changes. After each load the process's heap
is settled (``settle_heap``): what is alive then stays out of the garbage collector's full scans.
"""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import mlflow
import pandas as pd

from jobs.config.traffic import TRAFFIC_TAG, Traffic
from jobs.core.errors import BadInputError
from jobs.modeling.scoring import model_ref, positive_probability
from jobs.release.registry import ModelRegistry
from jobs.release.route_rules import traffic_refusals
from jobs.tablestore import open_table_store

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from jobs.config.env import EnvConfig
    from jobs.config.targets import ModelTarget
    from jobs.config.traffic import Route, Traffic
    from jobs.modeling.scoring import ModelRef
    from jobs.tablestore import TableStore

log = logging.getLogger("runway.serving.follower")

NUMERIC = {"double", "float", "long", "integer"}


def settle_heap() -> int:
    """Collect once, then freeze what is alive (imports, loaded versions) out of the collector's
    reach; returns how many objects are frozen. A serving process holds ~370k long-lived objects and
    a full collection scanning them stalled every request ~200 ms. Unfreezing first lets the cycles
    of versions replaced since the last settle go (one such pause per load, none while serving):
    a replaced version's cycles are held until the next load."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


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


@dataclass(frozen=True)
class ServingState:
    """The traffic in force and the loaded version behind each of its routes (and its shadow)."""

    traffic: Traffic
    arms: Mapping[str, Served]  # route name -> version
    shadow: Served | None = None

    @property
    def primary(self) -> Served:
        return self.arms[self.traffic.primary.name]

    def versions(self) -> dict[str, str]:
        named = {name: served.model.version for name, served in self.arms.items()}
        return named | ({"shadow": self.shadow.model.version} if self.shadow else {})


class ModelFollower:
    """Holds the serving state and moves it when the traffic or an alias it names moves."""

    def __init__(
        self,
        config: EnvConfig,
        alias: str,
        poll_seconds: float,
        pinned: Traffic | None = None,
        on_event: Callable[[str, str, str], None] | None = None,
        warm_up: Callable[[Any, pd.DataFrame], Any] | None = None,
        store: TableStore | None = None,
        target: ModelTarget | None = None,
    ) -> None:
        """``target``: the registered model followed (default: the use case's).
        ``warm_up(pyfunc, rows)``: a version's first predict before it serves (default: a
        classifier's positive probability; the assistant's chain answers its example question).
        ``store``: where the audit trail is read (the route rules' rollback target)."""
        self.config, self.alias, self.poll_seconds = config, alias, poll_seconds
        self.target = target or config.model_target
        self._store = store
        self._said_waiting = False
        # (registry state, refusals) the route rules last refused: logged and counted once
        self._routes_refused: tuple | None = None
        self._warm_up = warm_up
        self.pinned = pinned  # a fixed traffic (the load test's) instead of the registry's
        self.state: ServingState | None = None
        self.refused: dict[str, str] = {}  # version (or "traffic") -> why, until the traffic names others
        self.last_rows: pa.Table | None = None  # the last scored inputs: the next warm-up
        self._on_event = on_event or (lambda *_: None)
        self._registry = None  # the environment's ModelRegistry, made on the first check
        self._refused_seen: tuple | None = None  # the registry state whose traffic was refused
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def waiting_for(self) -> str:
        """What this follower serves once it exists: ``<registered model>@<alias>``."""
        return f"{self.target.registered_model_name}@{self.alias}"

    @property
    def served(self) -> Served | None:
        """The primary route's version (the largest share): what /health and a lone route serve."""
        state = self.state
        return state.primary if state is not None else None

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
                log.exception("could not check the registry; still serving %s", self.describe())
            self._stop.wait(self.poll_seconds)

    def recheck(self) -> str | None:
        """``check`` at once, versions refused before included (an admin's forced reload)."""
        with self._lock:
            self.refused.clear()
            self._refused_seen = self._routes_refused = None
        return self.check()

    def describe(self) -> str:
        state = self.state
        if state is None:
            return "nothing"
        return ", ".join(f"{name} v{version}" for name, version in state.versions().items())

    def check(self) -> str | None:
        """Read the traffic and the aliases once; load what it newly names and put it in force.
        Returns the outcome (``loaded``/``refused``), None when nothing changed. One at a time."""

        with self._lock:
            self._registry = self._registry or ModelRegistry.for_config(self.config, self.target)
            aliases, tags = self._registry.model_state()  # one registry read per poll
            seen = (tags.get(TRAFFIC_TAG), tuple(sorted(aliases.items())))
            if seen == self._refused_seen:
                return None  # the same unservable traffic as last time: refused once, not every poll
            try:
                traffic = self.pinned or (
                    Traffic.from_json(tags[TRAFFIC_TAG])
                    if TRAFFIC_TAG in tags
                    else self.target.configured_traffic()
                )
            except BadInputError as exc:
                return self._refuse("traffic", f"the {TRAFFIC_TAG} tag is not servable: {exc}", seen)
            routes = [*traffic.routes, *([traffic.shadow] if traffic.shadow else [])]
            wanted = {route.name: _version_of(route, aliases) for route in routes}
            state = self.state
            if state is not None and state.traffic == traffic and state.versions() == wanted:
                return None
            if wanted[traffic.primary.name] is None:  # nothing to serve yet: /health says what it waits for
                if not self._said_waiting:
                    log.warning(
                        "waiting for %s: %s names no version of use case %r yet (another: RUNWAY_USE_CASE)",
                        self.waiting_for,
                        traffic.primary.target,
                        self.config.use_case.name,
                    )
                    self._said_waiting = True
                return None
            missing = [r.target for r in routes if wanted[r.name] is None]
            if missing:
                return self._refuse(
                    "traffic", f"traffic {traffic.describe()} names {missing}, which do not exist", seen
                )
            if self.pinned is None and (refusals := self._route_refusals(traffic, aliases)):
                return self._refuse_routes(refusals, seen)
            if any(version in self.refused for version in wanted.values()):
                return None
            loaded = self._load_all(traffic, wanted)
            if isinstance(loaded, tuple):
                return self._refuse(*loaded)
            self.refused.clear()
            self._refused_seen = self._routes_refused = None
            shadow = loaded.pop("shadow", None) if traffic.shadow else None
            frozen = settle_heap()  # its pause before the swap, not in the new version's first requests
            self.state = ServingState(traffic, loaded, shadow)  # one assignment: batches keep their version
            log.info("serving %s (%s); %d objects frozen", self.describe(), traffic.describe(), frozen)
            for version in {v for v in wanted.values()} - set((state.versions() if state else {}).values()):
                self._on_event("loaded", version, "")
            return "loaded"

    def _load_all(
        self, traffic: Traffic, wanted: dict[str, str | None]
    ) -> dict[str, Served] | tuple[str, str]:
        """Each route's version, loaded and warmed once (those serving already are reused); or
        (version, why) for the first one refused."""

        ready = {
            s.model.version: s
            for s in (
                [*self.state.arms.values(), *([self.state.shadow] if self.state.shadow else [])]
                if self.state
                else []
            )
        }
        reference = self.served.model if self.served is not None else None
        order = [traffic.primary.name, *(name for name in wanted if name != traffic.primary.name)]
        out: dict[str, Served] = {}
        for name in order:
            version = wanted[name]
            if version not in ready:
                record = self._registry.version(version)
                candidate = model_ref(
                    self._registry.model_name, version, record.run_id, _alias_of(traffic, name)
                )
                why = self._refusal(reference, candidate)
                if why is None:
                    try:
                        ready[version] = Served(candidate, self._load_and_warm(candidate))
                    except Exception as exc:  # a version that cannot load or predict is refused
                        why = (
                            f"it failed to load or to predict: {type(exc).__name__}: "
                            f"{str(exc).splitlines()[0][:300]}"
                        )
                if why is not None:
                    return version, why
            out[name] = ready[version]
            reference = reference or out[name].model  # the first primary: what the others must accept
        return out

    def _route_refusals(self, traffic: Traffic, aliases: dict[str, str]) -> dict[str, str]:
        """The routes of a traffic read from the registry that the promotion rules refuse."""

        self._store = self._store or open_table_store(self.config)
        return traffic_refusals(self.target, self._registry, self._store, traffic, aliases)

    def _refuse_routes(self, refusals: dict[str, str], seen: tuple) -> str | None:
        """Keep the traffic in force; log, count and tag each refused version once per registry
        state and reason. Asked again each poll: a version validated later is then accepted."""
        memo = (seen, tuple(sorted(refusals.items())))
        if memo == self._routes_refused:
            return None
        self._routes_refused = memo
        for version, why in refusals.items():
            self._refuse("traffic", why, version=version)
        return "refused"

    def _refuse(self, key: str, why: str, seen: tuple | None = None, version: str | None = None) -> str:
        """Refuse what ``key`` names (a version, or ``traffic``); ``version``: the version to tag."""
        self.refused[key] = why
        self._refused_seen = seen
        log.error(
            "refused %s, still serving %s: %s", key if key == "traffic" else f"v{key}", self.describe(), why
        )
        self._on_event("refused", key, why)
        version = version or (key if key != "traffic" else None)
        if version:  # durable, for the rollout's judge: the canary cannot get traffic
            from datetime import UTC, datetime

            from jobs.config.traffic import REFUSED_AT_TAG, REFUSED_TAG

            try:
                self._registry.set_tags(
                    version, {REFUSED_TAG: why[:500], REFUSED_AT_TAG: datetime.now(UTC).isoformat()}
                )
            except Exception:  # the registry may be down: the log and /version still say it
                log.warning("could not tag v%s as refused", version)
        return "refused"

    @staticmethod
    def _refusal(reference: ModelRef | None, candidate: ModelRef) -> str | None:
        if reference is None:
            return None
        problems = incompatibilities(reference, candidate)
        return (
            f"its signature is incompatible with v{reference.version}'s: {'; '.join(problems)}"
            if problems
            else None
        )

    def _load_and_warm(self, candidate: ModelRef):

        pyfunc = mlflow.pyfunc.load_model(candidate.uri)
        sample = self._warm_up_rows(candidate, pyfunc)
        if sample is not None:
            (self._warm_up or positive_probability)(pyfunc, sample)
        return pyfunc

    def _warm_up_rows(self, candidate: ModelRef, pyfunc) -> pd.DataFrame | None:

        names = [name for name, _ in candidate.inputs]
        if self.last_rows is not None and set(names) <= set(self.last_rows.column_names):
            return self.last_rows.select(names).slice(0, 64).to_pandas()
        example = pyfunc.input_example
        return example[names] if isinstance(example, pd.DataFrame) else None


def _version_of(route: Route, aliases: dict[str, str]) -> str | None:
    return aliases.get(route.alias) if route.alias else route.version


def _alias_of(traffic: Traffic, name: str) -> str:
    route = next((r for r in (*traffic.routes, traffic.shadow) if r is not None and r.name == name), None)
    return (route.alias or "") if route is not None else ""
