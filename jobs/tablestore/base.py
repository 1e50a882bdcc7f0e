"""The table-store interface every job uses: one small set of Delta verbs, two engines.

Names are three-level, ``<catalog>.<schema>.<table>`` (Unity Catalog style). A store belongs to one
environment: it may read the catalogs in ``access.read_catalogs`` and write only its own catalog.

On the DAG parse path (the DAG factories import it): pyspark, mlflow, pyarrow and the engines are
imported in the functions that use them.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jobs.config.base import IDENTIFIER
from jobs.core.errors import BadInputError, MissingInputError, TransientError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping, Sequence
    from typing import TypeVar

    import pandas as pd
    import pyarrow as pa
    from pyspark.sql import DataFrame, SparkSession

    from jobs.config.env import EnvConfig

    Rows = DataFrame | pa.Table  # what the write verbs take: a Spark DataFrame, or Arrow (small_frame)
    T = TypeVar("T")
from jobs.tablestore.arrow import column_types, is_arrow, small_schema

log = logging.getLogger("runway.tablestore")

COMMIT_ATTEMPTS = 6  # tries of one write that loses commit races to concurrent writers

# Where both engines keep a commit's metadata (run id, window...): Delta's ``userMetadata``, one
# JSON string. Not keys of the commit info's own: some (``job``, ``notebook``) are Delta fields with
# types of their own, and delta-spark then cannot read the table's log.
USER_METADATA = "userMetadata"


def encode_metadata(metadata: Mapping[str, Any]) -> str:
    """A write's metadata as the ``userMetadata`` string both engines commit (values as text)."""
    return json.dumps({k: str(v) for k, v in metadata.items()}, sort_keys=True)


def commit_metadata(commit: Mapping[str, Any]) -> dict[str, str]:
    """The metadata a commit's writer gave (``encode_metadata``); {} for a commit without any."""
    try:
        metadata = json.loads(commit.get(USER_METADATA) or "{}")
    except ValueError:  # another tool's free text
        return {}
    return metadata if isinstance(metadata, dict) else {}


class TablePermissionError(BadInputError, PermissionError):
    """The environment may not read or write the catalog a table lives in."""


class SchemaMismatchError(BadInputError):
    """A write's columns or types differ from the table's and the table may not evolve."""


class DuplicateKeysError(BadInputError):
    """Rows to write repeat a key they must hold once."""

    def __init__(self, name: TableName, keys: list[str], repeated: int) -> None:
        self.keys, self.repeated = keys, repeated
        super().__init__(f"rows written to {name} repeat {repeated} key(s) of {keys}")


class TableNotFoundError(MissingInputError):
    """The table does not exist (yet)."""


class CommitConflictError(TransientError):
    """A write kept losing commit races to concurrent writers of the same table: retry later."""


@dataclass(frozen=True)
class TableName:
    """``<catalog>.<schema>.<table>``, each part a plain identifier (never a path)."""

    catalog: str
    schema: str
    table: str

    def __post_init__(self) -> None:
        for role, part in (("catalog", self.catalog), ("schema", self.schema), ("table", self.table)):
            if not IDENTIFIER.fullmatch(str(part)):
                raise BadInputError(
                    f"table name part {part!r} ({role}) is not a plain identifier (letters, digits, _)"
                )

    def __str__(self) -> str:
        return f"{self.catalog}.{self.schema}.{self.table}"

    @classmethod
    def of(cls, config: EnvConfig, schema: str, table: str, catalog: str | None = None) -> TableName:
        """The naming rule: a table of the environment's catalog (or ``catalog``), its schema given by
        role (``gold`` → ``schemas.gold``) or by name."""
        return cls(catalog or config.catalog, getattr(config.schemas, schema, schema), table)


@dataclass(frozen=True)
class Commit:
    """What one write committed: the table's new version and how many rows it wrote."""

    version: int
    rows: int


@dataclass(frozen=True)
class SchemaDiff:
    missing: list[str]
    unexpected: list[str]
    changed: list[str]

    @property
    def empty(self) -> bool:
        return not (self.missing or self.unexpected or self.changed)

    @property
    def only_additive(self) -> bool:
        """New columns only (and columns the write leaves null): what schema evolution allows."""
        return not self.changed

    def describe(self) -> str:
        parts = []
        if self.missing:
            parts.append(f"missing columns {self.missing}")
        if self.unexpected:
            parts.append(f"unexpected columns {self.unexpected}")
        if self.changed:
            parts.append(f"changed types {self.changed}")
        return "; ".join(parts)


def diff_schemas(table: dict[str, str], incoming: dict[str, str]) -> SchemaDiff:
    """Compare ``{column: type}`` maps (names are case-sensitive, nullability is ignored)."""
    return SchemaDiff(
        missing=[c for c in table if c not in incoming],
        unexpected=[c for c in incoming if c not in table],
        changed=[
            f"{c}: {table[c]} -> {incoming[c]}" for c in table if c in incoming and table[c] != incoming[c]
        ],
    )


class TableStore(ABC):
    """Delta tables of one environment. Every write is atomic (one Delta commit)."""

    engine = "abstract"

    def __init__(self, config: EnvConfig, spark: SparkSession | None = None):
        self.config = config
        self._spark = spark
        self._spark_lock = threading.Lock()

    @property
    def spark(self) -> SparkSession:
        """The session computing with this store's tables; started on first use."""
        with self._spark_lock:  # one start, also when start_spark's thread is still at it
            if self._spark is None:
                from jobs.runtime.spark_session import get_spark

                self._spark = get_spark(self.config)
            return self._spark

    def start_spark(self) -> None:
        """Start the session in the background (a JVM takes seconds) while the job does other
        work; the first use of ``spark`` waits for it. The thread never holds the process's exit."""
        threading.Thread(target=lambda: self.spark, name="spark-start", daemon=True).start()

    # ------------------------------------------------------------------ names and access

    def name(self, schema: str, table: str, catalog: str | None = None) -> TableName:
        """A table of this environment's catalog (or of ``catalog``), by schema role or name."""
        return TableName.of(self.config, schema, table, catalog)

    def _check_read(self, name: TableName) -> None:
        if name.catalog not in self.config.access.read_catalogs:
            raise TablePermissionError(
                f"environment '{self.config.env}' may not read catalog '{name.catalog}' ({name}); "
                f"readable catalogs: {self.config.access.read_catalogs}"
            )

    def _check_write(self, name: TableName) -> None:
        if name.catalog != self.config.access.write_catalog:
            raise TablePermissionError(
                f"environment '{self.config.env}' may not write {name}: it writes only catalog "
                f"'{self.config.access.write_catalog}'"
            )

    def _check_schema(self, name: TableName, incoming: dict[str, str]) -> bool:
        """Raise on a mismatch the table may not absorb; return True when the write must evolve it."""
        if not self.exists(name):
            return False
        diff = diff_schemas(self._schema(name), incoming)
        if diff.empty:
            return False
        allowed = self.config.table_options(name.schema, name.table).allow_schema_evolution
        if allowed and diff.only_additive:
            return True
        hint = (
            "" if allowed else f" (set tables.{name.schema}.{name.table}.allow_schema_evolution to evolve it)"
        )
        raise SchemaMismatchError(f"write to {name} does not match its schema: {diff.describe()}{hint}")

    def small_frame(self, records: Sequence[Mapping[str, Any]] | pd.DataFrame, schema: str) -> pa.Table:
        """A few rows (audit events, metrics, alerts) of a DDL ``schema`` (``"name type, ..."``,
        simple types only) as Arrow, which every engine's write verbs take: the local engine commits
        it without starting Spark, the spark engine makes it a DataFrame. From pandas, missing
        values (None, NaN, NaT) become nulls, as Spark's conversion does."""
        import pyarrow as pa

        arrow_schema = small_schema(schema)
        if hasattr(records, "to_dict"):  # pandas
            return pa.Table.from_pandas(
                records[arrow_schema.names], schema=arrow_schema, preserve_index=False
            )
        return pa.Table.from_pylist([dict(record) for record in records], schema=arrow_schema)

    def _check_unique(self, name: TableName, df: Rows, keys: list[str]) -> None:
        if is_arrow(df):
            import pyarrow.compute as pc

            counts = df.group_by(keys).aggregate([([], "count_all")])
            repeated = counts.filter(pc.field("count_all") > 1).num_rows
        else:
            repeated = df.groupBy(*keys).count().where("count > 1").count()
        if repeated:
            raise DuplicateKeysError(name, keys, repeated)

    def _engine_rows(self, df: Rows) -> Rows:
        """Rows as this engine's writes take them: Spark DataFrames (Arrow is converted)."""
        return self.spark.createDataFrame(df) if is_arrow(df) else df

    # ------------------------------------------------------------------ the verbs

    def read(
        self,
        name: TableName,
        *,
        version: int | None = None,
        timestamp: datetime | str | None = None,
        window: tuple[str, date | str, date | str] | None = None,
    ) -> DataFrame:
        """The table (at a version or timestamp), optionally only rows with ``start <= column < end``."""
        self._check_read(name)
        if version is not None and timestamp is not None:
            raise BadInputError("read at a version or at a timestamp, not both")
        if not self.exists(name):
            raise TableNotFoundError(f"table {name} does not exist")
        return self._read(name, version=version, timestamp=timestamp, window=window)

    def read_pandas(
        self,
        name: TableName,
        *,
        version: int | None = None,
        window: tuple[str, date | str, date | str] | None = None,
        columns: list[str] | None = None,
        order_by: list[str] | None = None,
    ):
        """Like ``read``, as a pandas DataFrame (for work that fits one process, e.g. model fitting),
        in ``order_by``'s ascending order when given (else the files' order)."""
        self._check_read(name)
        if not self.exists(name):
            raise TableNotFoundError(f"table {name} does not exist")
        return self._read_pandas(name, version=version, window=window, columns=columns, order_by=order_by)

    def _read_pandas(self, name: TableName, *, version, window, columns, order_by):
        df = self._read(name, version=version, timestamp=None, window=window)
        df = df.select(*columns) if columns else df
        return (df.orderBy(*order_by) if order_by else df).toPandas()

    def overwrite(
        self,
        name: TableName,
        df: Rows,
        *,
        predicate: str | None = None,
        metadata: dict | None = None,
        unique_by: list[str] | None = None,
    ) -> Commit:
        """Replace the rows matching ``predicate`` (replaceWhere) — or the whole table — with ``df``.

        Every row of ``df`` must satisfy the predicate; with ``unique_by``, no two rows may share
        those columns' values (``DuplicateKeysError``, nothing written). Returns the commit
        (version, rows written).
        """
        self._check_write(name)
        df = self._engine_rows(df)
        if unique_by:
            self._check_unique(name, df, unique_by)

        def attempt() -> Commit:
            evolve = self._check_schema(name, column_types(df))
            return self._overwrite(name, df, predicate=predicate, evolve=evolve, metadata=metadata or {})

        return self._retrying(name, "overwrite", attempt)

    def overwrite_window(
        self,
        name: TableName,
        df: Rows,
        column: str,
        start: date | str,
        end: date | str,
        *,
        extra_predicate: str | None = None,
        metadata: dict | None = None,
        unique_by: list[str] | None = None,
    ) -> Commit:
        """Replace the interval ``[start, end)`` of ``column``: the idempotent write of a windowed job."""
        predicate = window_predicate(column, start, end)
        if extra_predicate:
            predicate = f"({extra_predicate}) AND {predicate}"
        return self.overwrite(name, df, predicate=predicate, metadata=metadata, unique_by=unique_by)

    def copy_window(
        self,
        source: TableName,
        target: TableName,
        column: str,
        start: date | str,
        end: date | str,
        *,
        metadata: dict | None = None,
    ) -> Commit:
        """Replace ``target``'s interval ``[start, end)`` of ``column`` with ``source``'s rows of it
        (write-audit-publish's publish step); the local engine copies Arrow, Spark never starts."""
        self._check_read(source)
        if not self.exists(source):
            raise TableNotFoundError(f"table {source} does not exist")
        rows = self._rows_to_copy(source, (column, start, end))
        return self.overwrite_window(target, rows, column, start, end, metadata=metadata)

    def _rows_to_copy(self, name: TableName, window: tuple[str, date | str, date | str]) -> Rows:
        return self._read(name, version=None, timestamp=None, window=window)

    def merge(self, name: TableName, df: Rows, keys: list[str], *, metadata: dict | None = None) -> Commit:
        """Upsert ``df`` by ``keys``: matching rows are updated, new rows inserted."""
        self._check_write(name)
        if not keys:
            raise BadInputError("merge needs at least one key column")
        df = self._engine_rows(df)
        self._check_unique(name, df, keys)

        def attempt() -> Commit:
            evolve = self._check_schema(name, column_types(df))
            return self._merge(name, df, keys, evolve=evolve, metadata=metadata or {})

        return self._retrying(name, "merge into", attempt)

    def append_once(
        self, name: TableName, df: Rows, app_id: str, txn_version: int, *, metadata: dict | None = None
    ) -> bool:
        """Append under an application transaction; a repeated (app_id, version) is a no-op.

        Returns True when the rows were appended, False when this transaction was already committed.
        """
        self._check_write(name)
        df = self._engine_rows(df)

        def attempt() -> bool:  # the check is repeated after a lost race: the winner may be this txn
            if self.exists(name):
                committed = self.transaction_version(name, app_id)
                if committed is not None and committed >= txn_version:
                    return False
            evolve = self._check_schema(name, column_types(df))
            return self._append(name, df, app_id, txn_version, evolve=evolve, metadata=metadata or {})

        return self._retrying(name, "append to", attempt)

    # ------------------------------------------------------------------ upkeep

    def add_columns(self, name: TableName, schema: str, *, metadata: dict | None = None) -> list[str]:
        """Add the columns of a DDL ``schema`` (simple types) that the existing table lacks, as
        nullable columns its rows read as null: a metadata-only commit, so that predicates may name
        them before any row carries them. Needs the table's ``allow_schema_evolution``. Returns the
        columns added (none when the table does not exist or has them all)."""
        self._check_write(name)
        wanted = {
            field.name: kind for field, kind in zip(small_schema(schema), _ddl_types(schema), strict=True)
        }

        def attempt() -> list[str]:
            if not self.exists(name):
                return []
            missing = {column: kind for column, kind in wanted.items() if column not in self._schema(name)}
            if missing and self._check_schema(name, {**self._schema(name), **missing}):
                self._add_columns(name, missing, metadata or {})
            return list(missing)

        return self._retrying(name, "add columns to", attempt)

    def schema(self, name: TableName) -> dict[str, str]:
        """``{column: Spark simple type}`` of the table, in column order."""
        return self._schema(name)

    def read_batches(
        self,
        name: TableName,
        *,
        window: tuple[str, date | str, date | str] | None = None,
        columns: list[str] | None = None,
        batch_rows: int = 65_536,
    ) -> Iterator[pa.RecordBatch]:
        """The rows as Arrow record batches of at most ``batch_rows``: a consumer holds one batch at a
        time (the local engine streams them from the files, Spark never starts)."""
        self._check_read(name)
        if not self.exists(name):
            raise TableNotFoundError(f"table {name} does not exist")
        return self._read_batches(name, window=window, columns=columns, batch_rows=batch_rows)

    def _read_batches(self, name: TableName, *, window, columns, batch_rows) -> Iterator[pa.RecordBatch]:
        df = self._read(name, version=None, timestamp=None, window=window)
        return iter((df.select(*columns) if columns else df).toArrow().to_batches(batch_rows))

    def tables(self) -> list[TableName]:
        """Every Delta table of this environment's catalog."""
        return sorted(self._tables(self.config.catalog), key=str)

    def path(self, name: TableName) -> Path:
        """Where a table lives when tables are found by location (the local engine; the spark
        engine's ``namespace: path``): ``<lakehouse_root>/<catalog>/<schema>/<table>``."""
        return Path(self.config.storage.lakehouse_root) / name.catalog / name.schema / name.table

    def _tables_by_path(self, catalog: str, is_table: Callable[[Path], bool]) -> list[TableName]:
        """The tables under ``<lakehouse_root>/<catalog>`` (``is_table``: the engine's Delta check)."""
        found = []
        for path in sorted((Path(self.config.storage.lakehouse_root) / catalog).glob("*/*")):
            if is_table(path):
                try:
                    found.append(TableName(catalog, path.parent.name, path.name))
                except BadInputError:  # a folder that is no table name of Runway's
                    continue
        return found

    def compact(self, name: TableName) -> dict[str, int]:
        """Rewrite small files into larger ones (OPTIMIZE): the same rows, fewer files; retried
        when a concurrent writer commits first. Returns files removed and added."""
        self._check_write(name)
        return self._retrying(name, "compact", lambda: self._compact(name))

    def vacuum(self, name: TableName, retention_hours: float, *, enforce: bool = True) -> int:
        """Delete the files no version of the last ``retention_hours`` reads (readers and time
        travel within it are safe); Delta refuses less than 7 days unless ``enforce`` is off.
        Returns how many files were deleted."""
        self._check_write(name)
        return self._vacuum(name, retention_hours, enforce)

    @abstractmethod
    def _tables(self, catalog: str) -> list[TableName]: ...

    @abstractmethod
    def _compact(self, name: TableName) -> dict[str, int]: ...

    @abstractmethod
    def _vacuum(self, name: TableName, retention_hours: float, enforce: bool) -> int: ...

    def _retrying(self, name: TableName, what: str, attempt: Callable[[], T]) -> T:
        """Run one write, again with growing random back-off while it loses commit races (a table
        created or committed meanwhile by another writer); then one sentence, retryable."""
        for tries in range(1, COMMIT_ATTEMPTS + 1):
            try:
                return attempt()
            except Exception as exc:
                if not self._is_commit_conflict(exc):
                    raise
                if tries == COMMIT_ATTEMPTS:
                    raise CommitConflictError(
                        f"{what} {name} lost {tries} commit races to concurrent writers; nothing of it was "
                        "committed: retry later"
                    ) from exc
                log.warning(
                    "%s %s lost a commit race (%s): try %d of %d",
                    what,
                    name,
                    type(exc).__name__,
                    tries + 1,
                    COMMIT_ATTEMPTS,
                )
                time.sleep(min(2.0, 0.05 * 2**tries) * (0.5 + random.random()))
        raise AssertionError("unreachable")

    # ------------------------------------------------------------------ engine specifics

    @abstractmethod
    def _is_commit_conflict(self, exc: Exception) -> bool:
        """Whether ``exc`` is the engine's "a concurrent commit won": the write may be tried again."""

    @abstractmethod
    def exists(self, name: TableName) -> bool: ...

    @abstractmethod
    def version(self, name: TableName) -> int: ...

    def history(self, name: TableName, limit: int | None = None) -> list[dict[str, Any]]:
        """The table's commits, newest first: ``version``, ``operation``, ``timestamp``... and the
        metadata each write was given (``run_id``, ``job``...) as keys of its own. Delta's fields win
        where they hold a value; its empty ones (delta-spark lists ``job``, ``notebook``... as null)
        do not hide the metadata's."""
        commits = self._history(name, limit)
        return [{**c, **{k: v for k, v in commit_metadata(c).items() if c.get(k) is None}} for c in commits]

    def last_commit_metadata(self, name: TableName) -> dict[str, str]:
        """The metadata (run id, window, ...) the table's latest commit was given."""
        [latest] = self._history(name, 1)
        return commit_metadata(latest)

    @abstractmethod
    def _history(self, name: TableName, limit: int | None) -> list[dict[str, Any]]:
        """Delta's commit info of the table's commits, newest first."""

    @abstractmethod
    def transaction_version(self, name: TableName, app_id: str) -> int | None:
        """The last committed version of application transaction ``app_id``; None if unknown."""

    @abstractmethod
    def _schema(self, name: TableName) -> dict[str, str]: ...

    @abstractmethod
    def _add_columns(self, name: TableName, columns: dict[str, str], metadata: dict) -> None:
        """Add nullable ``{column: simple type}`` columns to the existing table."""

    @abstractmethod
    def _read(self, name: TableName, *, version, timestamp, window) -> DataFrame: ...

    @abstractmethod
    def _overwrite(
        self, name: TableName, df: DataFrame, *, predicate, evolve: bool, metadata: dict
    ) -> Commit: ...

    @abstractmethod
    def _merge(
        self, name: TableName, df: DataFrame, keys: list[str], *, evolve: bool, metadata: dict
    ) -> Commit: ...

    @abstractmethod
    def _append(
        self, name: TableName, df: DataFrame, app_id: str, txn_version: int, *, evolve: bool, metadata: dict
    ) -> bool:
        """Commit the append; False when the engine skipped it as an already-seen transaction."""


def _ddl_types(schema: str) -> list[str]:
    """The simple type names of a DDL schema's columns, in order (``small_schema`` checks them)."""
    return [part.strip().partition(" ")[2].strip().lower() for part in schema.split(",")]


def _literal(value: date | str) -> str:
    text = value.isoformat() if isinstance(value, date | datetime) else str(value)
    date.fromisoformat(text[:10])  # reject anything that is not a date
    return f"'{text}'"


def window_predicate(column: str, start: date | str, end: date | str) -> str:
    """SQL for ``start <= column < end``, understood by both Delta engines."""
    return f"{column} >= {_literal(start)} AND {column} < {_literal(end)}"
