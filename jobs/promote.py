"""Champion/Challenger: compare, promote, roll back — every alias move audited in Delta.

    python -m jobs.promote compare  --env dev --run-id <run>
    python -m jobs.promote promote  --env dev --run-id <run> [--approved-by alice]
    python -m jobs.promote rollback --env dev --run-id <run> --requested-by bob --reason "bad AUC in prod"

- compare: scores ``Challenger`` and ``Champion`` on the Challenger's held-out window; the decision
  (``promote`` or ``keep``) follows ``promotion.metric`` and ``min_improvement``. Results go to an
  MLflow run, the Challenger's tags and the Delta table ``<catalog>.ml.model_comparisons``.
- promote: moves ``Champion`` to a Challenger that won its comparison and clears ``Challenger``.
- rollback: moves ``Champion`` back to the version it replaced, from the audit trail.

Each move appends to ``<catalog>.ml.model_audit`` (when, from and to which version, metrics, who
approved, run id). Reruns of the same orchestrator run do nothing twice.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from jobs.common.cli import Window, add_run_id, base_parser, run_cli
from jobs.common.config import EnvConfig, load_config
from jobs.common.lifecycle import evaluate, labelled_gold, load_version, mlflow_client, version_by_alias
from jobs.validate_model import CHALLENGER, CHAMPION, better_or_equal, fair_comparison

if TYPE_CHECKING:
    from jobs.tablestore import TableStore

log = logging.getLogger("runway.promote")

COMPARISONS, AUDIT = "model_comparisons", "model_audit"
COMPARISON_SCHEMA = (
    "comparison_id string, compared_at timestamp, model_name string, challenger_version string, "
    "champion_version string, metric string, challenger_value double, champion_value double, "
    "min_improvement double, window_start date, window_end date, decision string, run_id string, metrics string"
)
AUDIT_SCHEMA = (
    "event_id string, event_time timestamp, model_name string, alias string, action string, "
    "from_version string, to_version string, metrics string, approved_by string, run_id string, reason string"
)


def compare(config: EnvConfig, store: TableStore, run_id: str) -> dict[str, Any]:
    import mlflow

    name, rules = config.registered_model_name, config.promotion
    client = mlflow_client(config)
    challenger = version_by_alias(client, name, CHALLENGER)
    if challenger is None:
        raise ValueError(f"{name} has no {CHALLENGER}: validate a version first")
    champion = version_by_alias(client, name, CHAMPION)
    window = Window.parse(challenger.tags["data.test_start"], challenger.tags["data.test_end"])
    if champion is not None and not fair_comparison(champion.tags, window):
        raise ValueError(
            f"{name} v{challenger.version}'s held-out window {window} overlaps the data Champion "
            f"v{champion.version} was fitted on: no fair comparison"
        )
    frame, _ = labelled_gold(store, config, window)  # one read, both models scored on the same rows
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
    with mlflow.start_run(
        run_name=f"compare v{challenger.version} vs Champion", tags={"airflow.run_id": run_id}
    ):
        mlflow.log_metrics({f"challenger_{k}": v for k, v in ours.items()})
        if theirs:
            mlflow.log_metrics({f"champion_{k}": v for k, v in theirs.items()})
        mlflow.log_params({"decision": decision, "challenger_version": challenger.version,
                           "champion_version": result["champion_version"], "min_improvement": rules.min_improvement})  # fmt: skip
    for key, value in {"comparison.decision": decision, "comparison.champion_version": result["champion_version"],
                       f"comparison.{rules.metric}": f"{ours[rules.metric]:.4f}"}.items():  # fmt: skip
        client.set_model_version_tag(name, str(challenger.version), key, "" if value is None else str(value))
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


def audit_trail(store: TableStore, name: str) -> list[dict[str, Any]]:
    """The model's alias moves, oldest first."""
    table = store.name("ml", AUDIT)
    if not store.exists(table):
        return []
    events = store.read_pandas(table, order_by=["event_time"])
    return events[events["model_name"] == name].to_dict("records")


def _move_champion(
    config: EnvConfig, store: TableStore, client, *, to_version: str, action: str, run_id: str,
    approved_by: str, reason: str, metrics: dict[str, Any],
) -> dict[str, Any]:  # fmt: skip
    name = config.registered_model_name
    event_id = f"{run_id}:{action}"
    done = [e for e in audit_trail(store, name) if e["event_id"] == event_id]
    if done:  # a retry of a move already made
        log.info(
            "%s already recorded (%s -> %s): nothing to do",
            event_id,
            done[0]["from_version"],
            done[0]["to_version"],
        )
        return {**done[0], "changed": False}
    current = version_by_alias(client, name, CHAMPION)
    from_version = str(current.version) if current is not None else None
    client.set_registered_model_alias(name, CHAMPION, to_version)
    client.set_model_version_tag(
        name, to_version, "champion.since", datetime.now(UTC).isoformat(timespec="seconds")
    )
    if from_version is not None:
        client.set_model_version_tag(name, to_version, "champion.previous", from_version)
    event = {
        "event_id": event_id, "event_time": datetime.now(UTC), "model_name": name, "alias": CHAMPION,
        "action": action, "from_version": from_version, "to_version": to_version,
        "metrics": json.dumps(metrics, default=str), "approved_by": approved_by, "run_id": run_id, "reason": reason,
    }  # fmt: skip
    frame = store.small_frame([event], AUDIT_SCHEMA)
    store.merge(store.name("ml", AUDIT), frame, ["event_id"], metadata={"run_id": run_id, "action": action})
    log.info(
        "%s: %s moved %s -> %s (%s, approved by %s)",
        name,
        CHAMPION,
        from_version,
        to_version,
        action,
        approved_by,
    )
    return {**event, "changed": True}


def promote(config: EnvConfig, store: TableStore, run_id: str, approved_by: str = "auto") -> dict[str, Any]:
    name = config.registered_model_name
    client = mlflow_client(config)
    challenger = version_by_alias(client, name, CHALLENGER)
    if challenger is None:
        done = [e for e in audit_trail(store, name) if e["event_id"] == f"{run_id}:promote"]
        if done:
            return _summary({**done[0], "changed": False})
        raise ValueError(f"{name} has no {CHALLENGER} to promote")
    if challenger.tags.get("comparison.decision") != "promote":
        raise ValueError(f"{name} v{challenger.version} did not win its comparison: {CHAMPION} stays")
    metrics = {k: v for k, v in challenger.tags.items() if k.startswith("comparison.")}
    event = _move_champion(config, store, client, to_version=str(challenger.version), action="promote", run_id=run_id,
                           approved_by=approved_by, reason=challenger.tags.get("trigger.reason", ""), metrics=metrics)  # fmt: skip
    client.delete_registered_model_alias(name, CHALLENGER)
    return _summary(event)


def rollback(
    config: EnvConfig, store: TableStore, run_id: str, requested_by: str, reason: str
) -> dict[str, Any]:
    name = config.registered_model_name
    client = mlflow_client(config)
    current = version_by_alias(client, name, CHAMPION)
    trail = audit_trail(store, name)
    done = [e for e in trail if e["event_id"] == f"{run_id}:rollback"]
    if done:
        return _summary({**done[0], "changed": False})
    if current is None:
        raise ValueError(f"{name} has no {CHAMPION} to roll back")
    arrivals = [e for e in trail if e["to_version"] == str(current.version) and e["from_version"]]
    if not arrivals:
        raise ValueError(f"the audit trail has no earlier {CHAMPION} of {name} than v{current.version}")
    previous = arrivals[-1]["from_version"]
    event = _move_champion(config, store, client, to_version=previous, action="rollback", run_id=run_id,
                           approved_by=requested_by, reason=reason, metrics={"replaced": str(current.version)})  # fmt: skip
    return _summary(event)


def _summary(event: dict[str, Any]) -> dict[str, Any]:
    keys = ("model_name", "action", "from_version", "to_version", "approved_by", "run_id", "changed")
    return {k: event.get(k) for k in keys}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("action", choices=["compare", "promote", "rollback"])
    add_run_id(parser)
    parser.add_argument("--approved-by", default="auto", help="who approved the promotion")
    parser.add_argument("--requested-by", default="unknown", help="who asked for the rollback")
    parser.add_argument("--reason", default="", help="why (kept in the audit trail)")
    args = parser.parse_args(argv)
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    config = load_config(args.env)
    from jobs.tablestore import open_table_store

    store = open_table_store(config)  # Spark starts only to write the Delta tables
    if args.action == "compare":
        return compare(config, store, args.run_id)
    if args.action == "promote":
        return promote(config, store, args.run_id, args.approved_by)
    return rollback(config, store, args.run_id, args.requested_by, args.reason)


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
