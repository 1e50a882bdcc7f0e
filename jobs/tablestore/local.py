"""The ``local`` engine: Spark computes, delta-rs reads and commits Delta tables on the local disk.

Tables live at ``<lakehouse_root>/<catalog>/<schema>/<table>``. Data crosses between Spark and
delta-rs as Arrow. Needs no JVM Delta jars, so it runs wherever PySpark runs.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake
from deltalake.exceptions import CommitFailedError, DeltaError
from deltalake.schema import Field
from pyspark.sql.pandas.types import from_arrow_schema

from jobs.core.errors import BadInputError
from jobs.tablestore.arrow import is_arrow
from jobs.tablestore.base import (
    USER_METADATA,
    Commit,
    TableName,
    TableNotFoundError,
    TableStore,
    encode_metadata,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


def _as_bound(value: date | str, arrow_type: pa.DataType) -> pa.Scalar:
    day = value if isinstance(value, date) else date.fromisoformat(str(value)[:10])
    if pa.types.is_timestamp(arrow_type):
        moment = value if isinstance(value, datetime) else datetime.combine(day, time())
        if moment.tzinfo is None and arrow_type.tz:
            moment = moment.replace(tzinfo=UTC)
        return pa.scalar(moment, type=arrow_type)
    return pa.scalar(day, type=pa.date32())


class LocalDeltaTableStore(TableStore):
    engine = "local"

    def _table(self, name: TableName, version: int | None = None) -> DeltaTable:
        if not self.exists(name):
            raise TableNotFoundError(f"table {name} does not exist (looked in {self.path(name)})")
        return DeltaTable(str(self.path(name)), version=version)

    # ------------------------------------------------------------------ metadata

    def _is_commit_conflict(self, exc: Exception) -> bool:
        return isinstance(exc, CommitFailedError)

    def _create_if_missing(self, name: TableName, schema: pa.Schema) -> None:
        """Create the empty table, so that a first merge merges and a first transactional append checks
        its transaction like every later one: two first writers then never both append."""
        if not self.exists(name):
            DeltaTable.create(str(self.path(name)), schema, mode="ignore")

    def _tables(self, catalog: str) -> list[TableName]:
        return self._tables_by_path(catalog, lambda path: DeltaTable.is_deltatable(str(path)))

    def _compact(self, name: TableName) -> dict[str, int]:
        metrics = self._table(name).optimize.compact()
        return {
            "files_removed": int(metrics.get("numFilesRemoved", 0)),
            "files_added": int(metrics.get("numFilesAdded", 0)),
        }

    def _vacuum(self, name: TableName, retention_hours: float, enforce: bool) -> int:
        deleted = self._table(name).vacuum(
            retention_hours=int(retention_hours), dry_run=False, enforce_retention_duration=enforce
        )
        return len(deleted)

    def exists(self, name: TableName) -> bool:
        return DeltaTable.is_deltatable(str(self.path(name)))

    def version(self, name: TableName) -> int:
        return self._table(name).version()

    def _history(self, name: TableName, limit: int | None) -> list[dict[str, Any]]:
        return self._table(name).history(limit)

    def transaction_version(self, name: TableName, app_id: str) -> int | None:
        return self._table(name).transaction_version(app_id)

    def _arrow_schema(self, table: DeltaTable) -> pa.Schema:
        return pa.schema(table.schema().to_arrow())

    def _schema(self, name: TableName) -> dict[str, str]:

        spark_schema = from_arrow_schema(self._arrow_schema(self._table(name)))
        return {f.name: f.dataType.simpleString() for f in spark_schema.fields}

    def _add_columns(self, name: TableName, columns: dict[str, str], metadata: dict) -> None:

        delta_types = {"bigint": "long", "int": "integer"}  # Delta's names; the others are Spark's
        table = self._table(name)
        present = set(self._arrow_schema(table).names)  # another writer may have added them meanwhile
        fields = [
            Field(column, delta_types.get(kind, kind), nullable=True)
            for column, kind in columns.items()
            if column not in present
        ]
        if fields:
            table.alter.add_columns(fields, commit_properties=self._commit(metadata))

    # ------------------------------------------------------------------ reads

    def _arrow(self, name: TableName, *, version, timestamp, window, columns=None) -> pa.Table:
        """The snapshot as Arrow, the window pushed down to the files (no Spark involved)."""
        dataset, expression = self._scan(name, version=version, timestamp=timestamp, window=window)
        return dataset.to_table(columns=columns, filter=expression)

    def _read_batches(self, name: TableName, *, window, columns, batch_rows):
        dataset, expression = self._scan(name, version=None, timestamp=None, window=window)
        return dataset.to_batches(columns=columns, filter=expression, batch_size=batch_rows)

    def _scan(self, name: TableName, *, version, timestamp, window):
        """(the snapshot's Arrow dataset, the window as a filter pushed down to its files)."""
        table = self._table(name, version)
        if timestamp is not None:
            moment = timestamp if isinstance(timestamp, datetime) else datetime.fromisoformat(timestamp)
            table.load_as_version(moment)
        expression = None
        if window is not None:
            column, start, end = window
            field_type = self._arrow_schema(table).field(column).type
            expression = (pc.field(column) >= _as_bound(start, field_type)) & (
                pc.field(column) < _as_bound(end, field_type)
            )
        return table.to_pyarrow_dataset(), expression

    def _read(self, name: TableName, *, version, timestamp, window) -> DataFrame:

        arrow = self._arrow(name, version=version, timestamp=timestamp, window=window)
        return self.spark.createDataFrame(arrow, schema=from_arrow_schema(arrow.schema))

    def _rows_to_copy(self, name: TableName, window) -> pa.Table:
        return self._arrow(name, version=None, timestamp=None, window=window)

    def _read_pandas(self, name: TableName, *, version, window, columns, order_by):
        arrow = self._arrow(name, version=version, timestamp=None, window=window, columns=columns)
        if order_by:  # Arrow's sort is stable and several times faster than pandas' on string keys
            arrow = arrow.sort_by([(column, "ascending") for column in order_by])
        return arrow.to_pandas()

    # ------------------------------------------------------------------ writes

    def _engine_rows(self, df):
        """Arrow: a DataFrame is collected once, before the checks (its types come with it)."""
        return self._to_arrow(df)

    @staticmethod
    def _to_arrow(df: DataFrame | pa.Table) -> pa.Table:
        arrow = df if is_arrow(df) else df.toArrow()
        nullable = pa.schema([f.with_nullable(True) for f in arrow.schema])
        return arrow.cast(nullable)

    @staticmethod
    def _commit(metadata: dict, transaction: tuple[str, int] | None = None) -> CommitProperties:
        return CommitProperties(
            custom_metadata={USER_METADATA: encode_metadata(metadata)} if metadata else None,
            app_transactions=[Transaction(*transaction)] if transaction else None,
        )

    def _overwrite(
        self, name: TableName, df: DataFrame, *, predicate, evolve: bool, metadata: dict
    ) -> Commit:
        arrow = self._to_arrow(df)
        try:  # with its predicate also when it creates the table: a racing creator then conflicts
            write_deltalake(
                str(self.path(name)),
                arrow,
                mode="overwrite",
                predicate=predicate,
                schema_mode="merge" if evolve else None,
                commit_properties=self._commit(metadata),
            )
        except DeltaError as exc:
            if "failed validation check" in str(exc):
                raise BadInputError(
                    f"rows written to {name} fall outside the replaced predicate: {predicate}"
                ) from None
            raise
        return Commit(self.version(name), arrow.num_rows)

    def _merge(
        self, name: TableName, df: DataFrame, keys: list[str], *, evolve: bool, metadata: dict
    ) -> Commit:
        arrow = self._to_arrow(df)
        self._create_if_missing(name, arrow.schema)
        on = " AND ".join(f"t.`{k}` = s.`{k}`" for k in keys)
        (
            DeltaTable(str(self.path(name)))
            .merge(
                source=arrow,
                predicate=on,
                source_alias="s",
                target_alias="t",
                merge_schema=evolve,
                commit_properties=self._commit(metadata),
            )
            .when_matched_update_all()
            .when_not_matched_insert_all()
            .execute()
        )
        return Commit(self.version(name), arrow.num_rows)

    def _append(
        self, name: TableName, df: DataFrame, app_id: str, txn_version: int, *, evolve: bool, metadata: dict
    ) -> bool:
        arrow = self._to_arrow(df)
        self._create_if_missing(name, arrow.schema)
        # Check the transaction on the snapshot the append commits against: a concurrent commit of
        # the same transaction then makes this commit conflict (and the retry sees it committed).
        snapshot = DeltaTable(str(self.path(name)))
        committed = snapshot.transaction_version(app_id)
        if committed is not None and committed >= txn_version:
            return False
        write_deltalake(
            snapshot,
            arrow,
            mode="append",
            schema_mode="merge" if evolve else None,
            commit_properties=self._commit(metadata, (app_id, txn_version)),
        )
        return True
