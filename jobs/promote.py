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
  MLflow server authenticates for the credentials in use (``jobs.runtime.identity``), never a typed
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

import os
from typing import Any

from jobs.config.loader import load_config
from jobs.core.errors import BadInputError
from jobs.modeling.comparison import compare
from jobs.release.champion import approve, check_promotable, promote, rollback
from jobs.runtime.cli import add_run_id, add_target, base_parser, run_cli, target_key
from jobs.tablestore import open_table_store


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("action", choices=["compare", "approve", "reject", "promote", "check", "rollback"])
    add_run_id(parser)
    parser.add_argument("--version", default=None, help="the version to approve, reject or promote")
    parser.add_argument("--reason", default="", help="why (kept in the audit trail or the approval record)")
    add_target(parser, "the assistant's chain (its prompt's alias follows)")
    args = parser.parse_args(argv)
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    config = load_config(args.env)
    if args.model == "assistant" and args.action == "compare":
        raise BadInputError("a chain is compared by its evaluation gate: python -m jobs.evaluate_assistant")
    target = config.target(target_key(args))
    if args.action in ("approve", "reject"):
        if not args.version:
            raise BadInputError(f"{args.action} needs --version")
        return approve(
            config, args.version, reject=args.action == "reject", reason=args.reason, target=target
        )

    store = open_table_store(config)  # Spark starts only if the engine needs it to write Delta
    if args.action == "check":
        if not args.version:
            raise BadInputError("check needs --version")
        return check_promotable(config, args.version, target)
    if args.action == "compare":
        return compare(config, store, args.run_id)
    if args.action == "promote":
        return promote(config, store, args.run_id, args.version, target=target)
    return rollback(config, store, args.run_id, args.requested_by, args.reason, target=target)


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
