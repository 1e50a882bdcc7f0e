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


class SetModelAliasOperator(_RegistryOperator):
    """Point ``alias`` at a model version (given as a number, or as another alias to copy)."""

    template_fields: Sequence[str] = ("model_name", "alias", "version", "from_alias")

    def __init__(
        self, *, alias: str, version: str | int | None = None, from_alias: str | None = None, **kwargs
    ):
        super().__init__(**kwargs)
        self.alias = alias
        self.version = version
        self.from_alias = from_alias

    def execute(self, context) -> dict[str, Any]:
        registry = self.hook.registry(self.model_name)
        version = registry.resolve(self.version, self.from_alias)
        previous = registry.set_alias(self.alias, version)
        return {"model": self.model_name, "alias": self.alias, "version": version, "previous": previous,
                "changed": previous != version}  # fmt: skip


class DeleteModelAliasOperator(_RegistryOperator):
    """Remove ``alias`` from the model (a no-op when it is not set)."""

    template_fields: Sequence[str] = ("model_name", "alias")

    def __init__(self, *, alias: str, **kwargs):
        super().__init__(**kwargs)
        self.alias = alias

    def execute(self, context) -> dict[str, Any]:
        previous = self.hook.registry(self.model_name).delete_alias(self.alias)
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
