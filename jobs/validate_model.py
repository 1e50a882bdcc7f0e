"""The validation gate: check a registered model version before it may challenge the Champion.

    python -m jobs.validate_model --env dev --version 3 [--mode dry_run] --run-id <run>

Checks, each recorded in the version's description and as ``validation/checks.json`` / ``.html`` on
its run (the version's tags keep a summary: ``validation.summary``, ``validation.failed``):
- format: the model loads by URI, has a signature covering the configured features, carries the
  lineage tags and a description, and its run logged the evaluation plots;
- performance on the version's held-out test window (from its lineage): metric floors and
  ceilings; against the current ``Champion`` on the same rows (at most ``max_regression_vs_champion``
  worse) or, with no Champion yet, against the business baseline (always predicting the negative
  class);
- slices: each value of the configured slice columns (e.g. carrier, origin) with enough rows reaches
  ``slice_floor``.

``model_validation_status`` becomes PASSED or FAILED; a passing version gets the ``Challenger``
alias and a failing one loses it. Modes: ``enabled`` blocks on failure; ``dry_run`` records the
checks but passes; ``disabled`` passes without checking. The held-out rows are read at the gold
version training recorded. As a command, a FAILED gate exits with code 3 (as the data-quality gate
does); ``--record-only`` exits 0 and leaves routing to the caller (the training DAG).
"""

from __future__ import annotations

from typing import Any

from jobs.config.loader import load_config
from jobs.core.errors import GateFailedError
from jobs.modeling.validation import validate_version
from jobs.release.registry import FAILED
from jobs.runtime.cli import add_run_id, base_parser, run_cli
from jobs.tablestore import open_table_store


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--version", required=True, help="the registered model version to validate")
    parser.add_argument(
        "--mode", choices=["disabled", "dry_run", "enabled"], default=None, help="default: config"
    )
    parser.add_argument(
        "--record-only",
        action="store_true",
        help="exit 0 on FAILED: the caller routes on the recorded status (the training DAG)",
    )
    add_run_id(parser)
    args = parser.parse_args(argv)
    config = load_config(args.env)

    store = open_table_store(config)
    result = validate_version(config, store, args.version, mode=args.mode, run_id=args.run_id)
    if result["status"] == FAILED and not args.record_only:
        checks = "; ".join(f"{name}: {detail}" for name, detail in result["failed_checks"].items())
        raise GateFailedError(f"{result['model_name']} v{result['version']} failed validation: {checks}")
    return result


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
