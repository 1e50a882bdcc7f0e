"""Promotion as a state machine, on a real MLflow registry (sqlite) and a real Delta audit trail:
each finding of the trust issue as a sequence that failed before, and random sequences of
validate / compare / approve / promote / rollback / crash / retry checked against a small model of
what must hold after every step.

Versions here are registry entries without a fitted model: scoring is tested with real models in
test_validate_model and the training DAG; what is under test is where the aliases may move."""

from __future__ import annotations

from contextlib import contextmanager, suppress
from unittest import mock

import mlflow
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from jobs.config.platform import MlflowSettings
from jobs.config.release import PromotionConfig
from jobs.core.errors import BadInputError
from jobs.modeling.comparison import record_comparison
from jobs.modeling.validation import record_validation
from jobs.release.champion import approve, audit_trail, promote, rollback
from jobs.release.promotion import MOVE_DONE, MOVE_PENDING, Move, champion_history, rollback_target
from jobs.release.registry import CHALLENGER, FAILED, PASSED, STATUS_TAG, ModelRegistry
from tests.support import make_config

CHAMPION = "Champion"


class Crash(Exception):
    """A process killed in the middle of an alias move (injected)."""


def lifecycle_config(root, env: str = "dev", **promotion):
    config = make_config(root, env)
    mlflow_settings = MlflowSettings(
        tracking_uri=f"sqlite:///{root / 'mlflow.db'}", experiment=f"/test/{env}"
    )
    rules = PromotionConfig(**{**config.promotion.model_dump(), **promotion})
    return config.model_copy(update={"mlflow": mlflow_settings, "promotion": rules})


class Lifecycle:
    """A registered model whose versions are made, validated and compared by hand."""

    def __init__(self, config):
        from jobs.tablestore import open_table_store

        self.config = config
        self.store = open_table_store(config)  # the audit trail: Arrow commits, no Spark
        self.registry = ModelRegistry.for_config(config)
        client = self.registry.client
        with suppress(mlflow.exceptions.MlflowException):  # created by an earlier Lifecycle
            client.create_registered_model(config.registered_model_name)
        self.source = config.storage.lakehouse_root.parent / "model"
        self.source.mkdir(parents=True, exist_ok=True)

    def new_version(self) -> str:
        record = self.registry.client.create_model_version(
            self.config.registered_model_name, str(self.source)
        )
        self.registry.set_tags(record.version, {STATUS_TAG: "PENDING"})
        return str(record.version)

    def validate(self, version: str, passed: bool = True) -> None:
        record_validation(self.registry, version, [], PASSED if passed else FAILED, "enabled", "test")

    def compare(self, version: str, wins: bool = True) -> None:
        champion = self.registry.alias_version(CHAMPION)
        record_comparison(self.registry, version, "promote" if wins else "keep", champion, {})

    def candidate(self, wins: bool = True) -> str:
        version = self.new_version()
        self.validate(version)
        self.compare(version, wins)
        return version

    def champion(self) -> str | None:
        return self.registry.alias_version(CHAMPION)

    def promote(self, version: str | None = None, run_id: str = "run"):
        return promote(self.config, self.store, run_id, version)

    def rollback(self, run_id: str):
        return rollback(self.config, self.store, run_id, "on-call", "test")

    def trail(self) -> list[dict]:
        return audit_trail(self.store, self.config.registered_model_name)

    def history(self) -> list[str]:
        return champion_history(Move.from_event(e) for e in self.trail())


@pytest.fixture
def model(tmp_path):
    return Lifecycle(lifecycle_config(tmp_path))


def test_a_version_that_failed_validation_never_becomes_champion(model):
    """Finding 1: dry_run made v2 Challenger; enabled validation failed it; compare and promote
    moved Champion anyway."""
    model.promote(model.candidate())
    v2 = model.new_version()
    model.validate(v2, passed=True)  # dry_run: recorded as PASSED, becomes Challenger
    model.compare(v2)
    assert model.registry.alias_version(CHALLENGER) == v2
    model.validate(v2, passed=False)  # enabled: FAILED
    assert model.registry.alias_version(CHALLENGER) is None  # it loses the Challenger alias
    assert model.registry.tag(v2, "comparison.decision") is None  # and its comparison
    with pytest.raises(BadInputError, match="no Challenger"):
        model.promote()
    with pytest.raises(BadInputError, match=f"v{v2} is not validated .*FAILED"):
        model.promote(v2)  # also when named explicitly
    assert model.champion() == "1"


def test_a_comparison_against_an_earlier_champion_is_stale(model):
    v1 = model.candidate()
    v2 = model.candidate()  # compared while there was no Champion
    model.promote(v1)
    with pytest.raises(BadInputError, match="compared with Champion none, but the Champion is now v1"):
        model.promote(v2)
    assert model.champion() == v1


def test_rolling_back_twice_walks_back_and_never_forward(model):
    """Finding 2: promote v1, v2, v3; rollback -> v2; rollback -> v3 (should be v1)."""
    for _ in range(3):
        model.promote(model.candidate())
    assert model.champion() == "3"
    model.rollback("rb-1")
    assert model.champion() == "2"
    model.rollback("rb-2")
    assert model.champion() == "1"
    with pytest.raises(BadInputError, match="no Champion before v1"):
        model.rollback("rb-3")
    assert model.history() == ["1"]


def test_a_retried_rollback_moves_once_and_a_new_request_moves_again(model):
    for _ in range(3):
        model.promote(model.candidate())
    first = model.rollback("rb-1")
    retry = model.rollback("rb-1")  # the same Airflow run retried
    assert (first["changed"], retry["changed"], model.champion()) == (True, False, "2")
    assert model.rollback("rb-2")["to_version"] == "1"


def _record(model, version: str, person: str, via: str, recorded_by: str = "unauthenticated") -> None:
    from jobs.release.promotion import APPROVED, approval_tags

    model.registry.set_tags(version, approval_tags(APPROVED, person, via, recorded_by, "2026-12-03T00:00:00"))


def test_prod_promotes_only_a_version_an_authenticated_approver_approved(tmp_path):
    """Finding 3: `jobs.promote promote --env prod` moved Champion with approved_by=auto. Then the
    approver was a typed name (`--approved-by alice`, anyone could type it). On a store that
    authenticates nobody the CLI's approval is refused, and a record claiming an MLflow login it was
    not written by does not count; an approval Airflow authenticated (a HITL answer) does."""
    from jobs.release.promotion import VIA_AIRFLOW, VIA_MLFLOW

    model = Lifecycle(lifecycle_config(tmp_path, "prod", approvers=["alice"]))
    version = model.candidate()
    with pytest.raises(BadInputError, match="needs a person's approval"):
        model.promote(version)
    with pytest.raises(
        BadInputError, match="needs an authenticated approver, and this MLflow store authenticates nobody"
    ):
        approve(model.config, version)
    _record(model, version, "alice", VIA_MLFLOW)  # a raw tag write in alice's name
    with pytest.raises(
        BadInputError, match="names alice but was recorded by unauthenticated without an authenticated"
    ):
        model.promote(version)
    _record(model, version, "mallory", VIA_AIRFLOW)
    with pytest.raises(BadInputError, match="mallory is not among the approvers"):
        model.promote(version)
    _record(model, version, "alice", VIA_AIRFLOW)
    moved = model.promote(version)
    assert (moved["changed"], moved["approved_by"], moved["actor"], model.champion()) == (
        True,
        "alice",
        "unauthenticated",
        version,
    )


def test_a_rejected_candidate_loses_challenger_and_cannot_be_promoted(tmp_path):
    model = Lifecycle(lifecycle_config(tmp_path, "prod"))
    version = model.candidate()
    result = approve(model.config, version, reject=True, reason="not now")  # anyone may say no
    assert result["challenger_cleared"] and model.registry.alias_version(CHALLENGER) is None
    with pytest.raises(BadInputError, match="rejected"):
        model.promote(version)


def test_a_repeated_promote_is_a_no_op_that_leaves_other_versions_alone(model):
    """Finding 4: the second `promote` with the default run id said "already recorded" and deleted
    the new version's Challenger alias."""
    model.promote(model.candidate(), run_id="manual")
    v2 = model.candidate()
    again = model.promote("1", run_id="manual")
    assert again["changed"] is False and model.registry.alias_version(CHALLENGER) == v2
    moved = model.promote(run_id="manual")  # the same run id, new work: it is done
    assert moved["changed"] and model.champion() == v2


@pytest.mark.parametrize("crash_at", ["set_alias", "_tag_champion"])
def test_a_crash_mid_move_is_settled_by_the_retry(model, crash_at):
    """Finding 4: the alias moved first and the audit record after, so a crash between them left
    them disagreeing. Now the intent is written first and the next call settles it."""
    model.promote(model.candidate())
    v2 = model.candidate()
    with crashing(crash_at), pytest.raises(Crash):
        model.promote(v2, run_id="r2")
    pending = [e for e in model.trail() if e["status"] == MOVE_PENDING]
    assert [(e["from_version"], e["to_version"]) for e in pending] == [("1", v2)]
    model.promote(v2, run_id="r2")  # Airflow's retry
    assert model.champion() == v2 and model.history() == ["1", v2]
    assert not [e for e in model.trail() if e["status"] == MOVE_PENDING]


@contextmanager
def crashing(where: str):
    target = (
        "jobs.release.registry.ModelRegistry.set_alias"
        if where == "set_alias"
        else f"jobs.release.champion.{where}"
    )
    with mock.patch(target, side_effect=Crash(where)):
        yield


def test_registry_outage_fails_promotion_as_transient(model, monkeypatch):
    from jobs.release.registry import RegistryUnavailableError

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    down = model.config.model_copy(
        update={"mlflow": model.config.mlflow.model_copy(update={"tracking_uri": "http://127.0.0.1:9"})}
    )
    from jobs.modeling.comparison import compare
    from jobs.modeling.scoring import resolve_model

    for call in (
        lambda: promote(down, model.store, "run"),
        lambda: rollback(down, model.store, "run", "x", "y"),
        lambda: compare(down, model.store, "run"),
        lambda: resolve_model(down),
    ):
        with pytest.raises(RegistryUnavailableError, match="did not answer"):  # never "no Champion yet"
            call()


def test_rollback_refuses_when_the_alias_was_moved_outside_runway(model):
    for _ in range(2):
        model.promote(model.candidate())
    model.registry.set_alias(CHAMPION, "1")  # by hand in the MLflow UI
    with pytest.raises(BadInputError, match="moved outside Runway"):
        model.rollback("rb")
    assert rollback_target(["1", "2"], "2") == ("1", "")


# ---------------------------------------------------------------- random sequences


class PromotionMachine(RuleBasedStateMachine):
    """Random lifecycle operations; the reference model is the list of Champions."""

    def __init__(self):
        super().__init__()
        import tempfile
        from pathlib import Path

        self.model = Lifecycle(lifecycle_config(Path(tempfile.mkdtemp(prefix="promotion-"))))
        self.expected: list[str] = []  # the Champion history that must hold
        self.versions: list[str] = []
        self.runs = 0

    def run_id(self) -> str:
        self.runs += 1
        return f"run-{self.runs}"

    @rule(validated=st.booleans(), wins=st.booleans())
    def train_validate_compare(self, validated, wins):
        version = self.model.new_version()
        self.model.validate(version, validated)
        if validated:
            self.model.compare(version, wins)
        self.versions.append(version)

    @precondition(lambda self: self.versions)
    @rule(data=st.data())
    def revalidate_failed(self, data):
        self.model.validate(data.draw(st.sampled_from(self.versions)), passed=False)

    @precondition(lambda self: self.versions)
    @rule(data=st.data(), crash=st.sampled_from([None, "set_alias", "_tag_champion"]))
    def promote_a_version(self, data, crash):
        version = data.draw(st.sampled_from(self.versions))
        tags = self.model.registry.version(version).tags
        champion = self.expected[-1] if self.expected else None
        allowed = version == champion or (
            tags.get(STATUS_TAG) == PASSED
            and tags.get("comparison.decision") == "promote"
            and (tags.get("comparison.champion_version") or None) == champion
        )
        run_id = self.run_id()
        if crash and allowed and version != champion:
            with crashing(crash), pytest.raises(Crash):
                self.model.promote(version, run_id)
        try:
            self.model.promote(version, run_id)  # the retry, or the only try
        except BadInputError:
            assert not allowed
            return
        assert allowed
        if version != champion:
            self.expected.append(version)

    @precondition(lambda self: self.versions)
    @rule(data=st.data(), answers=st.booleans())
    def route_traffic(self, data, answers):
        """Who may take a route: the Champion, the rollback target or a version promotable now when
        the route answers; a validated version when it only shadows (the rule both doors ask)."""
        from jobs.config.traffic import SHADOW, Route, Traffic
        from jobs.release.route_rules import traffic_refusals

        version = data.draw(st.sampled_from(self.versions))
        champion = Route("champion", alias=CHAMPION, percent=90 if answers else 100)
        other = Route("x", version=version, percent=10)
        traffic = (
            Traffic((champion, other))
            if answers
            else Traffic((champion,), Route(SHADOW, version=version, percent=0))
        )
        registry = self.model.registry
        refused = version in traffic_refusals(
            self.model.config.model_target, registry, self.model.store, traffic, registry.model_state()[0]
        )
        tags = registry.version(version).tags
        if not answers:
            assert refused == (tags.get(STATUS_TAG) != PASSED)
            return
        current = self.expected[-1] if self.expected else None
        promotable = (
            tags.get(STATUS_TAG) == PASSED
            and tags.get("comparison.decision") == "promote"
            and (tags.get("comparison.champion_version") or None) == current
        )
        assert refused == (version not in self.expected[-2:] and not promotable)

    @rule(repeat=st.booleans())
    def roll_back(self, repeat):
        run_id = self.run_id()
        try:
            self.model.rollback(run_id)
        except BadInputError:
            assert len(self.expected) < 2
            return
        self.expected.pop()
        if repeat:  # a retry of the same run changes nothing
            assert self.model.rollback(run_id)["changed"] is False

    @invariant()
    def champion_is_the_top_of_the_history(self):
        assert self.model.champion() == (self.expected[-1] if self.expected else None)
        assert self.model.history() == self.expected
        assert all(e["status"] != MOVE_PENDING for e in self.model.trail())

    @invariant()
    def champion_passed_and_no_failed_challenger(self):
        champion = self.model.champion()
        challenger = self.model.registry.alias_version(CHALLENGER)
        if challenger is not None:
            assert self.model.registry.tag(challenger, STATUS_TAG) == PASSED
        if champion is not None:
            moved = [e for e in self.model.trail() if e["status"] == MOVE_DONE]
            assert moved and moved[-1]["to_version"] == champion


PromotionMachine.TestCase.settings = settings(
    max_examples=12,
    stateful_step_count=15,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
test_random_lifecycle_sequences_keep_the_invariants = PromotionMachine.TestCase
