"""The validation gate on a real trained version: checks recorded as tags, status, Challenger, modes."""

from __future__ import annotations

import mlflow
import pytest

from jobs.config.release import ValidationConfig
from jobs.modeling.validation import Check, performance_checks, validate_version
from jobs.release.promotion import better_or_equal
from jobs.release.registry import CHALLENGER


def test_metric_direction():
    assert better_or_equal("roc_auc", 0.70, 0.68, 0.02) and not better_or_equal("roc_auc", 0.69, 0.68, 0.02)
    assert better_or_equal("log_loss", 0.40, 0.45, 0.02) and not better_or_equal("log_loss", 0.44, 0.45, 0.02)
    assert better_or_equal("roc_auc", 0.695, 0.70, -0.01)  # within the allowed regression


def test_champion_comparison_replaces_the_baseline(dev_config):
    metrics = {"roc_auc": 0.70, "pr_auc": 0.40, "calibration_error": 0.02}
    baseline = {"roc_auc": 0.5, "pr_auc": 0.2, "calibration_error": 0.2}
    first = {c.name: c for c in performance_checks(dev_config, metrics, None, baseline)}
    assert first["performance.vs_baseline"].passed and "performance.vs_champion" not in first
    worse = {
        c.name: c for c in performance_checks(dev_config, metrics, {**metrics, "roc_auc": 0.75}, baseline)
    }
    assert not worse["performance.vs_champion"].passed
    assert Check("x", False, "why").tag() == "FAIL: why"


def with_validation(config, **changes):
    return config.model_copy(
        update={"validation": ValidationConfig(**{**config.validation.model_dump(), **changes})}
    )


@pytest.fixture
def registry(trained):
    config, result, store = trained
    client = mlflow.MlflowClient(
        tracking_uri=config.mlflow.tracking_uri, registry_uri=config.mlflow.tracking_uri
    )
    yield config, result["version"], store, client
    client.delete_registered_model_alias(config.registered_model_name, CHALLENGER)


def test_a_good_version_passes_and_becomes_challenger(registry):
    config, version, store, client = registry
    outcome = validate_version(config, store, version, run_id="validate-1")
    assert outcome["status"] == "PASSED" and outcome["failed_checks"] == {}
    record = client.get_model_version(config.registered_model_name, version)
    assert record.tags["model_validation_status"] == "PASSED"
    checks = {
        c["check"]: c
        for c in mlflow.artifacts.load_dict(f"runs:/{record.run_id}/validation/checks.json")["checks"]
    }
    assert checks["performance.vs_baseline"]["passed"]
    assert any(name.startswith("slice.site:") for name in checks)
    assert record.tags["validation.failed"] == "none" and "checks passed" in record.tags["validation.summary"]
    assert not any(k.startswith("validation.slice") for k in record.tags)  # no wall of per-check tags
    assert "Validation (enabled): PASSED" in record.description and "Trained on" in record.description
    assert client.get_model_version_by_alias(config.registered_model_name, CHALLENGER).version == int(version)


def test_failing_checks_block_in_enabled_mode_and_only_record_in_dry_run(registry):
    config, version, store, client = registry
    strict = with_validation(config, floors={"roc_auc": 0.99})
    blocked = validate_version(strict, store, version)
    assert blocked["status"] == "FAILED" and list(blocked["failed_checks"]) == ["performance.roc_auc.floor"]
    record = client.get_model_version(config.registered_model_name, version)
    assert record.tags["validation.failed"] == "performance.roc_auc.floor"
    assert "❌ performance.roc_auc.floor: roc_auc" in record.description
    assert record.description.count("Validation (") == 1  # replaced, not appended
    with pytest.raises(mlflow.exceptions.MlflowException):
        client.get_model_version_by_alias(config.registered_model_name, CHALLENGER)

    dry = validate_version(strict, store, version, mode="dry_run")
    assert dry["status"] == "PASSED" and "performance.roc_auc.floor" in dry["failed_checks"]
    assert validate_version(strict, store, version, mode="disabled") == {
        "model_name": config.registered_model_name,
        "version": version,
        "status": "PASSED",
        "mode": "disabled",
        "failed_checks": {},
        "unjudged_checks": {},
        "checks": 0,
    }


def test_a_failed_revalidation_takes_challenger_away_and_promotion_refuses(registry):
    """Finding 1 on a real model: dry_run made it Challenger, enabled failed it, promote moved it."""
    from jobs.core.errors import BadInputError
    from jobs.release.champion import promote

    config, version, store, client = registry
    strict = with_validation(config, floors={"roc_auc": 0.99})
    assert validate_version(strict, store, version, mode="dry_run")["status"] == "PASSED"
    assert client.get_model_version_by_alias(config.registered_model_name, CHALLENGER).version == int(version)
    failed = validate_version(strict, store, version, mode="enabled")
    assert failed["failed_checks"]["performance.roc_auc.floor"].endswith(
        "< floor 0.99"
    )  # says what it missed
    with pytest.raises(mlflow.exceptions.MlflowException, match="not found"):
        client.get_model_version_by_alias(config.registered_model_name, CHALLENGER)
    with pytest.raises(BadInputError, match="not validated"):
        promote(config, store, "run", version)


def test_the_validation_command_exits_3_on_failed_unless_record_only(registry, monkeypatch, tmp_path):
    from jobs.core.results import read_result
    from jobs.runtime.cli import run_cli
    from jobs.validate_model import main

    config, version, store, client = registry
    strict = with_validation(config, floors={"roc_auc": 0.99})
    monkeypatch.setattr("jobs.validate_model.load_config", lambda env=None: strict)
    monkeypatch.setattr("jobs.validate_model.open_table_store", lambda config, spark=None: store)
    monkeypatch.setenv("RUNWAY_RESULT_FILE", str(tmp_path / "result.json"))
    assert run_cli(main, ["--version", version]) == 3
    result = read_result("RUNWAY_RESULT " + (tmp_path / "result.json").read_text())
    assert "failed validation: performance.roc_auc.floor: roc_auc" in result["error"]
    assert run_cli(main, ["--version", version, "--record-only"]) == 0


def test_a_champion_fitted_on_the_held_out_days_cannot_be_compared():
    from jobs.core.window import Window
    from jobs.release.promotion import fair_comparison

    champion = {"data.window_start": "2013-01-01", "data.test_start": "2013-03-18"}
    assert fair_comparison(champion, Window.parse("2013-03-18", "2013-04-01"))  # after its fitted days
    assert fair_comparison(champion, Window.parse("2012-12-01", "2013-01-01"))  # before them
    assert not fair_comparison(champion, Window.parse("2013-02-15", "2013-03-01"))  # inside them
    assert fair_comparison({}, Window.parse("2013-02-15", "2013-03-01"))  # no lineage: nothing to judge


def test_slices_too_small_to_judge_are_reported_never_silently_dropped(registry):
    """Before: with slice_min_rows above every slice, validation passed without a word about slices."""
    config, version, store, client = registry
    blind = with_validation(config, slice_min_rows=10**9)
    outcome = validate_version(blind, store, version)
    assert outcome["status"] == "PASSED" and outcome["unjudged_checks"]
    assert all("not judged" in why and "slice_min_rows" in why for why in outcome["unjudged_checks"].values())
    record = client.get_model_version(config.registered_model_name, version)
    assert (
        record.tags["validation.unjudged"].startswith("slice.")
        and "not judged" in record.tags["validation.summary"]
    )
    assert "⚪ slice." in record.description
