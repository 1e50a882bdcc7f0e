"""The endpoint's traffic: which model versions answer which share of requests, and which one
scores a shadow copy of each (pure policy: frozen dataclasses, no I/O).

Shaped like Databricks' ``traffic_config``: routes, each naming an alias or a version with a
percentage (together 100), and an optional shadow route whose answers are logged, never returned.
A request meets one route: with a ``sticky_key``, the route its key's hash falls in (one entity
always meets the same arm, across requests, restarts and replicas); without the key, a random one.

The traffic in force is the registered model's ``runway.traffic`` tag when set (``jobs.rollout``
writes it, audited), else the environment's ``serving.traffic`` config.

On the DAG parse path (the DAG factories import it): pyspark, mlflow, pyarrow and the engines are
imported in the functions that use them.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from jobs.core.errors import BadInputError

TRAFFIC_TAG = "runway.traffic"  # on the registered model: the traffic in force
SHADOW = "shadow"  # the inference table's route for shadow answers
NO_ROUTE = "none"  # the route of a request answered before it met one (413, 503, a malformed body)
REFUSED_TAG = (
    "serving.refused"  # on a version an endpoint refused to serve: why (the canary's judge reads it)
)
REFUSED_AT_TAG = "serving.refused_at"  # when (ISO, UTC): the judge counts refusals of its own step


@dataclass(frozen=True)
class Route:
    """One arm: a name (the inference table's ``route``), what it serves and its share."""

    name: str
    alias: str | None = None
    version: str | None = None
    percent: float = 100.0

    @property
    def target(self) -> str:
        return f"@{self.alias}" if self.alias else f"v{self.version}"


@dataclass(frozen=True)
class Traffic:
    routes: tuple[Route, ...]
    shadow: Route | None = None
    sticky_key: str | None = None
    salt: str = field(default="runway", compare=False)

    def __post_init__(self) -> None:
        problems = traffic_problems(self)
        if problems:
            raise BadInputError(f"traffic {self.describe()}: {'; '.join(problems)}")

    @property
    def primary(self) -> Route:
        """The route with the largest share (the first among equals): what /health reports."""
        return max(self.routes, key=lambda r: r.percent)

    def describe(self) -> str:
        arms = ", ".join(f"{r.name}={r.target} {r.percent:g}%" for r in self.routes)
        shadow = f"; shadow {self.shadow.target}" if self.shadow else ""
        sticky = f"; sticky by {self.sticky_key}" if self.sticky_key else ""
        return arms + shadow + sticky

    def as_dict(self) -> dict[str, Any]:
        def route(r: Route) -> dict[str, Any]:
            return {
                k: v
                for k, v in {
                    "name": r.name,
                    "alias": r.alias,
                    "version": r.version,
                    "percent": r.percent,
                }.items()
                if v is not None
            }

        return {
            "routes": [route(r) for r in self.routes],
            "shadow": route(self.shadow) if self.shadow else None,
            "sticky_key": self.sticky_key,
        }

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> Traffic:
        """From config or the registry tag; bad shapes are one sentence naming the key."""
        if not isinstance(spec, Mapping) or not isinstance(spec.get("routes"), list) or not spec["routes"]:
            raise BadInputError("traffic needs 'routes': a list of {name, alias or version, percent}")
        unknown = set(spec) - {"routes", "shadow", "sticky_key"}
        if unknown:
            raise BadInputError(f"traffic has unknown keys {sorted(unknown)}")
        shadow = spec.get("shadow")
        return cls(
            tuple(_route(r, i) for i, r in enumerate(spec["routes"])),
            _route({"name": SHADOW, **shadow, "percent": 0}, "shadow") if shadow else None,
            spec.get("sticky_key") or None,
        )

    @classmethod
    def from_json(cls, text: str) -> Traffic:
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as exc:
            raise BadInputError(f"traffic is not valid JSON: {exc}") from None


def _route(spec: Any, where: int | str) -> Route:
    if not isinstance(spec, Mapping):
        raise BadInputError(f"traffic route {where} must be an object with name, alias or version, percent")
    unknown = set(spec) - {"name", "alias", "version", "percent"}
    if unknown:
        raise BadInputError(f"traffic route {where} has unknown keys {sorted(unknown)}")
    version = spec.get("version")
    return Route(
        str(spec.get("name") or ""),
        spec.get("alias") or None,
        None if version in (None, "") else str(version),
        float(spec.get("percent", 100)),
    )


def traffic_problems(traffic: Traffic) -> list[str]:
    """What makes a traffic spec unservable (empty: nothing)."""
    problems = []
    names = [r.name for r in traffic.routes]
    if any(not n for n in names) or len(set(names)) != len(names) or SHADOW in names:
        problems.append(f"route names must be given, distinct and not '{SHADOW}': {names}")
    for r in (*traffic.routes, *([traffic.shadow] if traffic.shadow else [])):
        if (r.alias is None) == (r.version is None):
            problems.append(f"route {r.name!r} needs exactly one of alias or version")
    if any(r.percent < 0 for r in traffic.routes) or abs(sum(r.percent for r in traffic.routes) - 100) > 1e-6:
        problems.append(
            f"route percentages must be >= 0 and add up to 100 (got {[r.percent for r in traffic.routes]})"
        )
    return problems


def assign(traffic: Traffic, key: Any = None, rng: random.Random | None = None) -> Route:
    """The route a request meets: by its sticky key's hash when it has one, else at random."""
    if key is not None and traffic.sticky_key:
        digest = hashlib.sha256(f"{traffic.salt}:{key}".encode()).digest()
        point = int.from_bytes(digest[:8], "big") / 2**64 * 100
    else:
        point = (rng or random).random() * 100
    edge = 0.0
    for route in traffic.routes:
        edge += route.percent
        if point < edge:
            return route
    return [r for r in traffic.routes if r.percent > 0][-1]  # rounding at the top edge


def to_databricks(
    traffic: Traffic,
    model_name: str,
    versions: dict[str, str],
    *,
    endpoint: str,
    catalog: str,
    schema: str,
    workload_size: str = "Small",
) -> tuple[Any, list[str]]:
    """The traffic as a Databricks Model Serving endpoint configuration (the SDK's
    ``EndpointCoreConfigInput``: a served entity per route, the routes' percentages, inference
    tables in ``<catalog>.<schema>``), and what it cannot carry: Databricks has no shadow route and
    splits at random (no sticky key). ``versions`` maps each route's name to its resolved version."""
    from databricks.sdk.service.serving import (
        AutoCaptureConfigInput,
        EndpointCoreConfigInput,
        ServedEntityInput,
        TrafficConfig,
    )
    from databricks.sdk.service.serving import Route as DatabricksRoute

    entities = [
        ServedEntityInput(
            name=route.name,
            entity_name=model_name,
            entity_version=versions[route.name],
            workload_size=workload_size,
            scale_to_zero_enabled=False,
        )
        for route in traffic.routes
    ]
    routes = [
        DatabricksRoute(served_entity_name=route.name, traffic_percentage=int(round(route.percent)))
        for route in traffic.routes
    ]
    config = EndpointCoreConfigInput(
        name=endpoint,
        served_entities=entities,
        traffic_config=TrafficConfig(routes=routes),
        auto_capture_config=AutoCaptureConfigInput(
            catalog_name=catalog,
            schema_name=schema,
            enabled=True,
            table_name_prefix=model_name.rsplit(".", 1)[-1],
        ),
    )
    notes = []
    if traffic.shadow:
        notes.append(
            f"shadow {traffic.shadow.target} is not rendered: Databricks Model Serving has no shadow route "
            "(keep Runway's endpoint for the shadow, or compare offline)"
        )
    if traffic.sticky_key:
        notes.append(f"sticky_key {traffic.sticky_key} is not rendered: Databricks splits traffic at random")
    if any(route.percent != round(route.percent) for route in traffic.routes):
        notes.append("percentages were rounded to whole numbers (Databricks takes integers)")
    return config, notes
