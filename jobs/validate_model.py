"""The validation gate: check a registered model version before it may challenge the Champion.

    python -m jobs.validate_model --env dev --version 3 [--mode dry_run] --run-id <run>

Checks, each recorded as a version tag ``validation.<check>`` and in the version's description:
- format: the model loads by URI, has a signature covering the configured features, carries the
  lineage tags and a description, and its run logged the evaluation plots;
- performance on the version's held-out test window (from its lineage): metric floors and
  ceilings; against the current ``Champion`` on the same rows (at most ``max_regression_vs_champion``
  worse) or, with no Champion yet, against the business baseline "every flight on time";
- slices: each value of the configured slice columns (carrier, origin) with enough rows reaches
  ``slice_floor``.

``model_validation_status`` becomes PASSED or FAILED and a passing version gets the ``Challenger``
alias. Modes: ``enabled`` blocks on failure; ``dry_run`` records the checks but passes; ``disabled``
passes without checking.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

import numpy as np

from jobs.common.cli import Window, add_run_id, base_parser, run_cli
from jobs.common.config import EnvConfig, load_config
from jobs.common.lifecycle import (
    decision_threshold,
    evaluate,
    labelled_gold,
    load_version,
    mlflow_client,
    predicted_proba,
    version_by_alias,
)
from jobs.common.modeling import classification_metrics, model_inputs

if TYPE_CHECKING:
    import pandas as pd

    from jobs.tablestore import TableStore

log = logging.getLogger("runway.validate")

STATUS_TAG = "model_validation_status"
PASSED, FAILED = "PASSED", "FAILED"
CHAMPION, CHALLENGER = "Champion", "Challenger"
LOWER_IS_BETTER = {"log_loss", "calibration_error"}


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str

    def tag(self) -> str:
        return f"{'PASS' if self.passed else 'FAIL'}: {self.detail}"[:4900]


def better_or_equal(metric: str, value: float, reference: float, margin: float = 0.0) -> bool:
    """``value`` is at least ``reference + margin`` (or at most ``reference - margin`` when lower is better)."""
    tolerance = 1e-9  # a value exactly at the boundary passes despite float rounding
    if metric in LOWER_IS_BETTER:
        return value <= reference - margin + tolerance
    return value >= reference + margin - tolerance


def format_checks(model, version, run_artifacts: set[str], config: EnvConfig) -> list[Check]:
    required = config.validation.required_tags
    features = {*config.use_case.model.features.categorical, *config.use_case.model.features.numeric}
    signature = model.metadata.signature
    inputs = {c.name for c in signature.inputs.inputs} if signature is not None else set()
    missing_tags = [t for t in required if not version.tags.get(t)]
    plots = {f"plots/{n}.png" for n in ("roc_curve", "pr_curve", "confusion_matrix", "feature_importance")}
    return [
        Check("format.signature", signature is not None and features <= inputs,
              "signature covers the features" if signature is not None else "no signature"),
        Check("format.tags", not missing_tags, f"missing {missing_tags}" if missing_tags else "lineage tags present"),
        Check("format.description", bool((version.description or "").strip()), "description present"),
        Check("format.artifacts", plots <= run_artifacts, f"missing {sorted(plots - run_artifacts)}" if not plots <= run_artifacts else "plots logged"),
    ]  # fmt: skip


def performance_checks(
    config: EnvConfig,
    metrics: dict[str, float],
    champion: dict[str, float] | None,
    baseline: dict[str, float],
) -> list[Check]:
    rules = config.validation
    checks = [
        Check(f"performance.{name}.floor", metrics[name] >= floor, f"{name} {metrics[name]:.4f} >= {floor}")
        for name, floor in rules.floors.items()
    ] + [
        Check(
            f"performance.{name}.ceiling",
            metrics[name] <= ceiling,
            f"{name} {metrics[name]:.4f} <= {ceiling}",
        )
        for name, ceiling in rules.ceilings.items()
    ]
    metric, value = rules.metric, metrics[rules.metric]
    if champion is not None and champion.get("overlap"):
        checks.append(Check("performance.vs_champion", False,
                            f"the held-out window overlaps the data Champion v{champion['champion_version']} "
                            "was fitted on: no fair comparison (train on a later window)"))  # fmt: skip
    elif champion is not None:
        regression = rules.max_regression_vs_champion
        ok = better_or_equal(metric, value, champion[metric], -regression)
        checks.append(Check("performance.vs_champion", ok,
                            f"{metric} {value:.4f} vs Champion {champion[metric]:.4f} (may be {regression} worse)"))  # fmt: skip
    else:
        gain = rules.min_gain_vs_baseline
        ok = better_or_equal(metric, value, baseline[metric], gain)
        checks.append(Check("performance.vs_baseline", ok,
                            f"{metric} {value:.4f} vs 'every flight on time' {baseline[metric]:.4f} (+{gain} needed)"))  # fmt: skip
    return checks


def slice_checks(config: EnvConfig, frame: pd.DataFrame, y: np.ndarray, proba: np.ndarray) -> list[Check]:
    from jobs.common.modeling import classification_metrics

    rules = config.validation
    checks = []
    for column in config.use_case.model.slices:
        for value, index in frame.groupby(column, dropna=False).indices.items():
            ys = y[index]
            if len(index) < rules.slice_min_rows or len(np.unique(ys)) < 2:
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
    client = mlflow_client(config)
    record = client.get_model_version(name, version)
    if mode == "disabled":
        checks: list[Check] = []
    else:
        model = load_version(config, version)
        artifacts = (
            {a.path for a in client.list_artifacts(record.run_id, "plots")} if record.run_id else set()
        )
        checks = format_checks(model, record, artifacts, config)
        window = Window.parse(record.tags["data.test_start"], record.tags["data.test_end"])
        frame, _ = labelled_gold(store, config, window)
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
            champion_metrics = _champion_metrics(config, client, version, frame, window)
            baseline = classification_metrics(y, np.zeros(len(y)), 0.5)  # "every flight on time"
            checks += performance_checks(config, metrics, champion_metrics, baseline)
            checks += slice_checks(config, frame, y, proba)
    failed = [c for c in checks if not c.passed]
    status = FAILED if failed and mode == "enabled" else PASSED
    _record(client, name, version, record, checks, status, mode, run_id)
    if status == PASSED:
        client.set_registered_model_alias(name, CHALLENGER, version)
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
    return {"model_name": name, "version": version, "status": status, "mode": mode,
            "failed_checks": {c.name: c.detail for c in failed}, "checks": len(checks)}  # fmt: skip


def fair_comparison(champion_tags: dict[str, str], held_out: Window) -> bool:
    """False when the Champion was fitted on days of the held-out window (it would look better than
    it is): its training and validation days end where its own test window starts."""
    start, fitted_until = champion_tags.get("data.window_start"), champion_tags.get("data.test_start")
    if not (start and fitted_until):
        return True
    return held_out.start >= date.fromisoformat(fitted_until) or held_out.end <= date.fromisoformat(start)


def _champion_metrics(
    config: EnvConfig, client, version: str, frame: pd.DataFrame, window: Window
) -> dict[str, Any] | None:
    """The current Champion's metrics on the same rows (None without a Champion, or when it is this
    version; ``{"overlap": True}`` when it was fitted on the held-out days)."""
    champion = version_by_alias(client, config.registered_model_name, CHAMPION)
    if champion is None or str(champion.version) == str(version):
        return None
    if not fair_comparison(champion.tags, window):
        return {"overlap": True, "champion_version": str(champion.version)}
    return evaluate(load_version(config, str(champion.version)), config, frame)


def _record(
    client, name: str, version: str, record, checks: list[Check], status: str, mode: str, run_id: str
) -> None:
    for check in checks:
        key = re.sub(r"[^A-Za-z0-9_\-. :/]", "_", f"validation.{check.name}")  # MLflow's tag-name alphabet
        client.set_model_version_tag(name, version, key, check.tag())
    client.set_model_version_tag(name, version, "validation.mode", mode)
    client.set_model_version_tag(name, version, "validation.run_id", run_id)
    client.set_model_version_tag(name, version, STATUS_TAG, status)
    base = (record.description or "").split("\n\nValidation")[0]
    lines = [f"- {'✅' if c.passed else '❌'} {c.name}: {c.detail}" for c in checks] or [
        "- validation disabled"
    ]
    client.update_model_version(
        name, version, description=f"{base}\n\nValidation ({mode}): {status}\n" + "\n".join(lines)
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--version", required=True, help="the registered model version to validate")
    parser.add_argument(
        "--mode", choices=["disabled", "dry_run", "enabled"], default=None, help="default: config"
    )
    add_run_id(parser)
    args = parser.parse_args(argv)
    config = load_config(args.env)
    from jobs.tablestore import open_table_store

    store = open_table_store(config)
    return validate_version(config, store, args.version, mode=args.mode, run_id=args.run_id)


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
