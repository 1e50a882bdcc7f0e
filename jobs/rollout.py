"""Rollout: the serving endpoint's traffic, changed at run time and audited.

    python -m jobs.rollout traffic --env prod --traffic '{"routes": [{"name": "champion", "alias": "Champion",
        "percent": 90}, {"name": "candidate", "version": "7", "percent": 10}], "shadow": null}' \
        --requested-by alice --reason "canary 10 %" [--run-id <run>]
    python -m jobs.rollout show --env prod

The traffic in force is the registered model's ``runway.traffic`` tag (``jobs.common.traffic``);
every endpoint of the environment reads it with the aliases each poll and puts it in force
without a restart. Each change is written to ``<catalog>.ml.model_audit`` (the alias moves' audit
trail; action ``traffic``, from → to, who, why) as an intent before the tag moves and settled after
it, or by the next change after a crash. Setting the traffic in force again changes nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from jobs.common.audit import audit_trail, write_event
from jobs.common.cli import add_run_id, base_parser, json_object, run_cli
from jobs.common.config import EnvConfig, load_config
from jobs.common.errors import BadInputError
from jobs.common.promotion import MOVE_ABANDONED, MOVE_DONE, MOVE_PENDING
from jobs.common.traffic import TRAFFIC_TAG, Traffic

if TYPE_CHECKING:
    from jobs.common.registry import ModelRegistry
    from jobs.tablestore import TableStore

log = logging.getLogger("runway.rollout")

TRAFFIC = "traffic"  # the audit trail's action
CANDIDATE = "candidate"  # the canary's route


def traffic_in_force(config: EnvConfig, registry: ModelRegistry) -> Traffic:
    """The registered model's traffic tag, else the environment's configured traffic."""
    tag = registry.model_state()[1].get(TRAFFIC_TAG)
    return Traffic.from_json(tag) if tag else config.configured_traffic()


def check_targets(registry: ModelRegistry, traffic: Traffic) -> None:
    """Every alias and version the traffic names exists (one sentence naming those that do not)."""
    aliases = registry.model_state()[0]
    missing = []
    for route in (*traffic.routes, *([traffic.shadow] if traffic.shadow else [])):
        if route.alias and route.alias not in aliases:
            missing.append(f"alias {route.alias} (route {route.name})")
        elif route.version:
            try:
                registry.version(route.version)
            except BadInputError:
                missing.append(f"version {route.version} (route {route.name})")
    if missing:
        raise BadInputError(f"{registry.model_name} has no {', '.join(missing)}: the traffic was not changed")


def set_traffic(config: EnvConfig, store: TableStore, traffic: Traffic, *, requested_by: str, reason: str,
                run_id: str) -> dict[str, Any]:  # fmt: skip
    """Put ``traffic`` in force: intent, tag, settled event. A crash in between is settled by the
    next change (done when the tag arrived, else abandoned)."""
    from jobs.common.registry import ModelRegistry

    if not requested_by:
        raise BadInputError("--requested-by is required: every traffic change names who asked for it")
    registry = ModelRegistry.for_config(config)
    settle_pending(store, registry)
    check_targets(registry, traffic)
    before = traffic_in_force(config, registry)
    if before.to_json() == traffic.to_json():
        log.info("traffic already in force: %s", traffic.describe())
        return {"changed": False, "traffic": traffic.as_dict()}
    event = {
        "event_id": f"{run_id}:traffic:{_digest(before)}->{_digest(traffic)}", "event_time": datetime.now(UTC),
        "model_name": registry.model_name, "alias": "", "action": TRAFFIC, "from_version": before.describe(),
        "to_version": traffic.describe(), "metrics": json.dumps({"from": before.as_dict(), "to": traffic.as_dict()}),
        "approved_by": requested_by, "run_id": run_id, "reason": reason, "status": MOVE_PENDING, "request_id": run_id,
    }  # fmt: skip
    write_event(store, event)
    registry.set_model_tag(TRAFFIC_TAG, traffic.to_json())
    event["status"] = MOVE_DONE
    write_event(store, event)
    log.info("%s traffic: %s -> %s (%s: %s)", registry.model_name, before.describe(), traffic.describe(),
             requested_by, reason)  # fmt: skip
    return {
        "changed": True,
        "from": before.as_dict(),
        "traffic": traffic.as_dict(),
        "event_id": event["event_id"],
    }


def settle_pending(store: TableStore, registry: ModelRegistry) -> None:
    """Settle traffic changes a crash left as intents, from the tag in force now."""
    tag = registry.model_state()[1].get(TRAFFIC_TAG)
    for event in audit_trail(store, registry.model_name, (TRAFFIC,)):
        if event.get("status") != MOVE_PENDING:
            continue
        wanted = Traffic.from_dict(json.loads(event["metrics"])["to"]).to_json()
        event["status"] = MOVE_DONE if tag == wanted else MOVE_ABANDONED
        write_event(store, event)
        log.warning("settled an interrupted traffic change to %s: %s", event["to_version"], event["status"])


def canary_traffic(config: EnvConfig, candidate: str, percent: float) -> Traffic:
    """The configured traffic's primary route (the Champion) keeps ``100 - percent``; the candidate
    version takes ``percent`` as route ``candidate``, sticky by the configured key."""
    from jobs.common.traffic import Route

    base = config.configured_traffic()
    champion = base.primary
    routes = [Route(champion.name, champion.alias, champion.version, 100 - percent),
              Route(CANDIDATE, version=candidate, percent=percent)]  # fmt: skip
    return Traffic(tuple(r for r in routes if r.percent > 0), None, base.sticky_key)


def arm_figures(rows, route: str):
    """One route's figures from inference-table rows (one row per scored row; a request counts once)."""
    from jobs.common.rollout_gates import ArmFigures

    arm = rows[rows.route == route]
    requests = arm.drop_duplicates("request_id")
    answered = arm[arm.status == 200]
    p99 = float(requests.latency_ms.quantile(0.99)) if len(requests) else 0.0
    return ArmFigures(len(requests), int((requests.status >= 500).sum()), round(p99, 3),
                      tuple(answered.prediction.dropna().astype(float).tolist()))  # fmt: skip


def judge(
    config: EnvConfig, store: TableStore, since: datetime, candidate: str | None = None
) -> dict[str, Any]:
    """The canary step begun at ``since``: the candidate's arm against the Champion's, from the
    inference table (jobs.common.rollout_gates.canary_verdict); a breach at once when an endpoint
    refused the candidate (it could not load, warm up or accept the Champion's inputs)."""
    if candidate:
        from jobs.common.registry import ModelRegistry
        from jobs.common.traffic import REFUSED_TAG

        refused = ModelRegistry.for_config(config).version(candidate).tags.get(REFUSED_TAG)
        if refused:
            return {"state": "breach", "reason": f"the endpoint refused v{candidate}: {refused}", "figures": {},
                    "since": since.isoformat()}  # fmt: skip
    from datetime import date

    from jobs.common.rollout_gates import CanaryLimits, canary_verdict

    settings = config.rollout.canary
    table = store.name("ml", config.serving.inference_log.table)
    columns = ["request_id", "route", "status", "latency_ms", "prediction"]
    rows = (store.read_pandas(table, window=("requested_at", since, date(9999, 1, 1)), columns=columns)
            if store.exists(table) else None)  # fmt: skip
    champion_route = config.configured_traffic().primary.name
    if rows is None or rows.empty:
        from jobs.common.rollout_gates import ArmFigures

        empty = ArmFigures(0, 0, 0.0)
        verdict = canary_verdict(empty, empty, CanaryLimits(settings.min_requests, settings.max_error_rate_diff,
                                                           settings.max_p99_ratio, settings.max_prediction_drift))  # fmt: skip
    else:
        verdict = canary_verdict(arm_figures(rows, champion_route), arm_figures(rows, CANDIDATE),
                                 CanaryLimits(settings.min_requests, settings.max_error_rate_diff,
                                              settings.max_p99_ratio, settings.max_prediction_drift))  # fmt: skip
    log.info("canary since %s: %s — %s", since.isoformat(), verdict.state, verdict.reason)
    return {**verdict.as_dict(), "since": since.isoformat()}


def databricks_config(config: EnvConfig, registry: ModelRegistry, traffic: Traffic) -> dict[str, Any]:
    """The traffic in force as the body of Databricks' ``PUT /api/2.0/serving-endpoints/{name}/config``
    (aliases resolved to versions), and what it cannot carry."""
    from jobs.common.traffic import to_databricks

    aliases = registry.model_state()[0]
    versions = {r.name: (aliases.get(r.alias) if r.alias else r.version) for r in traffic.routes}
    missing = [r.target for r in traffic.routes if versions[r.name] is None]
    if missing:
        raise BadInputError(f"{registry.model_name} has no {missing}: nothing to render")
    name = registry.model_name.replace(".", "-").replace("_", "-")
    endpoint, notes = to_databricks(traffic, registry.model_name, versions, endpoint=name, catalog=config.catalog,
                                    schema="ml")  # fmt: skip
    return {"endpoint_config": endpoint.as_dict(), "not_rendered": notes}


def _digest(traffic: Traffic) -> str:
    return hashlib.sha256(traffic.to_json().encode()).hexdigest()[:10]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument(
        "action", choices=["traffic", "show", "canary-step", "judge", "reset", "databricks-config"]
    )
    parser.add_argument("--candidate", default=None, help="canary-step: the candidate version")
    parser.add_argument("--percent", type=float, default=None, help="canary-step: the candidate's share")
    parser.add_argument("--since", default=None, help="judge: when the step began (ISO timestamp, UTC)")
    parser.add_argument(
        "--traffic", type=json_object, default=None, help="traffic: the traffic to put in force"
    )
    parser.add_argument("--requested-by", default="", help="traffic: who asks for the change (audited)")
    parser.add_argument("--reason", default="", help="traffic: why (audited)")
    add_run_id(parser)
    args = parser.parse_args(argv)
    config = load_config(args.env)
    if args.action in ("show", "databricks-config"):
        from jobs.common.registry import ModelRegistry

        registry = ModelRegistry.for_config(config)
        traffic = traffic_in_force(config, registry)
        if args.action == "show":
            return {"traffic": traffic.as_dict()}
        return databricks_config(config, registry, traffic)
    from jobs.tablestore import open_table_store

    store = open_table_store(config)
    if args.action == "judge":
        if not args.since:
            raise BadInputError("judge: --since <ISO timestamp> is required")
        return judge(config, store, datetime.fromisoformat(args.since), args.candidate)
    if args.action == "reset":  # back to the configured traffic: a rollback, or the end of a clean ladder
        traffic = config.configured_traffic()
    elif args.action == "canary-step":
        if not args.candidate or args.percent is None:
            raise BadInputError("canary-step: --candidate <version> and --percent <share> are required")
        traffic = canary_traffic(config, args.candidate, args.percent)
    elif args.traffic is None:
        raise BadInputError("traffic: --traffic '<json>' is required")
    else:
        traffic = Traffic.from_dict(args.traffic)
    started = datetime.now(UTC)
    outcome = set_traffic(config, store, traffic, requested_by=args.requested_by, reason=args.reason,
                          run_id=args.run_id)  # fmt: skip
    return {**outcome, "started": started.isoformat()}


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
