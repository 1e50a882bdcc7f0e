"""Batch inference: a window of gold scored by the Champion into the predictions table."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from jobs.config.env import EnvConfig
from jobs.core.errors import MissingInputError
from jobs.core.window import Window
from jobs.modeling.scoring import (
    check_signature,
    identity_columns,
    load_pyfunc,
    resolve_model,
    score_batches,
    score_frame,
)

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import DataFrame

    from jobs.modeling.scoring import ModelRef
    from jobs.tablestore import TableStore


log = logging.getLogger("runway.batch_inference")

BATCH = "batch"

SCORERS = ("auto", "in_process", "spark_udf")

Scorer = Literal["auto", "in_process", "spark_udf"]


def predictions_table(store: TableStore, config: EnvConfig):
    return store.name("ml", config.inference.predictions_table)


def chosen_scorer(store: TableStore, scorer: Scorer) -> str:
    """``in_process`` on the local engine, ``spark_udf`` on the spark engine, unless asked."""
    if scorer != "auto":
        return scorer
    return "in_process" if store.engine == "local" else "spark_udf"


def _score_in_process(config, store, window, model, run) -> pa.Table:
    """The window's gold, batch by batch, through the version's pyfunc in this process."""

    features = config.use_case.features
    gold = store.name("gold", features.table)
    check_signature(model, store.schema(gold))  # before reading: the batches project these columns
    columns = list(
        dict.fromkeys(
            [*identity_columns(model, features.keys, features.date_column), *(n for n, _ in model.inputs)]
        )
    )
    pyfunc = load_pyfunc(model)
    batches = store.read_batches(
        gold, window=(features.date_column, window.start, window.end), columns=columns
    )
    return score_batches(batches, model, pyfunc, **run)


def _score_with_spark(config, store, window, model, run) -> DataFrame:
    """The window's gold as a Spark DataFrame through ``spark_udf`` on the executors."""

    features = config.use_case.features
    gold = store.read(
        store.name("gold", features.table), window=(features.date_column, window.start, window.end)
    )
    return score_frame(gold, model, in_process=False, **run)


def score_window(
    config: EnvConfig,
    store: TableStore,
    window: Window,
    *,
    run_id: str = "manual",
    model: ModelRef | None = None,
    scorer: Scorer = "auto",
) -> dict[str, Any]:
    """Score ``window`` with ``model`` (default: the version the config's alias points at now)."""

    features = config.use_case.features
    model = model or resolve_model(config)  # once: every row of this run is scored by this version
    run = {
        "keys": features.keys,
        "date_column": features.date_column,
        "mode": BATCH,
        "run_id": run_id,
        "scored_at": datetime.now(UTC),
    }  # when it was scored: metadata, not business time
    path = chosen_scorer(store, scorer)
    if path == "in_process":
        from jobs.modeling.scoring import load_pyfunc

        load_pyfunc(model)  # set-up, not scoring: the direct-predict baseline loads its model untimed too
    started = time.perf_counter()
    if path == "in_process":
        predictions = _score_in_process(config, store, window, model, run)
        empty = predictions.num_rows == 0
    else:
        predictions = _score_with_spark(config, store, window, model, run)  # checks the signature first
        empty = predictions.isEmpty()
    if empty:
        raise MissingInputError(f"no gold features for {window} yet: run feature refresh for it first")
    commit = store.overwrite_window(
        predictions_table(store, config),
        predictions,
        features.date_column,
        window.start,
        window.end,
        extra_predicate=f"scoring_mode = '{BATCH}'",
        metadata={
            "job": "batch_inference",
            "run_id": run_id,
            "window": str(window),
            "model": model.name,
            "model_version": model.version,
        },
    )
    seconds = time.perf_counter() - started
    log.info(
        "scored %d rows of %s with %s v%s (%s, %s) in %.1f s; %s version %d",
        commit.rows,
        window,
        model.name,
        model.version,
        model.alias,
        path,
        seconds,
        predictions_table(store, config),
        commit.version,
    )
    return {
        "table": str(predictions_table(store, config)),
        "rows": commit.rows,
        "version": commit.version,
        "model_name": model.name,
        "model_version": model.version,
        "model_run_id": model.run_id,
        "scorer": path,
        "scoring_seconds": round(seconds, 3),
    }
