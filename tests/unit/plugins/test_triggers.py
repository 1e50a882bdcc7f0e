"""Each deferrable trigger serializes to what rebuilds the same trigger (what the triggerer does)."""

from __future__ import annotations

import importlib

import pytest

from triggers.mlflow_registry import ModelVersionTagTrigger
from triggers.monitoring import DriftPolicyTrigger
from triggers.rollout import CanaryStepTrigger

TRIGGERS = [
    ModelVersionTagTrigger(
        model_name="dev.ml.m",
        version="3",
        tag_key="status",
        target_values=["PASSED"],
        failure_values=["FAILED"],
        tracking_uri="sqlite:///x.db",
        registry_uri=None,
        poke_interval=5.0,
        timeout=60.0,
    ),
    DriftPolicyTrigger(runway_env="dev", window_end="2013-03-01", poke_interval=5.0, timeout=60.0),
    CanaryStepTrigger(
        runway_env="prod",
        since="2026-12-03T10:00:00+00:00",
        candidate="7",
        phase="canary",
        hold_seconds=30.0,
        poke_interval=5.0,
        timeout=600.0,
    ),
]


@pytest.mark.parametrize("trigger", TRIGGERS, ids=lambda t: type(t).__name__)
def test_a_trigger_rebuilt_from_its_serialization_is_the_same(trigger):
    classpath, kwargs = trigger.serialize()
    module, _, name = classpath.rpartition(".")
    rebuilt = getattr(importlib.import_module(module), name)(**kwargs)
    assert type(rebuilt) is type(trigger) and rebuilt.serialize() == (classpath, kwargs)
    assert kwargs["poke_interval"] == trigger.poke_interval and kwargs["timeout"] == trigger.timeout
