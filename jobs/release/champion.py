"""Approval, promotion and rollback of the Champion alias, intent first, settled after."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING, Any

import mlflow

from jobs.config.env import EnvConfig
from jobs.core.errors import BadInputError
from jobs.release.audit import audit_trail as common_audit_trail
from jobs.release.audit import record_change, settle_intents
from jobs.release.promotion import (
    ALIAS_ACTIONS,
    APPROVED,
    MOVE_DONE,
    MOVE_PENDING,
    PROMOTE,
    REJECTED,
    ROLLBACK,
    VIA_MLFLOW,
    Candidate,
    Move,
    PromotionRules,
    approval_tags,
    champion_history,
    promotion_refusal,
    rollback_target,
    settle,
    version_label,
)
from jobs.release.registry import CHALLENGER, ModelRegistry
from jobs.runtime.identity import mlflow_identity

if TYPE_CHECKING:
    from jobs.config.targets import ModelTarget
    from jobs.tablestore import TableStore


log = logging.getLogger("runway.promote")


def audit_trail(store: TableStore, name: str) -> list[dict[str, Any]]:
    """The model's alias moves (intents and settled moves), oldest first."""
    return common_audit_trail(store, name, ALIAS_ACTIONS)


def rules_of(target: ModelTarget) -> PromotionRules:
    return PromotionRules.of(target.promotion)


def settle_pending(store: TableStore, registry: ModelRegistry, alias: str) -> list[dict[str, Any]]:
    """Settle moves a crash left as intents (done when the alias arrived, else abandoned); returns
    the whole trail afterwards. Every promote and rollback starts here."""
    champion_now = cache(lambda: registry.alias_version(alias))

    def status_of(event: dict[str, Any]) -> str:
        status = settle(Move.from_event(event), champion_now())
        if status == MOVE_DONE:
            _tag_champion(registry, event["to_version"], event.get("from_version"))
        return status

    trail, settled = settle_intents(store, registry.model_name, ALIAS_ACTIONS, MOVE_PENDING, status_of)
    for event in settled:
        log.warning(
            "settled an interrupted %s -> v%s: %s", event["action"], event["to_version"], event["status"]
        )
    return trail


def _tag_champion(registry: ModelRegistry, version: str, previous: str | None) -> None:
    registry.set_tags(
        version,
        {
            "champion.since": datetime.now(UTC).isoformat(timespec="seconds"),
            "champion.previous": previous or "",
        },
    )


def _move_champion(
    store: TableStore,
    registry: ModelRegistry,
    alias: str,
    move: Move,
    approved_by: str,
    reason: str,
    metrics: dict[str, Any],
) -> dict[str, Any]:
    """Intent first, then the alias, then the settled record: a crash anywhere is settled by the
    next call (``settle_pending``) so that the trail and the alias agree."""
    event = {
        "event_id": f"{move.request_id}:{move.action}:{move.from_version}->{move.to_version}",
        "event_time": datetime.now(UTC),
        "model_name": registry.model_name,
        "alias": alias,
        "action": move.action,
        "from_version": move.from_version,
        "to_version": move.to_version,
        "metrics": json.dumps(metrics, default=str),
        "approved_by": approved_by,
        "run_id": move.request_id,
        "reason": reason,
        "status": MOVE_PENDING,
        "request_id": move.request_id,
        "actor": actor_of(registry),
    }

    def move_alias() -> None:
        registry.set_alias(alias, move.to_version)
        _tag_champion(registry, move.to_version, move.from_version)

    record_change(store, event, move_alias, MOVE_DONE)
    log.info(
        "%s: %s moved %s -> %s (%s, approved by %s)",
        registry.model_name,
        alias,
        move.from_version,
        move.to_version,
        move.action,
        approved_by,
    )
    return {**event, "changed": True}


def actor_of(registry: ModelRegistry) -> str:
    """The identity the registry's MLflow server authenticates for the credentials in use."""
    return mlflow_identity(registry.tracking_uri).name


def approve(
    config: EnvConfig,
    version: str,
    *,
    reject: bool = False,
    reason: str = "",
    target: ModelTarget | None = None,
) -> dict[str, Any]:
    """Record the caller's decision on a version (the approval record promotion checks): the
    approver is the identity the MLflow server authenticated, in an environment with human approval
    one of ``promotion.approvers``. A rejection (also one by time-out) takes ``Challenger`` away."""
    target = target or config.model_target
    registry = ModelRegistry.for_config(config, target)
    approver = actor_of(registry)
    if not reject and (why := rules_of(target).may_approve(approver)):
        raise BadInputError(f"{registry.model_name} v{version}: {why}")
    registry.version(version)
    decision = REJECTED if reject else APPROVED
    at = datetime.now(UTC).isoformat(timespec="seconds")
    registry.set_tags(version, approval_tags(decision, approver, VIA_MLFLOW, approver, at, reason))
    cleared = registry.delete_alias(CHALLENGER, only_from=version) if reject else None
    log.info("%s v%s %s by %s", registry.model_name, version, decision, approver)
    return {
        "model_name": registry.model_name,
        "version": str(version),
        "decision": decision,
        "approved_by": approver,
        "challenger_cleared": cleared is not None,
    }


def promote(
    config: EnvConfig,
    store: TableStore,
    run_id: str,
    version: str | None = None,
    *,
    target: ModelTarget | None = None,
) -> dict[str, Any]:
    """Move the target's Champion alias (default: the use case model's) to ``version`` (default:
    the Challenger) if the rules allow it."""
    target = target or config.model_target
    registry, alias = ModelRegistry.for_config(config, target), target.champion_alias
    settle_pending(store, registry, alias)
    wanted = str(version) if version else registry.alias_version(CHALLENGER)
    if wanted is None:
        raise BadInputError(f"{registry.model_name} has no {CHALLENGER} to promote: give --version")
    champion = registry.alias_version(alias)
    if champion == wanted:  # a retry or a repeat: nothing moves, no other version is touched
        registry.delete_alias(CHALLENGER, only_from=wanted)
        log.info("%s v%s is already %s: nothing to do", registry.model_name, wanted, alias)
        return _settled(
            target,
            registry,
            {
                "model_name": registry.model_name,
                "action": PROMOTE,
                "from_version": champion,
                "to_version": wanted,
                "run_id": run_id,
                "changed": False,
            },
        )
    record = registry.version(wanted)
    candidate = Candidate.from_tags(wanted, record.tags)
    if why := promotion_refusal(candidate, champion, rules_of(target)):
        raise BadInputError(f"{registry.model_name}: {why}; {alias} stays {version_label(champion)}")
    metrics = {k: v for k, v in record.tags.items() if k.startswith("comparison.")}
    move, approver = Move(PROMOTE, champion, wanted, request_id=run_id), candidate.approved_by or "auto"
    event = _move_champion(
        store, registry, alias, move, approver, record.tags.get("trigger.reason", ""), metrics
    )
    registry.delete_alias(CHALLENGER, only_from=wanted)
    return _settled(target, registry, event)


def check_promotable(config: EnvConfig, version: str, target: ModelTarget | None = None) -> dict[str, Any]:
    """Whether ``version`` may become Champion now (validated, won its comparison with the Champion
    of the moment, approved where the environment requires it): what the deployment DAG asks before
    the candidate meets any traffic. Refuses with the reason, like ``promote``."""
    target = target or config.model_target
    registry, alias = ModelRegistry.for_config(config, target), target.champion_alias
    champion = registry.alias_version(alias)
    candidate = Candidate.from_tags(str(version), registry.version(version).tags)
    if champion != str(version) and (why := promotion_refusal(candidate, champion, rules_of(target))):
        raise BadInputError(f"{registry.model_name}: {why}; it gets no traffic before it may be promoted")
    return {
        "version": str(version),
        "champion": champion,
        "promotable": True,
        "approved_by": candidate.approved_by or "auto",
    }


def rollback(
    config: EnvConfig,
    store: TableStore,
    run_id: str,
    requested_by: str | None,
    reason: str,
    *,
    target: ModelTarget | None = None,
) -> dict[str, Any]:
    """Walk the Champion history back one step; a retry of the same run moves nothing twice.
    ``requested_by``: the person it is done for (the Airflow user who triggered it); by default the
    authenticated caller."""
    target = target or config.model_target
    registry, alias = ModelRegistry.for_config(config, target), target.champion_alias
    trail = settle_pending(store, registry, alias)
    champion = registry.alias_version(alias)
    done = [
        e
        for e in trail
        if e.get("request_id") == run_id and e["action"] == ROLLBACK and e.get("status") in (MOVE_DONE, None)
    ]
    if done and done[-1]["to_version"] == champion:
        log.info("rollback of request %s already made (-> v%s): nothing to do", run_id, champion)
        return _settled(target, registry, {**done[-1], "changed": False})
    history = champion_history(Move.from_event(e) for e in trail)
    back_to, why = rollback_target(history, champion)
    if back_to is None:
        raise BadInputError(f"{registry.model_name}: cannot roll back: {why}")
    move, approver = Move(ROLLBACK, champion, back_to, request_id=run_id), requested_by or actor_of(registry)
    event = _move_champion(store, registry, alias, move, approver, reason, {"replaced": champion})
    return _settled(target, registry, event)


def _settled(target: ModelTarget, registry: ModelRegistry, event: dict[str, Any]) -> dict[str, Any]:
    """The move's summary; for a chain, after its prompt's Champion alias followed — also after a
    no-op, so a retry heals a crash between the chain's alias and the prompt's."""
    keys = ("model_name", "action", "from_version", "to_version", "approved_by", "actor", "run_id", "changed")
    summary = {k: event.get(k) for k in keys}
    if target.is_chain:
        summary["prompt"] = follow_prompt_champion(target, registry)
    return summary


def follow_prompt_champion(target: ModelTarget, registry: ModelRegistry) -> dict[str, Any]:
    """Point the prompt's Champion alias at the prompt version the Champion chain was built with
    (``assistant.prompt_version``); idempotent, so every promotion and rollback ends with it."""
    champion = registry.alias_version(target.champion_alias)
    if champion is None:
        return {"prompt": target.prompt_name, "version": None}
    prompt_version = registry.version(champion).tags.get("assistant.prompt_version")
    if not prompt_version:
        raise BadInputError(
            f"{registry.model_name} v{champion} names no prompt version (assistant.prompt_version)"
        )
    mlflow.genai.set_prompt_alias(
        target.prompt_name, alias=target.champion_alias, version=int(prompt_version)
    )
    return {"prompt": target.prompt_name, "version": prompt_version, "alias": target.champion_alias}
