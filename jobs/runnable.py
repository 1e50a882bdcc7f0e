"""The runnable jobs: every name ``runway_job <job>`` (``python -m jobs <job>``) accepts, each the
entry module ``jobs/<job>.py`` with a ``main(argv)``.

One definition, read by the entry point (``jobs/__main__.py``), by the DAG factories (a task
naming another job is refused when its DAG is parsed) and so by every remote payload: what a DAG
sends to a local process, a spark-submit or a Databricks run is a job this tuple names.
"""

from __future__ import annotations

JOBS = (
    "seed",
    "feature_refresh",
    "train",
    "validate_model",
    "promote",
    "batch_inference",
    "maintenance",
    "streaming_inference",
    "monitoring",
    "load_test",
    "rollout",
    "online_report",
    "knowledge_refresh",
    "build_assistant",
    "evaluate_assistant",
    "monitor_assistant",
)


class UnknownJobError(ValueError):
    """A job name no entry module answers to."""


def check_job(name: str) -> str:
    """``name`` when it is a runnable job; else one sentence naming the runnable ones."""
    if name not in JOBS:
        raise UnknownJobError(f"unknown job {name!r}: runway_job runs {', '.join(JOBS)}")
    return name
