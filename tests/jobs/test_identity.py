"""Identity, not names: a real MLflow server with its own authentication (basic-auth) on loopback,
users and permissions as the compose stack provisions them (scripts/mlflow_auth.py). A deployer
writes only its environment's model; an approval and an audit row name whom the server
authenticated; a person not among the approvers cannot approve; a record that names an approver it
was not written by does not count."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from background import free_port, kill_group  # scripts/background.py
from mlflow_auth import provision, write_config  # scripts/mlflow_auth.py

from jobs.config.platform import MlflowSettings
from jobs.config.release import PromotionConfig
from jobs.config.traffic import TRAFFIC_TAG
from jobs.core.errors import BadInputError
from jobs.release.champion import approve, audit_trail, promote
from jobs.release.promotion import (
    APPROVED,
    COMPARED_WITH_TAG,
    DECISION_TAG,
    PROMOTE,
    VIA_AIRFLOW,
    VIA_MLFLOW,
    approval_tags,
)
from jobs.release.registry import PASSED, STATUS_TAG, ModelRegistry
from jobs.runtime.identity import Identity, mlflow_identity
from tests.support import make_config

ADMIN = ("admin", "admin-password-for-tests")
USERS = {name: f"{name}-password" for name in ("dev-deployer", "prod-deployer", "alice", "mallory")}
SOURCE = "s3://runway-tests/model"  # versions are registry entries: nothing loads them here


@pytest.fixture(autouse=True)
def credentials_kept_to_the_test(monkeypatch):
    """use_credentials exports into os.environ: each test's exports end with it (as a fresh job's)."""
    from jobs.runtime import identity

    for key in identity.CREDENTIAL_VARIABLES:
        monkeypatch.delenv(key, raising=False)  # restored after the test, as they were
    monkeypatch.setattr(identity, "_BEFORE_EXPORT", None)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """``mlflow server --app-name basic-auth`` on a free loopback port, provisioned as the compose
    stack is: dev's and prod's models and experiments each managed by their deployer only."""
    folder = tmp_path_factory.mktemp("mlflow-auth")
    env = {
        **os.environ,
        "MLFLOW_AUTH_CONFIG_PATH": str(write_config(folder)),
        "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN[1],
        "MLFLOW_FLASK_SERVER_SECRET_KEY": "runway-tests",
    }
    for key in (
        "MLFLOW_TRACKING_USERNAME",
        "MLFLOW_TRACKING_PASSWORD",
        "MLFLOW_TRACKING_URI",
        "MLFLOW_REGISTRY_URI",
    ):
        env.pop(key, None)
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--app-name",
        "basic-auth",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--backend-store-uri",
        f"sqlite:///{folder / 'mlflow.db'}",
        "--default-artifact-root",
        str(folder / "artifacts"),
    ]
    with (folder / "server.log").open("w") as log:
        process = subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            assert process.poll() is None, (folder / "server.log").read_text()[-3000:]
            try:
                if requests.get(f"{uri}/health", timeout=5).ok:
                    break
            except requests.ConnectionError:
                pass
            time.sleep(0.5)
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("MLFLOW_TRACKING_USERNAME", ADMIN[0])
            patch.setenv("MLFLOW_TRACKING_PASSWORD", ADMIN[1])
            provision(uri, USERS, {"dev": "dev-deployer", "prod": "prod-deployer"})
        yield uri
    finally:
        kill_group(process.pid)


def as_user(root: Path, env: str, uri: str, user: str, monkeypatch, **promotion):
    """``env``'s config acting on the server as ``user`` (its mlflow.username / password_env)."""
    config = make_config(root, env)
    variable = f"TEST_{user.replace('-', '_').upper()}_PASSWORD"
    monkeypatch.setenv(variable, USERS[user])
    settings = MlflowSettings(
        tracking_uri=uri, experiment=config.mlflow.experiment, username=user, password_env=variable
    )
    rules = PromotionConfig(**{**config.promotion.model_dump(), **promotion})
    return config.model_copy(update={"mlflow": settings, "promotion": rules})


def test_the_server_says_who_acts_and_refuses_credentials_that_do_not_hold(server, monkeypatch):
    for user, password in USERS.items():
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", user)
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)
        assert mlflow_identity(server) == Identity(user, True)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "nobody-we-know")
    with pytest.raises(BadInputError, match="refused the credentials of 'nobody-we-know'"):
        mlflow_identity(server)
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME")
    assert mlflow_identity(server) == Identity("unauthenticated", False)  # no credentials: nobody
    assert mlflow_identity("sqlite:///x.db") == Identity(
        "unauthenticated", False
    )  # a file authenticates nobody


def test_a_deployer_writes_only_its_own_environments_model(server, tmp_path, monkeypatch):
    prod = ModelRegistry.for_config(as_user(tmp_path, "prod", server, "prod-deployer", monkeypatch))
    version = str(prod.client.create_model_version(prod.model_name, SOURCE).version)
    prod.set_tags(version, {STATUS_TAG: PASSED})
    intruder = ModelRegistry.for_config(as_user(tmp_path, "prod", server, "dev-deployer", monkeypatch))
    assert intruder.version(version).tags[STATUS_TAG] == PASSED  # everyone reads
    for write in (
        lambda: intruder.set_alias("Champion", version),
        lambda: intruder.set_model_tag(TRAFFIC_TAG, '{"routes": []}'),
        lambda: intruder.set_tags(version, {STATUS_TAG: "FAILED"}),
    ):
        with pytest.raises(BadInputError, match="error code 403 .*'Permission denied'"):
            write()
    dev = ModelRegistry.for_config(as_user(tmp_path, "dev", server, "dev-deployer", monkeypatch))
    assert (
        dev.model_name.startswith("dev.") and dev.client.create_model_version(dev.model_name, SOURCE).version
    )


def test_approvals_and_the_audit_trail_name_the_authenticated_person(server, tmp_path, monkeypatch):
    """An environment whose approvers approve with their own MLflow login (alice may edit the
    model): mallory, authenticated but no approver, is refused; alice's approval names her, and the
    promotion's audit row names her and the deployer that moved the alias. A record the deployer
    wrote in alice's name, claiming her own login, does not count; one for a person Airflow
    authenticated does."""
    from mlflow.server import get_app_client

    from jobs.tablestore import open_table_store

    rules = {"approval": "human", "approvers": ["alice"]}
    deployer = as_user(tmp_path, "prod", server, "prod-deployer", monkeypatch, **rules)
    with monkeypatch.context() as admin:
        admin.setenv("MLFLOW_TRACKING_USERNAME", ADMIN[0])
        admin.setenv("MLFLOW_TRACKING_PASSWORD", ADMIN[1])
        auth = get_app_client("basic-auth", tracking_uri=server)
        for person in ("alice", "mallory"):
            auth.grant_user_permission(person, "registered_model", deployer.registered_model_name, "EDIT")
    registry, store = ModelRegistry.for_config(deployer), open_table_store(deployer)

    def candidate() -> str:
        champion = registry.alias_version("Champion")
        version = str(registry.client.create_model_version(registry.model_name, SOURCE).version)
        registry.set_tags(
            version, {STATUS_TAG: PASSED, DECISION_TAG: PROMOTE, COMPARED_WITH_TAG: champion or ""}
        )
        return version

    version = candidate()
    with pytest.raises(BadInputError, match="mallory is not among the approvers"):
        approve(as_user(tmp_path, "prod", server, "mallory", monkeypatch, **rules), version)
    assert "approval.status" not in registry.version(version).tags
    approved = approve(
        as_user(tmp_path, "prod", server, "alice", monkeypatch, **rules), version, reason="looked"
    )
    tags = registry.version(version).tags
    assert approved["approved_by"] == "alice" and tags["approval.via"] == VIA_MLFLOW
    assert tags["approval.by"] == tags["approval.recorded_by"] == "alice"
    moved = promote(deployer, store, "promote-1", version)
    assert (moved["approved_by"], moved["actor"]) == ("alice", "prod-deployer")
    [row] = [e for e in audit_trail(store, registry.model_name) if e["to_version"] == version]
    assert (row["approved_by"], row["actor"], row["status"]) == ("alice", "prod-deployer", "done")

    forged = candidate()
    registry.set_tags(
        forged, approval_tags(APPROVED, "alice", VIA_MLFLOW, "prod-deployer", "2026-12-03T00:00:00")
    )
    with pytest.raises(
        BadInputError, match="names alice but was recorded by prod-deployer without an authenticated approver"
    ):
        promote(deployer, store, "promote-forged", forged)
    registry.set_tags(
        forged, approval_tags(APPROVED, "alice", VIA_AIRFLOW, "prod-deployer", "2026-12-03T00:00:00")
    )
    assert promote(deployer, store, "promote-airflow", forged)["approved_by"] == "alice"


def test_an_environments_credentials_never_serve_another_and_the_callers_come_back(monkeypatch):
    """A job forked from the warm job server gets its task's variables after import: the credentials
    restored are those from before Runway exported an environment's, not those at import."""
    from jobs.runtime.identity import use_credentials

    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "task-user")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "task-password")
    monkeypatch.setenv("TEST_DEPLOYER_PASSWORD", "deployer-password")
    own = MlflowSettings(tracking_uri="http://127.0.0.1:1", experiment="/x")
    deployer = own.model_copy(update={"username": "prod-deployer", "password_env": "TEST_DEPLOYER_PASSWORD"})
    use_credentials(own)  # an environment naming none: the caller's stay
    assert os.environ["MLFLOW_TRACKING_USERNAME"] == "task-user"
    use_credentials(deployer)
    assert (os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"]) == (
        "prod-deployer",
        "deployer-password",
    )
    use_credentials(deployer)  # twice: still the caller's come back afterwards
    use_credentials(own)
    assert (os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"]) == (
        "task-user",
        "task-password",
    )
