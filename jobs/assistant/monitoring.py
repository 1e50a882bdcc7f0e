"""The assistant's monitoring run: answered questions, ratings and coverage of a window."""

from __future__ import annotations

import logging
import math
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pandas as pd

from jobs.assistant.knowledge import Embedder, latest_snapshot
from jobs.assistant.monitoring_policy import decide, uncovered_share, window_figures
from jobs.config.env import EnvConfig
from jobs.core.window import Window
from jobs.release.registry import ModelRegistry

if TYPE_CHECKING:
    from jobs.tablestore import TableStore


log = logging.getLogger("runway.monitor_assistant")

METRICS = "assistant_metrics"  # in the monitoring schema

METRICS_SCHEMA = (
    "window_start date, window_end date, metric string, value double, model_version string, "
    "run_id string, computed_at timestamp"
)

SAMPLE = 500  # questions embedded per window at most


def answered_questions(config: EnvConfig, store: TableStore, window: Window):

    table = store.name("ml", f"{config.assistant.name}_inference_log")
    columns = [
        "request_id",
        "requested_at",
        "route",
        "status",
        "model_version",
        "question",
        "no_answer",
        "top_score",
        "prompt_tokens",
        "completion_tokens",
        "cost_usd",
    ]
    if not store.exists(table):
        return pd.DataFrame(columns=columns)
    rows = store.read_pandas(table, window=("requested_at", window.start, window.end), columns=columns)
    return rows[(rows.status == 200) & (rows.route != "shadow")]


def ratings_of(config: EnvConfig, store: TableStore, request_ids):

    table = store.name("ml", f"{config.assistant.name}_feedback")
    if not store.exists(table):
        return pd.DataFrame(columns=["request_id", "rating"])
    rows = store.read_pandas(table, columns=["request_id", "rating"])
    return rows[rows.request_id.isin(set(request_ids))]


def index_versions(config: EnvConfig, store: TableStore) -> tuple[int | None, int | None]:
    """(the Champion chain's index version, the chunks table's latest snapshot)."""

    target = config.assistant_target
    registry = ModelRegistry.for_config(config, target)
    champion = registry.by_alias(target.champion_alias)
    ours = (
        int(champion.tags["assistant.index_version"])
        if champion and "assistant.index_version" in champion.tags
        else None
    )
    latest = latest_snapshot(store, store.name("gold", config.assistant.chunks_table))
    return ours, latest[0] if latest is not None else None


def monitor(config: EnvConfig, store: TableStore, window: Window, run_id: str) -> dict[str, Any]:

    answered = answered_questions(config, store, window)
    figures = window_figures(answered, ratings_of(config, store, answered.request_id))
    if len(answered):
        from jobs.assistant.gate import load_questions

        embedder = Embedder(config.assistant.embedding_model)
        sample = answered.question.sample(min(SAMPLE, len(answered)), random_state=0).tolist()
        reference = [q.question for q in load_questions(config)]
        figures["uncovered_share"] = uncovered_share(
            embedder.queries(sample),
            embedder.queries(reference),
            config.assistant.monitoring.min_question_similarity,
        )
    champion_index, latest_index = index_versions(config, store)
    decision = decide(figures, config.assistant.monitoring, champion_index, latest_index)
    present = {k: v for k, v in figures.items() if not math.isnan(v)}  # no rating yet: absent, not NaN
    _record(config, store, window, present, run_id, answered)
    log.info("assistant %s: %s (%s)", window, decision.action, "; ".join(decision.reasons) or "within limits")
    return {
        "window": str(window),
        "figures": {k: round(v, 6) for k, v in present.items()},
        **decision.as_dict(),
    }


def _record(config, store, window: Window, figures: dict[str, float], run_id: str, answered) -> None:
    """The window's figures replace its rows (a rerun writes the same)."""
    versions = ",".join(sorted(set(answered.model_version.dropna()))) or None
    rows = [
        {
            "window_start": window.start,
            "window_end": window.end,
            "metric": k,
            "value": v,
            "model_version": versions,
            "run_id": run_id,
            "computed_at": datetime.now(UTC),
        }
        for k, v in figures.items()
    ]
    store.overwrite(
        store.name("monitoring", METRICS),
        store.small_frame(rows, METRICS_SCHEMA),
        predicate=f"window_start = '{window.start}' AND window_end = '{window.end}'",
        metadata={"run_id": run_id, "job": "monitor_assistant", "window": str(window)},
    )
