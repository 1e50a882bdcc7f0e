"""The Challenger's comparison with the Champion on the same labelled window."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from jobs.config.env import EnvConfig
from jobs.core.errors import BadInputError
from jobs.core.window import Window
from jobs.features.gold import labelled_gold, pinned_gold_version
from jobs.modeling.lifecycle import evaluate, load_version
from jobs.release.promotion import COMPARED_WITH_TAG, DECISION_TAG, better_or_equal, fair_comparison
from jobs.release.registry import CHALLENGER, PASSED, STATUS_TAG, ModelRegistry
from jobs.runtime.mlflow_setup import configure_mlflow

if TYPE_CHECKING:
    from jobs.tablestore import TableStore
import mlflow

from jobs.release.champion import log

COMPARISONS = "model_comparisons"

COMPARISON_SCHEMA = (
    "comparison_id string, compared_at timestamp, model_name string, challenger_version string, "
    "champion_version string, metric string, challenger_value double, champion_value double, "
    "min_improvement double, window_start date, window_end date, decision string, run_id string, metrics "
    "string"
)


def compare(config: EnvConfig, store: TableStore, run_id: str) -> dict[str, Any]:

    name, rules = config.registered_model_name, config.promotion
    registry = ModelRegistry.for_config(config)
    challenger = registry.by_alias(CHALLENGER)
    if challenger is None:
        raise BadInputError(f"{name} has no {CHALLENGER}: validate a version first")
    if challenger.tags.get(STATUS_TAG) != PASSED:
        raise BadInputError(
            f"{name} v{challenger.version} is {CHALLENGER} but its {STATUS_TAG} is "
            f"{challenger.tags.get(STATUS_TAG)}: validate it again"
        )
    champion = registry.by_alias(config.champion_alias)
    window = Window.parse(challenger.tags["data.test_start"], challenger.tags["data.test_end"])
    if champion is not None and not fair_comparison(champion.tags, window):
        raise BadInputError(
            f"{name} v{challenger.version}'s held-out window {window} overlaps the data Champion "
            f"v{champion.version} was fitted on: no fair comparison"
        )
    # One read at the gold version training recorded: both models scored on the same rows.
    frame, _ = labelled_gold(
        store, config, window, version=pinned_gold_version(store, config, challenger.tags)
    )
    ours = evaluate(load_version(config, str(challenger.version)), config, frame)
    theirs = (
        evaluate(load_version(config, str(champion.version)), config, frame) if champion is not None else None
    )
    wins = theirs is None or better_or_equal(
        rules.metric, ours[rules.metric], theirs[rules.metric], rules.min_improvement
    )
    decision = "promote" if wins else "keep"
    result = {
        "model_name": name,
        "challenger_version": str(challenger.version),
        "champion_version": str(champion.version) if champion is not None else None,
        "metric": rules.metric,
        "challenger_value": ours[rules.metric],
        "champion_value": theirs[rules.metric] if theirs else None,
        "decision": decision,
        "window": str(window),
    }
    experiment_id = configure_mlflow(config)
    with mlflow.start_run(
        experiment_id=experiment_id,
        run_name=f"compare v{challenger.version} vs Champion",
        tags={"airflow.run_id": run_id},
    ):
        mlflow.log_metrics({f"challenger_{k}": v for k, v in ours.items()})
        if theirs:
            mlflow.log_metrics({f"champion_{k}": v for k, v in theirs.items()})
        mlflow.log_params(
            {
                "decision": decision,
                "challenger_version": challenger.version,
                "champion_version": result["champion_version"],
                "min_improvement": rules.min_improvement,
            }
        )
    record_comparison(
        registry,
        str(challenger.version),
        decision,
        result["champion_version"],
        {f"comparison.{rules.metric}": f"{ours[rules.metric]:.4f}"},
    )
    row = {
        "comparison_id": f"{run_id}:{challenger.version}",
        "compared_at": datetime.now(UTC),
        "model_name": name,
        "challenger_version": str(challenger.version),
        "champion_version": result["champion_version"],
        "metric": rules.metric,
        "challenger_value": ours[rules.metric],
        "champion_value": result["champion_value"],
        "min_improvement": rules.min_improvement,
        "window_start": window.start,
        "window_end": window.end,
        "decision": decision,
        "run_id": run_id,
        "metrics": json.dumps({"challenger": ours, "champion": theirs}),
    }
    table = store.name("ml", COMPARISONS)
    store.merge(
        table, store.small_frame([row], COMPARISON_SCHEMA), ["comparison_id"], metadata={"run_id": run_id}
    )
    log.info(
        "compare %s v%s vs Champion %s on %s: %s",
        name,
        challenger.version,
        result["champion_version"],
        window,
        decision,
    )
    return result


def record_comparison(
    registry: ModelRegistry, version: str, decision: str, champion: str | None, metrics: dict[str, str]
) -> None:
    """The comparison's outcome on the Challenger: the decision and the Champion it was made against
    (a promotion checks that this is still the Champion)."""
    registry.set_tags(version, {**metrics, COMPARED_WITH_TAG: champion or ""})
    registry.set_tags(version, {DECISION_TAG: decision})  # last: the decision stands on the rest
