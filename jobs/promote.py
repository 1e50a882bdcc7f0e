"""Champion/Challenger: compare, approve, promote, roll back — every alias move audited in Delta.

    python -m jobs.promote compare  --env dev [--run-id <run>]
    python -m jobs.promote approve  --env prod --version 7 [--reason ...]   (or: reject)
    python -m jobs.promote promote  --env dev [--version 7] [--run-id <run>]
    python -m jobs.promote rollback --env dev --requested-by bob --reason "bad AUC in prod"
    python -m jobs.promote check    --env prod --version 7        (may it be promoted now? before any traffic)

- compare: scores ``Challenger`` and ``Champion`` on the Challenger's held-out window at the gold
  version training read; the decision (``promote`` or ``keep``) follows ``promotion.metric`` and
  ``min_improvement``. Results go to an MLflow run in the environment's experiment, the
  Challenger's tags and the Delta table ``<catalog>.ml.model_comparisons``.
- approve / reject: the approval record on the version's tags — the approver is the identity the
  MLflow server authenticates for the credentials in use (``jobs.platform.identity``), never a typed
  name; a rejection also takes ``Challenger`` away. Environments with ``promotion.approval: human``
  promote only versions approved by an authenticated person (this way, or in Airflow).
- promote: moves the Champion alias to a version (default: the Challenger) that passed validation,
  won its comparison against the Champion of the moment and, where required, was approved
  (``jobs.release.promotion`` holds the rules). Promoting the current Champion again does nothing.
- rollback: walks the Champion history back one step (v7 → v6 → v1).

Every audit row names the person (``approved_by``: the approver, or whom ``--requested-by`` names:
the Airflow user who triggered the run) and the ``actor``, the identity the MLflow server
authenticated for the move (``unauthenticated`` on a store without authentication).
- ``--model assistant``: the same for the assistant's chain (``<catalog>.<ml>.<assistant>``, judged by
  ``jobs.evaluate_assistant`` instead of compare); the prompt's ``Champion`` alias then follows the
  chain's (the prompt version the Champion chain was built with).

Each move is written to ``<catalog>.ml.model_audit`` as an intent before the alias moves and
settled after it (or by the next call after a crash), so the trail and the alias agree. A retry of
the same ``--run-id`` never moves twice; without ``--run-id`` every command is a new request.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from jobs.config.env import EnvConfig
from jobs.config.loader import load_config
from jobs.core.errors import BadInputError
from jobs.core.window import Window
from jobs.modeling.lifecycle import evaluate, labelled_gold, load_version, pinned_gold_version
from jobs.platform.cli import add_run_id, base_parser, run_cli
from jobs.platform.identity import mlflow_identity
from jobs.platform.mlflow_setup import configure_mlflow
from jobs.release.audit import audit_trail as common_audit_trail
from jobs.release.audit import write_event
from jobs.release.promotion import (
    ALIAS_ACTIONS,
    APPROVED,
    COMPARED_WITH_TAG,
    DECISION_TAG,
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
    better_or_equal,
    champion_history,
    fair_comparison,
    promotion_refusal,
    rollback_target,
    settle,
    version_label,
)
from jobs.release.registry import CHALLENGER, PASSED, STATUS_TAG, ModelRegistry

if TYPE_CHECKING:
    from jobs.tablestore import TableStore

log = logging.getLogger("runway.promote")

COMPARISONS = "model_comparisons"
COMPARISON_SCHEMA = (
    "comparison_id string, compared_at timestamp, model_name string, challenger_version string, "
    "champion_version string, metric string, challenger_value double, champion_value double, "
    "min_improvement double, window_start date, window_end date, decision string, run_id string, metrics string"
)


def compare(config: EnvConfig, store: TableStore, run_id: str) -> dict[str, Any]:
    import mlflow

    name, rules = config.registered_model_name, config.promotion
    registry = ModelRegistry.for_config(config)
    challenger = registry.by_alias(CHALLENGER)
    if challenger is None:
        raise BadInputError(f"{name} has no {CHALLENGER}: validate a version first")
    if challenger.tags.get(STATUS_TAG) != PASSED:
        raise BadInputError(
            f"{name} v{challenger.version} is {CHALLENGER} but its {STATUS_TAG} is "
            f"{challenger.tags.get(STATUS_TAG)}: validate it again"
        )
    champion = registry.by_alias(config.champion_alias)
    window = Window.parse(challenger.tags["data.test_start"], challenger.tags["data.test_end"])
    if champion is not None and not fair_comparison(champion.tags, window):
        raise BadInputError(
            f"{name} v{challenger.version}'s held-out window {window} overlaps the data Champion "
            f"v{champion.version} was fitted on: no fair comparison"
        )
    # One read at the gold version training recorded: both models scored on the same rows.
    frame, _ = labelled_gold(
        store, config, window, version=pinned_gold_version(store, config, challenger.tags)
    )
    ours = evaluate(load_version(config, str(challenger.version)), config, frame)
    theirs = (
        evaluate(load_version(config, str(champion.version)), config, frame) if champion is not None else None
    )
    wins = theirs is None or better_or_equal(
        rules.metric, ours[rules.metric], theirs[rules.metric], rules.min_improvement
    )
    decision = "promote" if wins else "keep"
    result = {
        "model_name": name, "challenger_version": str(challenger.version),
        "champion_version": str(champion.version) if champion is not None else None,
        "metric": rules.metric, "challenger_value": ours[rules.metric],
        "champion_value": theirs[rules.metric] if theirs else None, "decision": decision, "window": str(window),
    }  # fmt: skip
    experiment_id = configure_mlflow(config)
    with mlflow.start_run(
        experiment_id=experiment_id, run_name=f"compare v{challenger.version} vs Champion",
        tags={"airflow.run_id": run_id},
    ):  # fmt: skip
        mlflow.log_metrics({f"challenger_{k}": v for k, v in ours.items()})
        if theirs:
            mlflow.log_metrics({f"champion_{k}": v for k, v in theirs.items()})
        mlflow.log_params({"decision": decision, "challenger_version": challenger.version,
                           "champion_version": result["champion_version"], "min_improvement": rules.min_improvement})  # fmt: skip
    record_comparison(registry, str(challenger.version), decision, result["champion_version"],
                      {f"comparison.{rules.metric}": f"{ours[rules.metric]:.4f}"})  # fmt: skip
    row = {
        "comparison_id": f"{run_id}:{challenger.version}", "compared_at": datetime.now(UTC), "model_name": name,
        "challenger_version": str(challenger.version), "champion_version": result["champion_version"],
        "metric": rules.metric, "challenger_value": ours[rules.metric], "champion_value": result["champion_value"],
        "min_improvement": rules.min_improvement, "window_start": window.start, "window_end": window.end,
        "decision": decision, "run_id": run_id, "metrics": json.dumps({"challenger": ours, "champion": theirs}),
    }  # fmt: skip
    table = store.name("ml", COMPARISONS)
    store.merge(
        table, store.small_frame([row], COMPARISON_SCHEMA), ["comparison_id"], metadata={"run_id": run_id}
    )
    log.info(
        "compare %s v%s vs Champion %s on %s: %s",
        name,
        challenger.version,
        result["champion_version"],
        window,
        decision,
    )
    return result


def record_comparison(
    registry: ModelRegistry, version: str, decision: str, champion: str | None, metrics: dict[str, str]
) -> None:
    """The comparison's outcome on the Challenger: the decision and the Champion it was made against
    (a promotion checks that this is still the Champion)."""
    registry.set_tags(version, {**metrics, COMPARED_WITH_TAG: champion or ""})
    registry.set_tags(version, {DECISION_TAG: decision})  # last: the decision stands on the rest


def audit_trail(store: TableStore, name: str) -> list[dict[str, Any]]:
    """The model's alias moves (intents and settled moves), oldest first."""
    return common_audit_trail(store, name, ALIAS_ACTIONS)


def rules_of(config: EnvConfig) -> PromotionRules:
    return PromotionRules.of(config.promotion)


def settle_pending(store: TableStore, registry: ModelRegistry, alias: str) -> list[dict[str, Any]]:
    """Settle moves a crash left as intents (done when the alias arrived, else abandoned); returns
    the whole trail afterwards. Every promote and rollback starts here."""
    trail = audit_trail(store, registry.model_name)
    pending = [e for e in trail if e.get("status") == MOVE_PENDING]
    if not pending:
        return trail
    champion = registry.alias_version(alias)
    for event in pending:
        event["status"] = settle(Move.from_event(event), champion)
        if event["status"] == MOVE_DONE:
            _tag_champion(registry, event["to_version"], event.get("from_version"))
        write_event(store, event)
        log.warning(
            "settled an interrupted %s -> v%s: %s", event["action"], event["to_version"], event["status"]
        )
    return trail


def _tag_champion(registry: ModelRegistry, version: str, previous: str | None) -> None:
    registry.set_tags(version, {"champion.since": datetime.now(UTC).isoformat(timespec="seconds"),
                                "champion.previous": previous or ""})  # fmt: skip


def _move_champion(
    store: TableStore, registry: ModelRegistry, alias: str, *, move: Move, run_id: str,
    approved_by: str, reason: str, metrics: dict[str, Any],
) -> dict[str, Any]:  # fmt: skip
    """Intent first, then the alias, then the settled record: a crash anywhere is settled by the
    next call (``settle_pending``) so that the trail and the alias agree."""
    event = {
        "event_id": f"{move.request_id}:{move.action}:{move.from_version}->{move.to_version}",
        "event_time": datetime.now(UTC), "model_name": registry.model_name, "alias": alias,
        "action": move.action, "from_version": move.from_version, "to_version": move.to_version,
        "metrics": json.dumps(metrics, default=str), "approved_by": approved_by, "run_id": run_id,
        "reason": reason, "status": MOVE_PENDING, "request_id": move.request_id, "actor": actor_of(registry),
    }  # fmt: skip
    write_event(store, event)
    registry.set_alias(alias, move.to_version)
    _tag_champion(registry, move.to_version, move.from_version)
    event["status"] = MOVE_DONE
    write_event(store, event)
    log.info("%s: %s moved %s -> %s (%s, approved by %s)", registry.model_name, alias,
             move.from_version, move.to_version, move.action, approved_by)  # fmt: skip
    return {**event, "changed": True}


def actor_of(registry: ModelRegistry) -> str:
    """The identity the registry's MLflow server authenticates for the credentials in use."""
    return mlflow_identity(registry.tracking_uri).name


def approve(config: EnvConfig, version: str, *, reject: bool = False, reason: str = "") -> dict[str, Any]:
    """Record the caller's decision on a version (the approval record promotion checks): the
    approver is the identity the MLflow server authenticated, in an environment with human approval
    one of ``promotion.approvers``. A rejection (also one by time-out) takes ``Challenger`` away."""
    registry = ModelRegistry.for_config(config)
    approver = actor_of(registry)
    if not reject and (why := rules_of(config).may_approve(approver)):
        raise BadInputError(f"{config.registered_model_name} v{version}: {why}")
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


def promote(config: EnvConfig, store: TableStore, run_id: str, version: str | None = None) -> dict[str, Any]:
    """Move the Champion alias to ``version`` (default: the Challenger) if the rules allow it."""
    registry, alias = ModelRegistry.for_config(config), config.champion_alias
    settle_pending(store, registry, alias)
    target = str(version) if version else registry.alias_version(CHALLENGER)
    if target is None:
        raise BadInputError(f"{registry.model_name} has no {CHALLENGER} to promote: give --version")
    champion = registry.alias_version(alias)
    if champion == target:  # a retry or a repeat: nothing moves, no other version is touched
        registry.delete_alias(CHALLENGER, only_from=target)
        log.info("%s v%s is already %s: nothing to do", registry.model_name, target, alias)
        return _settled(config, registry, {"model_name": registry.model_name, "action": PROMOTE, "from_version": champion,
                                           "to_version": target, "run_id": run_id, "changed": False})  # fmt: skip
    record = registry.version(target)
    candidate = Candidate.from_tags(target, record.tags)
    if why := promotion_refusal(candidate, champion, rules_of(config)):
        raise BadInputError(f"{registry.model_name}: {why}; {alias} stays {version_label(champion)}")
    metrics = {k: v for k, v in record.tags.items() if k.startswith("comparison.")}
    event = _move_champion(
        store, registry, alias, move=Move(PROMOTE, champion, target, request_id=run_id), run_id=run_id,
        approved_by=candidate.approved_by or "auto", reason=record.tags.get("trigger.reason", ""), metrics=metrics,
    )  # fmt: skip
    registry.delete_alias(CHALLENGER, only_from=target)
    return _settled(config, registry, event)


def check_promotable(config: EnvConfig, version: str) -> dict[str, Any]:
    """Whether ``version`` may become Champion now (validated, won its comparison with the Champion
    of the moment, approved where the environment requires it): what the deployment DAG asks before
    the candidate meets any traffic. Refuses with the reason, like ``promote``."""
    registry, alias = ModelRegistry.for_config(config), config.champion_alias
    champion = registry.alias_version(alias)
    candidate = Candidate.from_tags(str(version), registry.version(version).tags)
    if champion != str(version) and (why := promotion_refusal(candidate, champion, rules_of(config))):
        raise BadInputError(f"{registry.model_name}: {why}; it gets no traffic before it may be promoted")
    return {"version": str(version), "champion": champion, "promotable": True,
            "approved_by": candidate.approved_by or "auto"}  # fmt: skip


def rollback(
    config: EnvConfig, store: TableStore, run_id: str, requested_by: str | None, reason: str
) -> dict[str, Any]:
    """Walk the Champion history back one step; a retry of the same run moves nothing twice.
    ``requested_by``: the person it is done for (the Airflow user who triggered it); by default the
    authenticated caller."""
    registry, alias = ModelRegistry.for_config(config), config.champion_alias
    trail = settle_pending(store, registry, alias)
    champion = registry.alias_version(alias)
    done = [e for e in trail if e.get("request_id") == run_id and e["action"] == ROLLBACK
            and e.get("status") in (MOVE_DONE, None)]  # fmt: skip
    if done and done[-1]["to_version"] == champion:
        log.info("rollback of request %s already made (-> v%s): nothing to do", run_id, champion)
        return _settled(config, registry, {**done[-1], "changed": False})
    history = champion_history(Move.from_event(e) for e in trail)
    target, why = rollback_target(history, champion)
    if target is None:
        raise BadInputError(f"{registry.model_name}: cannot roll back: {why}")
    event = _move_champion(
        store,
        registry,
        alias,
        move=Move(ROLLBACK, champion, target, request_id=run_id),
        run_id=run_id,
        approved_by=requested_by or actor_of(registry),
        reason=reason,
        metrics={"replaced": champion},
    )
    return _settled(config, registry, event)


def _settled(config: EnvConfig, registry: ModelRegistry, event: dict[str, Any]) -> dict[str, Any]:
    """The move's summary; for a chain, after its prompt's Champion alias followed — also after a
    no-op, so a retry heals a crash between the chain's alias and the prompt's."""
    keys = ("model_name", "action", "from_version", "to_version", "approved_by", "actor", "run_id", "changed")
    summary = {k: event.get(k) for k in keys}
    if config.is_assistant_view:
        from jobs.assistant.chain import follow_chain_champion

        summary["prompt"] = follow_chain_champion(config, registry)
    return summary


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("action", choices=["compare", "approve", "reject", "promote", "check", "rollback"])
    add_run_id(parser)
    parser.add_argument("--version", default=None, help="the version to approve, reject or promote")
    parser.add_argument(
        "--requested-by",
        default=None,
        help="rollback: the person it is done for (default: the authenticated caller)",
    )
    parser.add_argument("--reason", default="", help="why (kept in the audit trail or the approval record)")
    parser.add_argument("--model", choices=["use_case", "assistant"], default="use_case",
                        help="the use case's model, or the assistant's chain (its prompt's alias follows)")  # fmt: skip
    args = parser.parse_args(argv)
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    config = load_config(args.env)
    if args.model == "assistant":
        if args.action == "compare":
            raise BadInputError(
                "a chain is compared by its evaluation gate: python -m jobs.evaluate_assistant"
            )
        config = config.assistant_view()
    if args.action in ("approve", "reject"):
        if not args.version:
            raise BadInputError(f"{args.action} needs --version")
        return approve(config, args.version, reject=args.action == "reject", reason=args.reason)
    from jobs.tablestore import open_table_store

    store = open_table_store(config)  # Spark starts only if the engine needs it to write Delta
    if args.action == "check":
        if not args.version:
            raise BadInputError("check needs --version")
        return check_promotable(config, args.version)
    if args.action == "compare":
        return compare(config, store, args.run_id)
    if args.action == "promote":
        return promote(config, store, args.run_id, args.version)
    return rollback(config, store, args.run_id, args.requested_by, args.reason)


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
