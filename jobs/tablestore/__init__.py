"""Delta table store: ``open_table_store(config, spark)`` returns the environment's engine.

On the DAG parse path (the DAG factories import it): pyspark, mlflow, pyarrow and the engines are
imported in the functions that use them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from jobs.tablestore.base import (
    Commit,
    DuplicateKeysError,
    SchemaMismatchError,
    TableName,
    TableNotFoundError,
    TablePermissionError,
    TableStore,
    window_predicate,
)

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from jobs.config.env import EnvConfig


def open_table_store(config: EnvConfig, spark: SparkSession | None = None) -> TableStore:
    """The table store of ``config``'s environment, on its configured engine. Without ``spark``, a
    session starts only when a verb needs one (pandas reads on the local engine do not)."""
    if config.table_store.engine == "spark":
        from jobs.tablestore.spark import SparkDeltaTableStore

        return SparkDeltaTableStore(config, spark)
    from jobs.tablestore.local import LocalDeltaTableStore

    return LocalDeltaTableStore(config, spark)


__all__ = [
    "Commit",
    "DuplicateKeysError",
    "SchemaMismatchError",
    "TableName",
    "TableNotFoundError",
    "TablePermissionError",
    "TableStore",
    "open_table_store",
    "window_predicate",
]
