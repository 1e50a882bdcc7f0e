"""Per-environment configs: valid as shipped, and bad ones fail naming the file and the key."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from jobs.config.base import ENVIRONMENTS, ConfigError
from jobs.config.loader import deployed_envs, load_config
from jobs.core.paths import config_dir
from tests.conftest import TEST_USE_CASE
from tests.support import edit_yaml


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_shipped_configs_are_valid(env):
    config = load_config(env)
    assert config.env == env and config.catalog == env
    assert config.registered_model_name == f"{env}.ml.tiny_classifier"
    assert config.access.write_catalog == env
    assert config.mlflow.experiment == f"/runway/{env}/tiny"
    assert config.airflow.retries >= 2


def test_environments_differ_where_they_should():
    dev, staging, prod = (load_config(e) for e in ENVIRONMENTS)
    assert staging.sample_fraction < 1 == dev.sample_fraction == prod.sample_fraction
    assert "prod" in dev.access.read_catalogs and prod.access.read_catalogs == ["prod"]


@pytest.fixture
def config_copy(tmp_path, monkeypatch) -> Path:
    """A copy of the platform configs, with a copy of the test use case selected."""
    target = tmp_path / "configs"
    shutil.copytree(config_dir(), target)
    shutil.copytree(TEST_USE_CASE, tmp_path / "use_case")
    monkeypatch.setenv("RUNWAY_USE_CASE", str(tmp_path / "use_case"))
    return target


@pytest.fixture
def use_case_file(config_copy) -> Path:
    return config_copy.parent / "use_case" / "use_case.yaml"


def test_unknown_key_names_file_and_key(config_copy):
    edit_yaml(
        config_copy / "dev.yaml",
        lambda t: (
            t["storage"].update({"lakehouse_rot": "/x"})
            if "storage" in t
            else t.update({"storage": {"lakehouse_rot": "/x"}})
        ),
    )
    with pytest.raises(ConfigError, match=r"dev\.yaml: storage\.lakehouse_rot: unknown key"):
        load_config("dev", config_copy)


def test_wrong_type_names_file_and_key(config_copy):
    edit_yaml(config_copy / "staging.yaml", lambda t: t.update({"sample_fraction": "a quarter"}))
    with pytest.raises(ConfigError, match=r"staging\.yaml: sample_fraction: .*number"):
        load_config("staging", config_copy)


def test_wrong_type_in_the_use_case_names_that_file(config_copy, use_case_file):
    edit_yaml(
        use_case_file, lambda t: t["use_case"]["sources"]["readings"]["columns"].update({"hour": "integer"})
    )
    with pytest.raises(ConfigError, match=r"use_case\.yaml: use_case\.sources\.readings\.columns\.hour"):
        load_config("dev", config_copy)


def test_missing_value_names_the_environment_file(config_copy):
    edit_yaml(config_copy / "prod.yaml", lambda t: t.pop("catalog"))
    with pytest.raises(ConfigError, match=r"prod\.yaml: catalog: missing value"):
        load_config("prod", config_copy)


def test_writing_another_catalog_is_rejected(config_copy):
    edit_yaml(config_copy / "dev.yaml", lambda t: t["access"].update({"write_catalog": "prod"}))
    with pytest.raises(ConfigError, match="write_catalog must be the environment's own catalog 'dev'"):
        load_config("dev", config_copy)


def test_bad_yaml_and_unknown_environment(config_copy):
    (config_copy / "dev.yaml").write_text("env: dev\n  catalog: [oops\n")
    with pytest.raises(ConfigError, match=r"dev\.yaml: not valid YAML"):
        load_config("dev", config_copy)
    with pytest.raises(ConfigError, match="unknown environment 'qa'"):
        load_config("qa", config_copy)


def test_environment_variables_are_interpolated(config_copy, monkeypatch):
    edit_yaml(
        config_copy / "dev.yaml",
        lambda t: t.update({"mlflow": {"experiment": "${EXPERIMENT_NAME:-/fallback}"}}),
    )
    assert load_config("dev", config_copy).mlflow.experiment == "/fallback"
    monkeypatch.setenv("EXPERIMENT_NAME", "/from-env")
    from jobs.config import loader as module

    module._load.cache_clear()
    assert load_config("dev", config_copy).mlflow.experiment == "/from-env"


def test_unset_variable_without_default_is_an_error(config_copy, monkeypatch):
    monkeypatch.delenv("RUNWAY_NOT_SET", raising=False)
    edit_yaml(config_copy / "dev.yaml", lambda t: t.update({"catalog": "${RUNWAY_NOT_SET}"}))
    with pytest.raises(
        ConfigError, match=r"dev\.yaml: catalog: environment variable \$\{RUNWAY_NOT_SET\} is not set"
    ):
        load_config("dev", config_copy)


def test_deployed_environments(monkeypatch):
    monkeypatch.setenv("RUNWAY_ENV", "staging")
    monkeypatch.delenv("RUNWAY_DAG_ENVS", raising=False)
    assert deployed_envs() == ["staging"]
    monkeypatch.setenv("RUNWAY_DAG_ENVS", "all")
    assert deployed_envs() == ["dev", "staging", "prod"]
    monkeypatch.setenv("RUNWAY_DAG_ENVS", "dev, prod")
    assert deployed_envs() == ["dev", "prod"]
    monkeypatch.setenv("RUNWAY_DAG_ENVS", "dev,qa")
    with pytest.raises(ConfigError, match="unknown environments"):
        deployed_envs()


def test_compute_mode_follows_its_variable_without_a_stale_cache(monkeypatch):
    monkeypatch.delenv("RUNWAY_COMPUTE", raising=False)
    assert load_config("prod").compute.kind == "local"
    monkeypatch.setenv("RUNWAY_COMPUTE", "databricks")
    databricks = load_config("prod")
    assert databricks.compute.kind == "databricks" and databricks.compute.databricks.wheel.endswith(".whl")
    assert databricks.compute.databricks.env_vars["MLFLOW_REGISTRY_URI"] == "databricks-uc"
    monkeypatch.delenv("RUNWAY_COMPUTE")
    assert load_config("prod").compute.kind == "local"


def test_databricks_mode_needs_a_wheel_and_a_cluster(config_copy, monkeypatch):
    monkeypatch.setenv("RUNWAY_COMPUTE", "databricks")
    monkeypatch.setenv("RUNWAY_WHEEL", "")
    with pytest.raises(ConfigError, match="compute.databricks.wheel is required"):
        load_config("dev", config_copy)


def test_configuring_mlflow_for_one_environment_does_not_redirect_another(tmp_path, monkeypatch):
    """MLflow exports its URIs to the environment; the config reads them as overrides."""
    import mlflow

    from jobs.runtime.mlflow_setup import URI_VARIABLES, configure_mlflow

    for key in URI_VARIABLES:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("RUNWAY_DATA_DIR", str(tmp_path / "one"))
    first = load_config("dev")
    configure_mlflow(first)
    assert mlflow.get_tracking_uri() == first.mlflow.tracking_uri
    assert all(key not in os.environ for key in URI_VARIABLES)
    monkeypatch.setenv("RUNWAY_DATA_DIR", str(tmp_path / "two"))
    assert load_config("dev").mlflow.tracking_uri == f"sqlite:///{tmp_path / 'two'}/mlflow/mlflow.db"


def test_an_environment_file_must_declare_the_environment_it_is_loaded_for(config_copy):
    """Finding 9: a dev.yaml that is a copy of prod.yaml made `--env dev` jobs write prod tables."""
    shutil.copy(config_copy / "prod.yaml", config_copy / "dev.yaml")
    with pytest.raises(ConfigError, match=r"dev.yaml: declares env 'prod' but was loaded for 'dev'"):
        load_config("dev", config_copy)


def test_each_environment_can_have_its_own_mlflow_and_a_shared_one_is_stated(monkeypatch, caplog):
    from jobs.runtime import mlflow_setup

    monkeypatch.setenv("RUNWAY_PROD_MLFLOW_TRACKING_URI", "http://mlflow-prod.internal:5000")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow-shared.internal:5000")
    assert load_config("prod").mlflow.tracking_uri == "http://mlflow-prod.internal:5000"
    assert load_config("dev").mlflow.tracking_uri == "http://mlflow-shared.internal:5000"
    monkeypatch.setattr(mlflow_setup, "_STATED", set())
    mlflow_setup.state_shared_mlflow(load_config("dev"))  # what a job says when it points MLflow
    assert "is shared by dev and staging" in caplog.text and "RUNWAY_DEV_MLFLOW_TRACKING_URI" in caplog.text


def test_a_use_case_file_carries_its_own_thresholds_and_environments_override_them(
    config_copy, use_case_file
):
    def thresholds(tree):
        tree["validation"] = {"slice_min_rows": 50, "floors": {"roc_auc": 0.55}}

    edit_yaml(use_case_file, thresholds)
    assert load_config("dev", config_copy).validation.slice_min_rows == 50
    assert load_config("staging", config_copy).validation.slice_min_rows == 100  # staging.yaml overrides
    assert load_config("prod", config_copy).validation.floors == {
        "roc_auc": 0.55,
        "pr_auc": 0.3,
    }  # deep merge


def test_platform_settings_do_not_belong_in_a_use_case_file(config_copy, use_case_file):
    edit_yaml(use_case_file, lambda tree: tree.update(storage={"lakehouse_root": "/x"}))
    with pytest.raises(ConfigError, match=r"use_case.yaml: \['storage'\] do not belong in a use case file"):
        load_config("dev", config_copy)


def test_streaming_must_name_a_declared_source_and_its_columns(config_copy, use_case_file):
    """Before: a use case without a 'flights' source loaded fine and streaming failed later with
    `runway: error: 'flights'` and exit 4 (retried). Then the sentence blamed `dev.yaml: (top
    level)`: it names the use case's file and the key."""
    edit_yaml(use_case_file, lambda tree: tree["inference"]["streaming"].update(source="events"))
    with pytest.raises(
        ConfigError,
        match=r"use_case\.yaml: inference\.streaming\.source: .*'events' is not a source of use case",
    ):
        load_config("dev", config_copy)
    edit_yaml(
        use_case_file,
        lambda tree: tree["inference"]["streaming"].update(source="readings", required=["gate"]),
    )
    with pytest.raises(ConfigError, match=r"use_case\.yaml: inference\.streaming\.required: .*\['gate'\]"):
        load_config("dev", config_copy)
    edit_yaml(use_case_file, lambda tree: tree.pop("inference"))
    config = load_config("dev", config_copy)
    with pytest.raises(ConfigError, match="declares no streaming source"):
        config.streaming_source()


def test_only_binary_classification_and_names_derived_from_the_use_case(config_copy, use_case_file):
    edit_yaml(use_case_file, lambda tree: tree["use_case"]["model"].update(task="regression"))
    with pytest.raises(
        ConfigError, match="task 'regression' is not supported: Runway trains binary classifiers"
    ):
        load_config("dev", config_copy)
    edit_yaml(use_case_file, lambda tree: tree["use_case"].update(name="churn"))
    edit_yaml(use_case_file, lambda tree: tree["use_case"]["model"].update(task="binary"))
    config = load_config("staging", config_copy)
    assert config.mlflow.experiment == "/runway/staging/churn"


def test_each_environment_names_its_own_chat_endpoint_and_the_assistant_target(monkeypatch):
    """An environment's RUNWAY_<ENV>_LLM_* win over the shared RUNWAY_LLM_*; none: extractive
    answers. The assistant's target in an environment names the chain, its experiment and prompt."""
    monkeypatch.setenv("RUNWAY_LLM_ENDPOINT", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("RUNWAY_LLM_MODEL", "shared-model")
    monkeypatch.setenv("RUNWAY_PROD_LLM_ENDPOINT", "https://workspace.example/serving-endpoints")
    monkeypatch.setenv("RUNWAY_PROD_LLM_MODEL", "prod-chat")
    prod, dev = load_config("prod"), load_config("dev")
    assert (prod.assistant.generator.endpoint, prod.assistant.generator.model) == (
        "https://workspace.example/serving-endpoints",
        "prod-chat",
    )
    assert (dev.assistant.generator.endpoint, dev.assistant.generator.model) == (
        "http://127.0.0.1:9/v1",
        "shared-model",
    )
    monkeypatch.delenv("RUNWAY_LLM_ENDPOINT")
    assert load_config("dev").assistant.generator.endpoint is None
    chain, model = prod.assistant_target, prod.model_target
    assert chain.registered_model_name == "prod.ml.python_reference" and chain.experiment.endswith(
        "/python_reference"
    )
    assert chain.traffic_spec is None and chain.prompt_name == "prod.ml.python_reference_prompt"
    assert chain.is_chain and not model.is_chain and prod.target("assistant") == chain
    assert model.registered_model_name == prod.registered_model_name != chain.registered_model_name
    assert model.experiment == prod.mlflow.experiment != chain.experiment


def test_a_misspelled_feature_is_reported_against_the_list_that_holds_it(config_copy, use_case_file):
    """`numeric: [mnth]` with `expected_to_move: [month]` was reported as "expected_to_move names
    ['month']": the typo is in the feature list."""

    def misspell(tree):
        numeric = tree["use_case"]["model"]["features"]["numeric"]
        numeric[numeric.index("month")] = "mnth"

    edit_yaml(use_case_file, misspell)
    with pytest.raises(
        ConfigError,
        match=r"use_case\.yaml: use_case\.model\.features\.numeric: .*'mnth'.*did you mean 'month'",
    ):
        load_config("dev", config_copy)
    edit_yaml(
        use_case_file, lambda tree: tree["use_case"]["model"]["features"].update(expected_to_move=["weekday"])
    )
    with pytest.raises(ConfigError, match=r"use_case\.model\.features\.expected_to_move: .*\['weekday'\]"):
        load_config("dev", config_copy)


def test_an_environment_may_not_point_at_another_environments_catalog(config_copy, tmp_path, monkeypatch):
    """A dev.yaml keeping `env: dev` but setting `catalog: prod` and `write_catalog: prod` was
    accepted, and dev's feature refresh wrote prod's bronze, silver and gold tables."""
    edit_yaml(
        config_copy / "dev.yaml",
        lambda t: (
            t.update(catalog="prod"),
            t["access"].update(write_catalog="prod", read_catalogs=["prod"]),
        ),
    )
    with pytest.raises(
        ConfigError, match=r"dev\.yaml: catalog: 'prod' is also prod's: an environment writes only its own"
    ):
        load_config("dev", config_copy)
    from jobs.feature_refresh import main as refresh_main

    monkeypatch.setenv("RUNWAY_CONFIG_DIR", str(config_copy))
    monkeypatch.setenv("RUNWAY_DATA_DIR", str(tmp_path / "data"))
    with pytest.raises(ConfigError, match="is also prod's"):
        refresh_main(["all", "--env", "dev", "--start", "2013-01-06", "--end", "2013-01-07"])
    assert not (tmp_path / "data" / "lakehouse").exists()  # nothing was written


@pytest.mark.parametrize(
    ("change", "key"),
    [
        (lambda t: t.setdefault("mlflow", {}).update(experiment="/runway/prod/tiny"), "mlflow.experiment"),
        (
            lambda t: t.setdefault("storage", {}).update(
                checkpoint_root="${RUNWAY_DATA_DIR}/checkpoints/prod/.."
            ),
            None,
        ),  # resolves to its own <root>/staging: allowed
        (
            lambda t: (
                t.setdefault("serving", {})
                .setdefault("inference_log", {})
                .update(wal_root="${RUNWAY_DATA_DIR}/wal-x")
            ),
            None,
        ),
    ],
)
def test_no_two_environments_share_an_experiment_a_checkpoint_or_a_wal(config_copy, change, key):
    edit_yaml(config_copy / "staging.yaml", change)
    if key is None:
        load_config("staging", config_copy)
        return
    with pytest.raises(ConfigError, match=rf"staging\.yaml: {key}: .* is also prod's"):
        load_config("staging", config_copy)


def test_shared_places_are_named_by_the_key_that_sets_them():
    """The rule on its own: two configs resolving a checkpoint, a WAL or a registered model to
    the same place are refused by that key."""
    from pathlib import Path

    from jobs.config.loader import isolation_problems

    dev, prod = load_config("dev"), load_config("prod")
    assert isolation_problems(dev, {"prod": prod}) == []
    storage = dev.storage.model_copy(update={"checkpoint_root": Path("/x")})
    same_root = prod.model_copy(
        update={"env": "dev", "storage": prod.storage.model_copy(update={"checkpoint_root": Path("/x")})}
    )
    problems = isolation_problems(dev.model_copy(update={"storage": storage}), {"prod": same_root})
    assert any(p.startswith("storage.checkpoint_root: '/x/dev' is also prod's") for p in problems), problems
    assert any(p.startswith("serving.inference_log.wal_root:") for p in problems), problems
    renamed = prod.model_copy(update={"catalog": "dev"})
    assert any(
        p.startswith("the registered model (catalog, schemas.ml):")
        for p in isolation_problems(dev, {"prod": renamed})
    )
