"""The online Champion/Challenger report: the endpoint's arms side by side, from the inference table.

    python -m jobs.online_report --env prod --since 2026-12-01T10:00:00+00:00 [--until ...] [--run-id <run>]

For the requests of ``[since, until)`` (request time), per route: requests, server errors, client
errors, latency percentiles, the served versions and the prediction distribution; for the shadow,
its agreement with the answers it shadowed (paired on request id and row); and, where requests
named their entity's keys and gold holds the label, each arm's quality (ROC AUC, accuracy at its
threshold). Rows go to ``<catalog>.ml.online_comparison`` (the window's rows replaced on a rerun);
an HTML report (the arms' table and Evidently's drift of the candidate's predictions from the
Champion's) is saved under reports and logged with the figures to an MLflow run.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from jobs.config.loader import load_config
from jobs.runtime.cli import add_run_id, base_parser, run_cli
from jobs.serving.online_report import _utc, online_report
from jobs.tablestore import open_table_store


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--since", required=True, help="the first request time (ISO timestamp, UTC)")
    parser.add_argument("--until", default=None, help="the end (ISO timestamp; default: now)")
    add_run_id(parser)
    args = parser.parse_args(argv)
    config = load_config(args.env)

    since = _utc(datetime.fromisoformat(args.since))
    until = _utc(datetime.fromisoformat(args.until)) if args.until else datetime.now(UTC)
    return online_report(config, open_table_store(config), since, until, run_id=args.run_id)


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
