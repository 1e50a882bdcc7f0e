"""The validation gate: format, performance and slice checks of a registered version."""

from __future__ import annotations

import html
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from jobs.config.env import EnvConfig
from jobs.core.window import Window
from jobs.features.gold import labelled_gold, pinned_gold_version
from jobs.modeling.estimator import classification_metrics, model_inputs
from jobs.modeling.lifecycle import decision_threshold, evaluate, load_version, predicted_proba
from jobs.release.promotion import DECISION_TAG, better_or_equal, fair_comparison
from jobs.release.registry import CHALLENGER, FAILED, PASSED, STATUS_TAG, ModelRegistry

if TYPE_CHECKING:
    import pandas as pd

    from jobs.tablestore import TableStore


log = logging.getLogger("runway.validate")


@dataclass(frozen=True)
class Check:
    """One check's outcome; an unjudged check (too few rows, one class) passes but says so."""

    name: str
    passed: bool
    detail: str
    judged: bool = True

    def tag(self) -> str:
        return f"{'PASS' if self.passed else 'FAIL'}: {self.detail}"[:4900]

    @property
    def mark(self) -> str:
        return "⚪" if not self.judged else "✅" if self.passed else "❌"


def format_checks(model, version, run_artifacts: set[str], config: EnvConfig) -> list[Check]:
    required = config.validation.required_tags
    features = {*config.use_case.model.features.categorical, *config.use_case.model.features.numeric}
    signature = model.metadata.signature
    inputs = {c.name for c in signature.inputs.inputs} if signature is not None else set()
    missing_tags = [t for t in required if not version.tags.get(t)]
    plots = {f"plots/{n}.png" for n in ("roc_curve", "pr_curve", "confusion_matrix", "feature_importance")}
    return [
        Check(
            "format.signature",
            signature is not None and features <= inputs,
            "signature covers the features" if signature is not None else "no signature",
        ),
        Check(
            "format.tags",
            not missing_tags,
            f"missing {missing_tags}" if missing_tags else "lineage tags present",
        ),
        Check("format.description", bool((version.description or "").strip()), "description present"),
        Check(
            "format.artifacts",
            plots <= run_artifacts,
            f"missing {sorted(plots - run_artifacts)}" if not plots <= run_artifacts else "plots logged",
        ),
    ]


def performance_checks(
    config: EnvConfig,
    metrics: dict[str, float],
    champion: dict[str, float] | None,
    baseline: dict[str, float],
) -> list[Check]:
    rules = config.validation
    checks = [
        Check(
            f"performance.{name}.floor",
            metrics[name] >= floor,
            f"{name} {metrics[name]:.4f} {'>=' if metrics[name] >= floor else '<'} floor {floor}",
        )
        for name, floor in rules.floors.items()
    ] + [
        Check(
            f"performance.{name}.ceiling",
            metrics[name] <= ceiling,
            f"{name} {metrics[name]:.4f} {'<=' if metrics[name] <= ceiling else '>'} ceiling {ceiling}",
        )
        for name, ceiling in rules.ceilings.items()
    ]
    metric, value = rules.metric, metrics[rules.metric]
    if champion is not None and champion.get("overlap"):
        checks.append(
            Check(
                "performance.vs_champion",
                False,
                f"the held-out window overlaps the data Champion v{champion['champion_version']} "
                "was fitted on: no fair comparison (train on a later window)",
            )
        )
    elif champion is not None:
        regression = rules.max_regression_vs_champion
        ok = better_or_equal(metric, value, champion[metric], -regression)
        checks.append(
            Check(
                "performance.vs_champion",
                ok,
                f"{metric} {value:.4f} vs Champion {champion[metric]:.4f} (may be {regression} worse)",
            )
        )
    else:
        gain = rules.min_gain_vs_baseline
        ok = better_or_equal(metric, value, baseline[metric], gain)
        checks.append(
            Check(
                "performance.vs_baseline",
                ok,
                f"{metric} {value:.4f} vs the baseline 'always negative' {baseline[metric]:.4f} (+{gain} "
                "needed)",
            )
        )
    return checks


def slice_checks(config: EnvConfig, frame: pd.DataFrame, y: np.ndarray, proba: np.ndarray) -> list[Check]:

    rules = config.validation
    checks = []
    for column in config.use_case.model.slices:
        for value, index in frame.groupby(column, dropna=False).indices.items():
            ys = y[index]
            if len(index) < rules.slice_min_rows or len(np.unique(ys)) < 2:
                why = (
                    f"{len(index)} rows < slice_min_rows {rules.slice_min_rows}"
                    if len(index) < rules.slice_min_rows
                    else f"one class only in {len(index)} rows"
                )
                checks.append(Check(f"slice.{column}:{value}", True, f"not judged: {why}", judged=False))
                continue
            score = classification_metrics(ys, proba[index], 0.5)[rules.metric]
            ok = better_or_equal(rules.metric, score, rules.slice_floor)
            checks.append(
                Check(
                    f"slice.{column}:{value}",
                    ok,
                    f"{rules.metric} {score:.4f} on {len(index)} rows (floor {rules.slice_floor})",
                )
            )
    return checks


def validate_version(
    config: EnvConfig, store: TableStore, version: str, *, mode: str | None = None, run_id: str = "manual"
) -> dict[str, Any]:
    mode = mode or config.validation.mode
    name = config.registered_model_name
    registry = ModelRegistry.for_config(config)
    record = registry.version(version)
    if mode == "disabled":
        checks: list[Check] = []
    else:
        model = load_version(config, version)
        artifacts = (
            {a.path for a in registry.client.list_artifacts(record.run_id, "plots")}
            if record.run_id
            else set()
        )
        checks = format_checks(model, record, artifacts, config)
        window = Window.parse(record.tags["data.test_start"], record.tags["data.test_end"])
        frame, _ = labelled_gold(
            store, config, window, version=pinned_gold_version(store, config, record.tags)
        )
        y = frame[config.use_case.model.label].astype(int).to_numpy()
        inputs = model_inputs(config.use_case.model, frame)
        try:
            proba = predicted_proba(model, inputs)
        except Exception as exc:  # schema enforcement or a broken model: the gate fails, it does not crash
            reason = str(exc).strip().splitlines()[-1][:300]
            checks.append(Check("format.scoring", False, f"cannot score the held-out rows: {reason}"))
        else:
            checks.append(Check("format.scoring", True, f"scored {len(inputs)} held-out rows {window}"))
            metrics = classification_metrics(y, proba, decision_threshold(model))
            champion_metrics = _champion_metrics(config, registry, version, frame, window)
            baseline = classification_metrics(
                y, np.zeros(len(y)), 0.5
            )  # always predicting the negative class
            checks += performance_checks(config, metrics, champion_metrics, baseline)
            checks += slice_checks(config, frame, y, proba)
    failed = [c for c in checks if not c.passed]
    status = FAILED if failed and mode == "enabled" else PASSED
    record_validation(registry, version, checks, status, mode, run_id)
    log.info(
        "%s v%s: validation %s (%s mode), %d of %d checks failed",
        name,
        version,
        status,
        mode,
        len(failed),
        len(checks),
    )
    for check in failed:
        log.warning("failed check %s: %s", check.name, check.detail)
    unjudged = {c.name: c.detail for c in checks if not c.judged}
    if unjudged:
        log.warning(
            "%d checks could not be judged: %s",
            len(unjudged),
            "; ".join(f"{k} ({v})" for k, v in unjudged.items()),
        )
    return {
        "model_name": name,
        "version": version,
        "status": status,
        "mode": mode,
        "failed_checks": {c.name: c.detail for c in failed},
        "unjudged_checks": unjudged,
        "checks": len(checks),
    }


def _champion_metrics(
    config: EnvConfig, registry: ModelRegistry, version: str, frame: pd.DataFrame, window: Window
) -> dict[str, Any] | None:
    """The current Champion's metrics on the same rows (None without a Champion, or when it is this
    version; ``{"overlap": True}`` when it was fitted on the held-out days)."""
    champion = registry.by_alias(config.champion_alias)
    if champion is None or str(champion.version) == str(version):
        return None
    if not fair_comparison(champion.tags, window):
        return {"overlap": True, "champion_version": str(champion.version)}
    return evaluate(load_version(config, str(champion.version)), config, frame)


def record_validation(
    registry: ModelRegistry, version: str, checks: list[Check], status: str, mode: str, run_id: str
) -> None:
    """The outcome on the version: a few summary tags (the status last), every check in the
    description and as ``validation/checks.json`` / ``.html`` on the version's run, and the
    Challenger alias following the status — a FAILED version never stays Challenger (e.g. one
    validated before in dry_run), and any comparison made before no longer counts."""
    record = registry.version(version)
    failed = [c.name for c in checks if not c.passed]
    unjudged = [c.name for c in checks if not c.judged]
    judged = len(checks) - len(unjudged)
    summary = {
        "validation.mode": mode,
        "validation.run_id": run_id,
        "validation.summary": f"{judged - len(failed)} of {judged} checks passed, {len(unjudged)} not judged",
        "validation.failed": ", ".join(failed)[:4900] or "none",
        "validation.unjudged": ", ".join(unjudged)[:4900] or "none",
    }
    # One tag per check was a wall of text in the MLflow UI; a comparison made before no longer counts.
    stale = [k for k in record.tags if k.startswith("validation.") and k not in summary]
    registry.delete_tags(version, [*stale, DECISION_TAG])
    if record.run_id:
        _log_checks(registry, record.run_id, checks, status, mode)
    registry.set_tags(version, summary)
    registry.set_tags(version, {STATUS_TAG: status})  # last: a reader of the status sees the rest
    base = (record.description or "").split("\n\nValidation")[0]
    lines = [f"- {c.mark} {c.name}: {c.detail}" for c in checks] or ["- validation disabled"]
    registry.set_description(version, f"{base}\n\nValidation ({mode}): {status}\n" + "\n".join(lines))
    if status == PASSED:
        registry.set_alias(CHALLENGER, version)
    else:
        registry.delete_alias(CHALLENGER, only_from=version)


def _log_checks(registry: ModelRegistry, run_id: str, checks: list[Check], status: str, mode: str) -> None:
    """The full check table as artifacts of the version's run (JSON for tools, HTML for people)."""

    table = [{"check": c.name, "passed": c.passed, "judged": c.judged, "detail": c.detail} for c in checks]
    registry.client.log_dict(
        run_id, {"status": status, "mode": mode, "checks": table}, "validation/checks.json"
    )
    rows = "".join(
        f"<tr><td>{c.mark}</td><td>{html.escape(c.name)}</td><td>{html.escape(c.detail)}</td></tr>"
        for c in checks
    )
    page = (
        f"<html><body><h1>Validation ({html.escape(mode)}): {html.escape(status)}</h1>"
        f"<table><tr><th></th><th>check</th><th>detail</th></tr>{rows}</table></body></html>"
    )
    registry.client.log_text(run_id, page, "validation/checks.html")
