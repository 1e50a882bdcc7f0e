"""Which versions may take a route of the traffic: the promotion rules (``jobs.release.promotion``,
``route_refusal``) applied to what the registry and the audit trail say now.

Both doors into "who answers" ask here: ``jobs.rollout`` before it writes the traffic tag (and
its audit event), and every endpoint's follower before it puts a traffic it read in force (a tag
written behind Runway's back is refused there). The alias the environment serves needs no check:
only a promotion moves it, under the same rules.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from jobs.release.audit import audit_trail
from jobs.release.promotion import (
    ALIAS_ACTIONS,
    Candidate,
    Move,
    PromotionRules,
    champion_history,
    rollback_target,
    route_refusal,
)

if TYPE_CHECKING:
    from jobs.config.targets import ModelTarget
    from jobs.config.traffic import Traffic
    from jobs.release.registry import ModelRegistry
    from jobs.tablestore import TableStore


def rollback_version(store: TableStore, registry: ModelRegistry, champion: str | None) -> str | None:
    """The version a rollback would return to (the Champion before this one in the audit trail)."""
    moves = [Move.from_event(e) for e in audit_trail(store, registry.model_name, ALIAS_ACTIONS)]
    return rollback_target(champion_history(moves), champion)[0]


def traffic_refusals(
    target: ModelTarget, registry: ModelRegistry, store: TableStore, traffic: Traffic, aliases: dict[str, str]
) -> dict[str, str]:
    """version -> why, for every route of ``traffic`` whose version may not take it (empty: all
    may). ``aliases`` is the target's alias -> version, read with the traffic."""
    trusted = {target.champion_alias, target.served_alias}
    champion = aliases.get(target.champion_alias)
    rules = PromotionRules.of(target.promotion)
    refusals: dict[str, str] = {}
    rollback_to: list[str | None] = []  # read once, only when a route needs it
    for route in (*traffic.routes, *([traffic.shadow] if traffic.shadow else [])):
        version = aliases.get(route.alias) if route.alias else route.version
        if route.alias in trusted or version is None or version in refusals:
            continue
        answers = route is not traffic.shadow and route.percent > 0
        if answers and version != champion and not rollback_to:
            rollback_to.append(rollback_version(store, registry, champion))
        candidate = Candidate.from_tags(version, registry.version(version).tags)
        why = route_refusal(
            candidate,
            answers=answers,
            champion=champion,
            rollback_to=rollback_to[0] if rollback_to else None,
            rules=rules,
        )
        if why:
            refusals[version] = f"route {route.name} ({route.target}): {why}"
    return refusals
