"""Thin, templated operators for MLflow registry actions. Each is idempotent: a retry or a rerun
writes nothing when the registry is already as asked, and never moves an alias twice."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator


class _RegistryOperator(BaseOperator):
    """Common arguments: the registered model, and where the registry is (see MlflowRegistryHook)."""

    ui_color = "#d5f0e3"

    def __init__(
        self, *, model_name: str, mlflow_conn_id: str | None = None, runway_env: str | None = None, **kwargs
    ) -> None:
        super().__init__(**kwargs)
        self.model_name = model_name
        self.mlflow_conn_id = mlflow_conn_id
        self.runway_env = runway_env

    @property
    def hook(self):
        from hooks.mlflow_registry import MlflowRegistryHook

        return MlflowRegistryHook(mlflow_conn_id=self.mlflow_conn_id, runway_env=self.runway_env)


class DeleteModelAliasOperator(_RegistryOperator):
    """Remove ``alias`` from the model — only while it points at ``only_version``, when given (so a
    retry never removes the alias another version took meanwhile); a no-op when it is not set."""

    template_fields: Sequence[str] = ("model_name", "alias", "only_version")

    def __init__(self, *, alias: str, only_version: str | int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.alias = alias
        self.only_version = only_version

    def execute(self, context) -> dict[str, Any]:
        only = self.only_version if self.only_version not in (None, "") else None
        previous = self.hook.registry(self.model_name).delete_alias(self.alias, only_from=only)
        return {
            "model": self.model_name,
            "alias": self.alias,
            "previous": previous,
            "changed": previous is not None,
        }


class SetModelVersionTagsOperator(_RegistryOperator):
    """Set tags (and optionally the description) of a version, given by number or alias."""

    template_fields: Sequence[str] = ("model_name", "version", "alias", "tags", "description")
    template_fields_renderers = {"tags": "json", "description": "md"}

    def __init__(
        self,
        *,
        tags: dict[str, Any] | None = None,
        description: str | None = None,
        version: str | int | None = None,
        alias: str | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.tags = tags or {}
        self.description = description
        self.version = version
        self.alias = alias

    def execute(self, context) -> dict[str, Any]:
        registry = self.hook.registry(self.model_name)
        version = registry.resolve(self.version, self.alias)
        changed = registry.set_tags(version, self.tags)
        described = self.description is not None and registry.set_description(version, self.description)
        return {
            "model": self.model_name,
            "version": version,
            "changed_tags": changed,
            "description_changed": described,
        }
