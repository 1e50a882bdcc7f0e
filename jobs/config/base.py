"""The config schema's shared ground: environments, pipelines, the strict model, errors."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict

from jobs.core.errors import BadInputError

ENVIRONMENTS = ("dev", "staging", "prod")

# Each environment deploys one DAG per pipeline: <env>_<pipeline>.
PIPELINES = (
    "feature_refresh",
    "training",
    "rollback",
    "batch_inference",
    "streaming_inference",
    "monitoring",
    "maintenance",
    "deployment",
    "knowledge_refresh",
    "assistant",
    "assistant_monitoring",
)

# A plain identifier: catalog, schema, table, use case and environment variable names.
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

ColumnType = Literal["string", "int", "bigint", "double", "boolean", "date", "timestamp"]


class ConfigError(BadInputError):
    """A config file is missing, malformed or fails validation; the message names file and key."""


class ConfigKeyError(ValueError):
    """A check of one key (``key``: its path below the model that raises it), so that the load
    error names the file that set that key, not the model's top level."""

    def __init__(self, key: tuple[str, ...], message: str) -> None:
        super().__init__(message)
        self.key = key


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
