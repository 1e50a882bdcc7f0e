"""Monitor a window of predictions against the Champion's training reference; record alerts.

    python -m jobs.monitoring monitor --env dev --start 2013-07-01 --end 2013-07-02 --run-id <run>
    python -m jobs.monitoring monitor --env prod --source inference_log --start ... --end ... --run-id <run>
    python -m jobs.monitoring alert --env dev --start ... --end ... --decision '<json>' --run-id <run>

``monitor`` compares the window's scored inputs and predictions with the training window recorded
in the lineage of the model version that made them (Evidently: drift of each feature, the share of
drifted features, drift of the predictions), and, where labels have arrived (gold's label for past
rows, joined on the entity's keys), the model's quality on the window. The source is batch and
streaming scoring (``ml.predictions``, by the data's date) or the serving endpoint's answered
requests (``ml.inference_log``, by request time; a window without traffic is monitored with zero
rows). One row per metric and column goes to ``<catalog>.<monitoring>.metrics`` with its source
(the window's rows of that source are replaced on a rerun); the Evidently HTML report is saved
under reports and logged to an MLflow monitoring run.

``alert`` records a drift-triggered retrain in ``<catalog>.<monitoring>.alerts`` (once per window).

``decide`` applies the retraining policy to the window ending ``--end`` (what the monitoring DAG's
``check_drift`` runs on a cluster; locally its sensor asks the same function).
"""

from __future__ import annotations

import logging
from typing import Any, get_args

from jobs.config.loader import load_config
from jobs.config.monitoring import MonitoringSource
from jobs.core.errors import MissingInputError
from jobs.core.window import Window
from jobs.modeling.monitoring import monitor, record_alert
from jobs.modeling.retraining import DEFAULT_SOURCE, retraining_decision
from jobs.runtime.cli import add_run_id, add_window, base_parser, json_object, run_cli
from jobs.tablestore import open_table_store

log = logging.getLogger("runway.monitoring")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("action", choices=["monitor", "alert", "decide"])
    add_window(parser)
    add_run_id(parser)
    parser.add_argument(
        "--source",
        choices=get_args(MonitoringSource),
        default=DEFAULT_SOURCE,
        help="monitor: batch and streaming predictions, or the endpoint's inference log",
    )
    parser.add_argument("--decision", type=json_object, default={}, help="alert: the policy decision (JSON)")
    parser.add_argument("--training-run-id", default=None, help="alert: the retraining DAG run")
    args = parser.parse_args(argv)
    config = load_config(args.env)
    window = Window.parse(args.start, args.end)

    store = open_table_store(config)
    if args.action == "decide":
        decision = retraining_decision(config, store, window.end)
        if not decision["ready"]:  # exit 4: a retry may find it monitored
            raise MissingInputError(
                f"the window ending {window.end} is not monitored yet: {decision['reason']}"
            )
        log.info("retraining policy for the window ending %s: %s", window.end, decision["reason"])
        return decision
    if args.action == "alert":
        return record_alert(
            config, store, window, args.decision, run_id=args.run_id, training_run_id=args.training_run_id
        )
    return monitor(config, store, window, source=args.source, run_id=args.run_id)


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
