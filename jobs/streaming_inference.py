"""Score the streaming source's new events with the Champion as their files land, exactly once.

    python -m jobs.streaming_inference --env dev --available-now   # drain what has landed, stop
    python -m jobs.streaming_inference --env dev [--run-seconds N]  # continuous, 1 s micro-batches

A Spark Structured Streaming query over ``inference.streaming.landing_dir`` (JSON lines). Each
micro-batch is parsed and typed like the source's silver rows, enriched by the use case's feature
SQL against the static silver tables (weather at the scheduled hour, the plane), scored with the
version ``Champion`` points at *now* (so a promotion applies from the next micro-batch, no restart),
and appended to ``<catalog>.<ml>.predictions`` under a Delta application transaction keyed by the
query id and the batch id. With the checkpoint, a crash and restart neither loses nor duplicates a
prediction. Malformed events (bad JSON, missing or mistyped fields) go to
``<catalog>.<silver>.quarantine`` with the reason; the stream keeps running.
"""

from __future__ import annotations

from typing import Any

from jobs.config.loader import load_config
from jobs.modeling.scoring import resolve_model
from jobs.modeling.streaming_scoring import run_stream
from jobs.runtime.cli import base_parser, run_cli
from jobs.tablestore import open_table_store


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--available-now", action="store_true", help="drain the landed files, then stop")
    parser.add_argument("--run-seconds", type=float, default=None, help="continuous: stop after this long")
    parser.add_argument(
        "--trigger-seconds", type=float, default=None, help="continuous: micro-batch interval"
    )
    parser.add_argument(
        "--max-files-per-trigger", type=int, default=None, help="files per micro-batch at most"
    )
    args = parser.parse_args(argv)
    config = load_config(args.env)
    # Its own in-process session, not a warm server's: foreachBatch keeps the query's state (counts,
    # the model in use, errors) in this process, and a long-running query pays its JVM start once.
    config = config.model_copy(update={"compute": config.compute.model_copy(update={"spark_remote": None})})

    store = open_table_store(config)
    store.start_spark()  # the JVM starts while MLflow resolves the Champion
    resolve_model(config)  # fail at once, in one sentence, when there is no Champion yet
    return run_stream(
        config,
        store,
        available_now=args.available_now,
        run_seconds=args.run_seconds,
        trigger_seconds=args.trigger_seconds,
        max_files_per_trigger=args.max_files_per_trigger,
    )


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
