"""Baseline for `make bench`: the Champion's own pyfunc ``predict`` on the full gold frame, in one
process, with no Spark. Prints rows, seconds and rows/s as JSON."""

from __future__ import annotations

import json
import sys
import time

from deltalake import DeltaTable

from jobs.config.loader import load_config
from jobs.modeling.estimator import model_inputs
from jobs.runtime.mlflow_setup import configure_mlflow


def main(gold_path: str, version: str) -> None:
    import mlflow

    config = load_config("dev")
    configure_mlflow(config)
    frame = model_inputs(config.use_case.model, DeltaTable(gold_path).to_pandas())
    model = mlflow.pyfunc.load_model(f"models:/{config.registered_model_name}/{version}")
    started = time.perf_counter()
    model.predict(frame)
    seconds = time.perf_counter() - started
    print(
        json.dumps(
            {"rows": len(frame), "seconds": round(seconds, 2), "rows_per_second": round(len(frame) / seconds)}
        )
    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
