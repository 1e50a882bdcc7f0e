"""Rollout: the serving endpoint's traffic, changed at run time and audited.

    python -m jobs.rollout traffic --env prod --traffic '{"routes": [{"name": "champion", "alias": "Champion",
        "percent": 90}, {"name": "candidate", "version": "7", "percent": 10}], "shadow": null}' \
        --requested-by alice --reason "canary 10 %" [--run-id <run>]
    python -m jobs.rollout show --env prod

The traffic in force is the registered model's ``runway.traffic`` tag (``jobs.config.traffic``);
every endpoint of the environment reads it with the aliases each poll and puts it in force
without a restart. Each change is written to ``<catalog>.ml.model_audit`` (the alias moves' audit
trail; action ``traffic``, from → to, who, why) as an intent before the tag moves and settled after
it, or by the next change after a crash. Setting the traffic in force again changes nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from jobs.config.loader import load_config
from jobs.config.traffic import SHADOW, Route, Traffic
from jobs.core.errors import BadInputError
from jobs.release.registry import ModelRegistry
from jobs.release.rollout import canary_traffic, databricks_config, judge, set_traffic, traffic_in_force
from jobs.runtime.cli import add_run_id, add_target, base_parser, json_object, run_cli, target_key
from jobs.tablestore import open_table_store


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument(
        "action",
        choices=["traffic", "show", "shadow-step", "canary-step", "judge", "reset", "databricks-config"],
    )
    parser.add_argument("--candidate", default=None, help="canary-step: the candidate version")
    parser.add_argument("--percent", type=float, default=None, help="canary-step: the candidate's share")
    parser.add_argument("--since", default=None, help="judge: when the step began (ISO timestamp, UTC)")
    parser.add_argument("--phase", choices=["canary", "shadow"], default="canary", help="judge: which step")
    parser.add_argument(
        "--traffic", type=json_object, default=None, help="traffic: the traffic to put in force"
    )
    parser.add_argument("--reason", default="", help="traffic: why (audited)")
    add_target(parser, "the assistant's chain (A/B and shadow on /assistant/ask)")
    add_run_id(parser)
    args = parser.parse_args(argv)
    config = load_config(args.env)
    if args.model == "assistant" and args.action in ("judge", "databricks-config"):
        raise BadInputError(
            f"{args.action} is for the use case's model; a chain is judged by its evaluation gate"
        )
    target = config.target(target_key(args))
    if args.action in ("show", "databricks-config"):
        registry = ModelRegistry.for_config(config, target)
        traffic = traffic_in_force(config, registry, target)
        if args.action == "show":
            return {"traffic": traffic.as_dict()}
        return databricks_config(config, registry, open_table_store(config), traffic)

    store = open_table_store(config)
    if args.action == "judge":
        if not args.since:
            raise BadInputError("judge: --since <ISO timestamp> is required")
        return judge(config, store, datetime.fromisoformat(args.since), args.candidate, args.phase)
    if args.action == "reset":  # back to the configured traffic: a rollback, or the end of a clean ladder
        traffic = target.configured_traffic()
    elif args.action == "shadow-step":
        if not args.candidate:
            raise BadInputError("shadow-step: --candidate <version> is required")
        base = target.configured_traffic()
        traffic = Traffic(base.routes, Route(SHADOW, version=args.candidate, percent=0), base.sticky_key)
    elif args.action == "canary-step":
        if not args.candidate or args.percent is None:
            raise BadInputError("canary-step: --candidate <version> and --percent <share> are required")
        traffic = canary_traffic(config, args.candidate, args.percent, target)
    elif args.traffic is None:
        raise BadInputError("traffic: --traffic '<json>' is required")
    else:
        traffic = Traffic.from_dict(args.traffic)
    started = datetime.now(UTC)
    outcome = set_traffic(
        config,
        store,
        traffic,
        requested_by=args.requested_by,
        reason=args.reason,
        run_id=args.run_id,
        target=target,
    )
    return {**outcome, "started": started.isoformat()}


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
