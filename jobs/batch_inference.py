"""Score the rows of a date interval with the Champion and replace that interval's predictions.

    python -m jobs.batch_inference --env dev --start 2013-04-01 --end 2013-04-02 --run-id <run>

Reads the interval's gold features, resolves ``models:/<name>@Champion`` to a concrete version once,
scores with ``mlflow.pyfunc.spark_udf`` and writes ``<catalog>.<ml>.predictions`` with the model
name, version, run id and scoring time. The interval's batch predictions are replaced (Delta
replaceWhere), so a rerun never duplicates and a re-score after a promotion records the new version.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from jobs.common.cli import add_run_id, add_window, base_parser, run_cli
from jobs.common.config import EnvConfig, load_config
from jobs.common.errors import MissingInputError
from jobs.common.window import Window

if TYPE_CHECKING:
    from jobs.common.scoring import ModelRef
    from jobs.tablestore import TableStore

log = logging.getLogger("runway.batch_inference")

BATCH = "batch"


def predictions_table(store: TableStore, config: EnvConfig):
    return store.name("ml", config.inference.predictions_table)


def score_window(
    config: EnvConfig,
    store: TableStore,
    window: Window,
    *,
    run_id: str = "manual",
    model: ModelRef | None = None,
) -> dict[str, Any]:
    """Score ``window`` with ``model`` (default: the version the config's alias points at now)."""
    from jobs.common.scoring import model_udf, resolve_model, score

    features = config.use_case.features
    model = model or resolve_model(config)  # once: every row of this run is scored by this version
    gold = store.read(
        store.name("gold", features.table), window=(features.date_column, window.start, window.end)
    )
    started = time.perf_counter()
    predictions = score(  # checks the signature against gold's columns first
        gold,
        model,
        model_udf(store.spark, model),
        keys=features.keys,
        date_column=features.date_column,
        mode=BATCH,
        run_id=run_id,
        scored_at=datetime.now(UTC),  # when it was scored: metadata, not business time
    )
    if gold.isEmpty():
        raise MissingInputError(f"no gold features for {window} yet: run feature refresh for it first")
    commit = store.overwrite_window(
        predictions_table(store, config),
        predictions,
        features.date_column,
        window.start,
        window.end,
        extra_predicate=f"scoring_mode = '{BATCH}'",
        metadata={"job": "batch_inference", "run_id": run_id, "window": str(window),
                  "model": model.name, "model_version": model.version},
    )  # fmt: skip
    seconds = time.perf_counter() - started
    log.info(
        "scored %d rows of %s with %s v%s (%s) in %.1f s; %s version %d",
        commit.rows, window, model.name, model.version, model.alias, seconds,
        predictions_table(store, config), commit.version,
    )  # fmt: skip
    return {
        "table": str(predictions_table(store, config)),
        "rows": commit.rows,
        "version": commit.version,
        "model_name": model.name,
        "model_version": model.version,
        "model_run_id": model.run_id,
        "scoring_seconds": round(seconds, 3),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = base_parser(__doc__.splitlines()[0])
    add_window(parser)
    add_run_id(parser)
    parser.add_argument("--alias", default=None, help="score with this alias (default: inference.alias)")
    args = parser.parse_args(argv)
    config = load_config(args.env)
    window = Window.parse(args.start, args.end)
    from jobs.tablestore import open_table_store

    store = open_table_store(config)
    store.start_spark()  # the JVM starts while MLflow resolves the Champion (a missing one fails at once)
    from jobs.common.scoring import resolve_model

    model = resolve_model(config, args.alias)
    return score_window(config, store, window, run_id=args.run_id, model=model)


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
