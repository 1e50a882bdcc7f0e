"""Where batch scoring's time goes, for `make bench`: the Champion scored by the batch job's own
code path (gold read → ``score`` → Delta replaceWhere commit) in one process, three ways:

- ``free_model``: the same path with a model that costs nothing (a pandas UDF returning a constant
  with the spark_udf's output type): what Spark and the commit alone cost, first in a fresh process
  (``cold``: Python workers start) and again once they are up (``warm``);
- ``spark_udf_warm``: the Champion's ``mlflow.pyfunc.spark_udf`` once its workers have imported
  MLflow and loaded the model (the third of three passes);

all into a scratch table that is removed afterwards. Prints seconds as JSON.
"""

from __future__ import annotations

import json
import shutil
import time
from datetime import UTC, datetime

import numpy as np
import pandas as pd  # at module level: the pandas UDF's type hints are resolved in these globals


def main() -> None:
    from pyspark.sql.functions import pandas_udf

    from jobs.config.loader import load_config
    from jobs.modeling.scoring import model_udf, resolve_model, score
    from jobs.tablestore import open_table_store

    config = load_config("dev")
    store = open_table_store(config)
    features = config.use_case.features
    model = resolve_model(config)
    gold = store.read(store.name("gold", features.table))
    scratch = store.name("ml", "bench_scoring_floor")

    @pandas_udf("array<double>")
    def free_model(inputs: pd.DataFrame) -> pd.Series:
        return pd.Series(list(np.full((len(inputs), 2), 0.5)))

    rows = []

    def score_and_commit(udf) -> float:
        started = time.perf_counter()
        predictions = score(
            gold,
            model,
            udf,
            keys=features.keys,
            date_column=features.date_column,
            mode="batch",
            run_id="bench",
            scored_at=datetime.now(UTC),
        )
        commit = store.overwrite_window(
            scratch, predictions, features.date_column, "1900-01-01", "2100-01-01"
        )
        rows.append(commit.rows)
        return round(time.perf_counter() - started, 2)

    try:
        cold = score_and_commit(free_model)
        warm = min(score_and_commit(free_model) for _ in range(2))
        champion = model_udf(store.spark, model)
        spark_udf = [score_and_commit(champion) for _ in range(3)]
    finally:
        shutil.rmtree(store.path(scratch), ignore_errors=True)
    print(
        json.dumps(
            {
                "rows": rows[-1],
                "free_model": {"cold": cold, "warm": warm},
                "spark_udf": {"first": spark_udf[0], "warm": spark_udf[-1]},
            }
        )
    )


if __name__ == "__main__":
    main()
