"""The providers' private APIs are used in one module, each checked against its provider release."""

from __future__ import annotations

import ast
from importlib.metadata import version
from pathlib import Path

import pytest

from operators._provider_compat import (
    DATABRICKS_SUBMIT_JSON,
    SPARK_SUBMIT_LOG,
    PrivateApi,
    ProviderVersionError,
)

ROOT = Path(__file__).resolve().parents[2]
PRIVATE_NAMES = {"_prepare_submit_json", "_process_spark_submit_log", "_get_hook", "_registry_uri"}


def test_the_installed_providers_are_the_releases_the_compat_code_was_written_for():
    for api in (DATABRICKS_SUBMIT_JSON, SPARK_SUBMIT_LOG):
        api.check()


def test_another_provider_release_fails_with_one_sentence_naming_both():
    api = PrivateApi(
        "apache-airflow-providers-databricks", "0.1", "DatabricksSubmitRunOperator._prepare_submit_json"
    )
    with pytest.raises(ProviderVersionError) as raised:
        api.check()
    message = str(raised.value)
    assert version("apache-airflow-providers-databricks") in message and "0.1.x" in message
    assert "_prepare_submit_json" in message and "\n" not in message
    with pytest.raises(ProviderVersionError, match="not installed"):
        PrivateApi("apache-airflow-providers-nothing-such", "1.0", "X._y").check()


def test_no_other_module_touches_a_providers_private_name():
    users = sorted(
        str(path.relative_to(ROOT))
        for folder in ("plugins", "jobs", "dags")
        for path in (ROOT / folder).rglob("*.py")
        if path.name != "_provider_compat.py"
        and any(
            isinstance(node, ast.Attribute | ast.FunctionDef)
            and getattr(node, "attr", getattr(node, "name", "")) in PRIVATE_NAMES
            for node in ast.walk(ast.parse(path.read_text()))
        )
    )
    assert not users
