"""The ``spark`` engine: native Delta through delta-spark, tables by catalog name.

For Databricks (Unity Catalog three-level names) and Spark clusters that ship the Delta jars
(``io.delta:delta-spark_2.13``, via ``spark.jars``/``spark.jars.packages``). Kept thin on purpose:
every verb maps to one delta-spark call.
"""

from __future__ import annotations

import contextlib
import threading
from typing import TYPE_CHECKING, Any

from delta.tables import DeltaTable

from jobs.core.errors import BadInputError
from jobs.tablestore.base import (
    USER_METADATA,
    Commit,
    TableName,
    TableNotFoundError,
    TableStore,
    encode_metadata,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

    from pyspark.sql import DataFrame

# A commit's userMetadata where delta-spark takes no writer option (MERGE, ALTER TABLE): a session
# setting, held by one such commit of this process at a time.
SESSION_USER_METADATA = "spark.databricks.delta.commitInfo.userMetadata"
_session_metadata = threading.Lock()


def delta_jars_available(spark) -> bool:
    """True when the session can load delta-spark's JVM classes."""
    try:  # the context loader sees spark.jars too (Class.forName asks the system loader only)
        spark._jvm.java.lang.Thread.currentThread().getContextClassLoader().loadClass(
            "io.delta.tables.DeltaTable"
        )
        return True
    except Exception:  # Py4J wraps ClassNotFoundException
        return False


class SparkDeltaTableStore(TableStore):
    engine = "spark"

    def __init__(self, config, spark=None):
        super().__init__(config, spark)
        if not delta_jars_available(self.spark):
            from jobs.core.paths import delta_jars

            _, why = delta_jars()
            raise BadInputError(
                "table_store.engine 'spark' needs delta-spark's JVM jars on the session "
                "(spark.jars or spark.jars.packages io.delta:delta-spark_<spark>_2.13); none are loaded"
                f"{f' ({why})' if why else ''}. Use engine 'local' on machines without them."
            )

    @property
    def _by_path(self) -> bool:
        """Tables by location (``namespace: path``): a plain cluster without a shared metastore."""
        return self.config.table_store.namespace == "path"

    def _fqn(self, name: TableName) -> str:
        if self._by_path:
            return f"delta.`{self.path(name)}`"
        if self.config.table_store.namespace == "session":
            return f"spark_catalog.{name.catalog}_{name.schema}.{name.table}"
        return str(name)

    def _ensure_schema(self, name: TableName) -> None:
        if not self._by_path:
            self.spark.sql(f"CREATE SCHEMA IF NOT EXISTS {self._fqn(name).rsplit('.', 1)[0]}")

    def _save(self, writer, name: TableName) -> None:
        if self._by_path:
            writer.save(str(self.path(name)))
        else:
            writer.saveAsTable(self._fqn(name))

    def _delta(self, name: TableName):

        self._existing(name)
        if self._by_path:
            return DeltaTable.forPath(self.spark, str(self.path(name)))
        return DeltaTable.forName(self.spark, self._fqn(name))

    CONFLICTS = {
        "DeltaConcurrentModificationException",
        "ConcurrentWriteException",
        "MetadataChangedException",
        "ProtocolChangedException",
        "ConcurrentAppendException",
        "ConcurrentDeleteReadException",
        "ConcurrentDeleteDeleteException",
        "ConcurrentTransactionException",
    }

    def _is_commit_conflict(self, exc: Exception) -> bool:
        return any(cls.__name__ in self.CONFLICTS for cls in type(exc).__mro__)

    def _create_if_missing(self, name: TableName, df: DataFrame) -> None:
        """Create the empty table (see the local engine's); a lost create race is a conflict or a
        table that now exists, both fine."""
        self._ensure_schema(name)
        if not self.exists(name):
            try:
                self._save(df.limit(0).write.format("delta").mode("ignore"), name)
            except Exception:
                if not self.exists(name):
                    raise

    def _tables(self, catalog: str) -> list[TableName]:
        if self._by_path:
            from delta.tables import DeltaTable

            return self._tables_by_path(catalog, lambda path: DeltaTable.isDeltaTable(self.spark, str(path)))
        found = []
        for role in ("bronze", "silver", "gold", "ml", "monitoring"):
            probe = self.name(role, "probe", catalog)
            database = self._fqn(probe).rsplit(".", 1)[0]
            if not self.spark.catalog.databaseExists(database):
                continue
            found += [self.name(role, t.name, catalog) for t in self.spark.catalog.listTables(database)]
        return found

    def _compact(self, name: TableName) -> dict[str, int]:
        [row] = (
            self.spark.sql(f"OPTIMIZE {self._fqn(name)}")
            .select("metrics.numFilesRemoved", "metrics.numFilesAdded")
            .collect()
        )
        return {"files_removed": int(row[0]), "files_added": int(row[1])}

    def _vacuum(self, name: TableName, retention_hours: float, enforce: bool) -> int:
        if not enforce:
            self.spark.conf.set("spark.databricks.delta.retentionDurationCheck.enabled", "false")
        statement = f"VACUUM {self._fqn(name)} RETAIN {float(retention_hours)} HOURS"
        doomed = self.spark.sql(statement + " DRY RUN").count()  # VACUUM itself does not list them
        self.spark.sql(statement).collect()
        return doomed

    def exists(self, name: TableName) -> bool:
        if self._by_path:
            from delta.tables import DeltaTable

            return DeltaTable.isDeltaTable(self.spark, str(self.path(name)))
        return self.spark.catalog.tableExists(self._fqn(name))

    def version(self, name: TableName) -> int:
        return int(self._delta(name).history(1).collect()[0]["version"])

    def _history(self, name: TableName, limit: int | None) -> list[dict[str, Any]]:
        history = self._delta(name).history(limit) if limit else self._delta(name).history()
        return [row.asDict(recursive=True) for row in history.collect()]

    def transaction_version(self, name: TableName, app_id: str) -> int | None:
        """The latest snapshot's ``txn`` version for ``app_id`` (delta-spark's Python API does not
        expose it: read through the JVM's ``DeltaLog``, as Delta's own txnAppId check does)."""
        [detail] = (
            self.spark.sql(f"DESCRIBE DETAIL {self._fqn(self._existing(name))}").select("location").collect()
        )
        log = self.spark._jvm.org.apache.spark.sql.delta.DeltaLog.forTable(
            self.spark._jsparkSession, detail[0]
        )
        snapshot = log.update(*(getattr(log, f"update$default${i}")() for i in (1, 2, 3)))
        found = snapshot.transactions().get(app_id)
        return int(found.get()) if found.isDefined() else None

    def _existing(self, name: TableName) -> TableName:
        if not self.exists(name):
            raise TableNotFoundError(f"table {name} does not exist")
        return name

    def _schema(self, name: TableName) -> dict[str, str]:
        fields = self._read(name, version=None, timestamp=None, window=None).schema.fields
        return {f.name: f.dataType.simpleString() for f in fields}

    @contextlib.contextmanager
    def _metadata_of_session_commits(self, metadata: dict) -> Iterator[None]:
        """Commits inside carry ``metadata`` (the session setting, restored after)."""
        if not metadata:
            yield
            return
        with _session_metadata:
            before = self.spark.conf.get(SESSION_USER_METADATA, None)
            self.spark.conf.set(SESSION_USER_METADATA, encode_metadata(metadata))
            try:
                yield
            finally:
                if before is None:
                    self.spark.conf.unset(SESSION_USER_METADATA)
                else:
                    self.spark.conf.set(SESSION_USER_METADATA, before)

    def _add_columns(self, name: TableName, columns: dict[str, str], metadata: dict) -> None:
        present = self._schema(name)  # another writer may have added them meanwhile
        added = ", ".join(f"`{c}` {kind.upper()}" for c, kind in columns.items() if c not in present)
        if added:
            with self._metadata_of_session_commits(metadata):
                self.spark.sql(f"ALTER TABLE {self._fqn(name)} ADD COLUMNS ({added})")

    def _read(self, name: TableName, *, version, timestamp, window) -> DataFrame:
        reader = self.spark.read.format("delta")
        if version is not None:
            reader = reader.option("versionAsOf", version)
        if timestamp is not None:
            reader = reader.option("timestampAsOf", str(timestamp))
        df = reader.load(str(self.path(name))) if self._by_path else reader.table(self._fqn(name))
        if window is not None:
            from jobs.tablestore.base import window_predicate

            df = df.where(window_predicate(*window))
        return df

    def _commit(self, name: TableName) -> Commit:
        """The latest commit, with rows written from Delta's operation metrics."""
        [latest] = self._history(name, 1)
        metrics = {k: int(v) for k, v in (latest.get("operationMetrics") or {}).items() if str(v).isdigit()}
        if "numOutputRows" in metrics:  # a write; replaceWhere also rewrites (copies) rows it keeps
            rows = metrics["numOutputRows"] - metrics.get("numCopiedRows", 0)
        else:
            rows = metrics.get("numTargetRowsInserted", 0) + metrics.get("numTargetRowsUpdated", 0)
        return Commit(int(latest["version"]), rows)

    def _writer(self, df: DataFrame, evolve: bool, metadata: dict):
        writer = df.write.format("delta")  # callers create the schema first
        if evolve:
            writer = writer.option("mergeSchema", "true")
        if metadata:
            writer = writer.option(USER_METADATA, encode_metadata(metadata))
        return writer

    def _overwrite(
        self, name: TableName, df: DataFrame, *, predicate, evolve: bool, metadata: dict
    ) -> Commit:
        self._ensure_schema(name)  # a first write creates the table with its rows, as the local engine's
        writer = self._writer(df, evolve, metadata).mode("overwrite")
        if predicate:
            writer = writer.option("replaceWhere", predicate)
        try:
            self._save(writer, name)
        except Exception as exc:
            if "DELTA_REPLACE_WHERE_MISMATCH" in str(exc):
                raise BadInputError(
                    f"rows written to {name} fall outside the replaced predicate: {predicate}"
                ) from None
            raise
        return self._commit(name)

    def _merge(
        self, name: TableName, df: DataFrame, keys: list[str], *, evolve: bool, metadata: dict
    ) -> Commit:
        self._create_if_missing(name, df)
        if evolve:
            self.spark.conf.set("spark.databricks.delta.schema.autoMerge.enabled", "true")
        on = " AND ".join(f"t.`{k}` = s.`{k}`" for k in keys)
        merge = (
            self._delta(name)
            .alias("t")
            .merge(df.alias("s"), on)
            .whenMatchedUpdateAll()
            .whenNotMatchedInsertAll()
        )
        with self._metadata_of_session_commits(metadata):
            merge.execute()
        return self._commit(name)

    def _append(
        self, name: TableName, df: DataFrame, app_id: str, txn_version: int, *, evolve: bool, metadata: dict
    ) -> bool:
        self._create_if_missing(name, df)
        before = self.version(name)
        writer = self._writer(df, evolve, metadata).mode("append")
        self._save(writer.option("txnAppId", app_id).option("txnVersion", txn_version), name)
        return self.version(name) != before  # Delta skips a repeated (txnAppId, txnVersion)
