"""Train the use case's model on a window of gold features, track it in MLflow and register it.

    python -m jobs.train --env dev --end 2013-04-01 [--start 2013-01-01] \
        --run-id <orchestrator run> --dag-id dev_training --reason schedule

The window ends at ``--end`` (exclusive; default start: ``training.window_days`` before it). It is
split by time into train | validation | test; the test days are held out for the validation gate.
The run logs parameters, validation and test metrics, plots, the model with its signature and
input example, and lineage (Delta versions read, data windows, git commit, dag and run ids, the
trigger reason). The new version of ``<catalog>.<ml schema>.<model>`` is tagged
``model_validation_status=PENDING``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from jobs.config.loader import load_config
from jobs.config.use_case import TRAINING_REASONS
from jobs.core.window import Window
from jobs.modeling.train import train
from jobs.runtime.cli import add_run_id, base_parser, iso_date, json_object, run_cli
from jobs.tablestore import open_table_store


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument(
        "--end", required=True, type=iso_date, help="day after the window's last day (YYYY-MM-DD)"
    )
    parser.add_argument(
        "--start", type=iso_date, default=None, help="first day (default: training.window_days before --end)"
    )
    add_run_id(parser)
    parser.add_argument("--dag-id", default="manual")
    parser.add_argument("--reason", default="manual", choices=TRAINING_REASONS)
    parser.add_argument(
        "--params", type=json_object, default=None, help="JSON of estimator hyperparameters overriding config"
    )
    args = parser.parse_args(argv)
    config = load_config(args.env)
    end = args.end
    start = args.start or end - timedelta(days=config.use_case.model.training.window_days)

    store = open_table_store(config)  # the local engine reads gold into pandas without Spark
    params = args.params
    return train(
        config,
        store,
        Window(start, end),
        run_id=args.run_id,
        dag_id=args.dag_id,
        reason=args.reason,
        params=params,
    )


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
