"""Score the rows of a date interval with the Champion and replace that interval's predictions.

    python -m jobs.batch_inference --env dev --start 2013-04-01 --end 2013-04-02 --run-id <run>

Resolves ``models:/<name>@Champion`` to a concrete version once, scores the interval's gold
features and writes ``<catalog>.<ml>.predictions`` with the model name, version, run id and scoring
time. The interval's batch predictions are replaced (Delta replaceWhere), so a rerun never
duplicates and a re-score after a promotion records the new version.

How the rows are scored depends on the table engine (``--scorer auto``): on the ``local`` engine in
this process — gold read as Arrow record batches, the version's pyfunc on each, the prediction
rows built in Arrow and committed by delta-rs, no Spark at all; on the ``spark`` engine (clusters,
Databricks) with ``mlflow.pyfunc.spark_udf`` on the executors. The rows are the same either way.
"""

from __future__ import annotations

from typing import Any

from jobs.config.loader import load_config
from jobs.core.window import Window
from jobs.modeling.batch_scoring import SCORERS, chosen_scorer, score_window
from jobs.modeling.scoring import resolve_model
from jobs.runtime.cli import add_run_id, add_window, base_parser, run_cli
from jobs.tablestore import open_table_store


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = base_parser(__doc__.splitlines()[0])
    add_window(parser)
    add_run_id(parser)
    parser.add_argument("--alias", default=None, help="score with this alias (default: inference.alias)")
    parser.add_argument(
        "--scorer",
        choices=SCORERS,
        default="auto",
        help="auto: in this process on the local engine, spark_udf on the spark engine",
    )
    args = parser.parse_args(argv)
    config = load_config(args.env)
    window = Window.parse(args.start, args.end)

    store = open_table_store(config)
    if chosen_scorer(store, args.scorer) == "spark_udf":
        store.start_spark()  # the JVM starts while MLflow resolves the Champion (a missing one fails at once)

    model = resolve_model(config, args.alias)
    return score_window(config, store, window, run_id=args.run_id, model=model, scorer=args.scorer)


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
