"""Traffic changes through ``jobs.rollout`` on a real registry and a real audit table: refused
when they name what does not exist, idempotent, and settled after a crash at either step."""

from __future__ import annotations

import json

import pytest

from jobs.common.audit import audit_trail
from jobs.common.errors import BadInputError
from jobs.common.registry import ModelRegistry
from jobs.common.traffic import TRAFFIC_TAG, Traffic
from jobs.rollout import set_traffic, traffic_in_force


def _traffic(version: str, percent: float = 10) -> Traffic:
    return Traffic.from_dict({"routes": [{"name": "champion", "alias": "Champion", "percent": 100 - percent},
                                         {"name": "candidate", "version": version, "percent": percent}]})  # fmt: skip


def test_traffic_changes_are_checked_audited_and_settled_after_a_crash(champion, monkeypatch):
    config, result, store, _ = champion
    registry = ModelRegistry.for_config(config)
    name, version = config.registered_model_name, result["version"]
    assert traffic_in_force(config, registry) == config.configured_traffic()  # no tag: the config's

    with pytest.raises(BadInputError, match="has no version 999 \\(route candidate\\)"):
        set_traffic(config, store, _traffic("999"), requested_by="ann", reason="", run_id="r0")
    with pytest.raises(BadInputError, match="--requested-by is required"):
        set_traffic(config, store, _traffic(version), requested_by="", reason="", run_id="r0")
    assert audit_trail(store, name, ("traffic",)) == [] and TRAFFIC_TAG not in registry.model_state()[1]

    # A crash after the intent, before the tag: the next change settles it as abandoned.
    real_set = ModelRegistry.set_model_tag
    monkeypatch.setattr(
        ModelRegistry, "set_model_tag", lambda self, key, value: (_ for _ in ()).throw(OSError("gone"))
    )
    with pytest.raises(OSError):
        set_traffic(config, store, _traffic(version, 10), requested_by="ann", reason="canary", run_id="r1")

    # A crash after the tag, before the settled record: the next change settles it as done.
    def tag_then_crash(self, key, value):
        real_set(self, key, value)
        raise OSError("killed after the tag")

    monkeypatch.setattr(ModelRegistry, "set_model_tag", tag_then_crash)
    with pytest.raises(OSError):
        set_traffic(config, store, _traffic(version, 25), requested_by="ann", reason="canary", run_id="r2")
    monkeypatch.setattr(ModelRegistry, "set_model_tag", real_set)
    assert traffic_in_force(config, registry) == _traffic(version, 25)  # the tag arrived before the crash
    outcome = set_traffic(
        config, store, _traffic(version, 50), requested_by="bob", reason="step", run_id="r3"
    )
    again = set_traffic(config, store, _traffic(version, 50), requested_by="bob", reason="retry", run_id="r3")
    assert outcome["changed"] and not again["changed"]
    events = {e["run_id"]: e for e in audit_trail(store, name, ("traffic",))}
    assert {r: e["status"] for r, e in events.items()} == {"r1": "abandoned", "r2": "done", "r3": "done"}
    assert events["r3"]["from_version"] == _traffic(version, 25).describe()
    assert json.loads(events["r3"]["metrics"])["to"] == _traffic(version, 50).as_dict()
    assert events["r3"]["approved_by"] == "bob"

    from jobs.promote import audit_trail as alias_moves  # promotion's history never sees traffic events

    assert all(e["action"] != "traffic" for e in alias_moves(store, name))
    registry.client.delete_registered_model_tag(name, TRAFFIC_TAG)  # the config's traffic again


def test_a_candidate_meets_no_traffic_before_the_promotion_rules_hold(champion):
    """The deployment DAG's first task: validated, compared with the Champion of the moment, and in
    an environment that requires it, approved by a person."""
    from jobs.common.promotion import COMPARED_WITH_TAG, DECISION_TAG, PROMOTE
    from jobs.common.registry import PASSED, STATUS_TAG
    from jobs.promote import approve, check_promotable

    config, result, _, client = champion
    name, current = config.registered_model_name, result["version"]
    source = client.get_model_version(name, current)
    candidate = str(client.create_model_version(name, source.source, run_id=source.run_id).version)
    human = config.model_copy(update={"promotion": config.promotion.model_copy(update={"approval": "human"})})
    with pytest.raises(BadInputError, match=f"v{candidate} is not validated"):
        check_promotable(human, candidate)
    for key, value in {STATUS_TAG: PASSED, DECISION_TAG: PROMOTE, COMPARED_WITH_TAG: current}.items():
        client.set_model_version_tag(name, candidate, key, value)
    with pytest.raises(
        BadInputError, match="needs a person's approval.*gets no traffic before it may be promoted"
    ):
        check_promotable(human, candidate)
    assert check_promotable(config, candidate)["promotable"]  # dev: no approval required
    approve(human, candidate, "alice", reason="looked at the comparison")
    assert check_promotable(human, candidate) == {"version": candidate, "champion": current, "promotable": True,
                                                  "approved_by": "alice"}  # fmt: skip
    assert check_promotable(human, current)["promotable"]  # the Champion itself: nothing to refuse
