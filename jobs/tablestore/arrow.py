"""Arrow helpers the table store owns: column types and small schemas.

On the DAG parse path (the DAG factories import it): pyspark, mlflow, pyarrow and the engines are
imported in the functions that use them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from jobs.core.errors import BadInputError

if TYPE_CHECKING:
    from typing import TypeVar

    import pyarrow as pa
    from pyspark.sql import DataFrame

    Rows = DataFrame | pa.Table  # what the write verbs take: a Spark DataFrame, or Arrow (small_frame)
    T = TypeVar("T")


def is_arrow(df: Rows) -> bool:
    """Whether rows to write are an Arrow table (else a Spark DataFrame)."""
    import pyarrow as pa

    return isinstance(df, pa.Table)


def column_types(df: Rows) -> dict[str, str]:
    """``{column: Spark simple type}`` of rows to write, the common currency of schema checks."""
    schema = df.schema
    if is_arrow(df):
        from pyspark.sql.pandas.types import from_arrow_schema  # type mapping only: no JVM

        schema = from_arrow_schema(schema)
    return {f.name: f.dataType.simpleString() for f in schema.fields}


def simple_arrow_types() -> dict[str, pa.DataType]:
    """Spark's simple types (as ``column_types`` names them) that map one to one onto Arrow.
    Timestamps are UTC instants, as Spark's with a UTC session time zone."""
    import pyarrow as pa

    return {
        "string": pa.string(),
        "double": pa.float64(),
        "float": pa.float32(),
        "bigint": pa.int64(),
        "int": pa.int32(),
        "boolean": pa.bool_(),
        "date": pa.date32(),
        "timestamp": pa.timestamp("us", tz="UTC"),
    }


def small_schema(schema: str) -> pa.Schema:
    """The Arrow schema of a simple DDL schema (``simple_arrow_types``); other types are refused
    with their column."""
    import pyarrow as pa

    arrow_types = simple_arrow_types()
    fields = []
    for part in schema.split(","):
        name, _, kind = part.strip().partition(" ")
        kind = kind.strip().lower()
        if not name or kind not in arrow_types:
            raise BadInputError(
                f"small_frame schema: {part.strip()!r} is not '<column> <one of {list(arrow_types)}>'"
            )
        fields.append((name, arrow_types[kind]))
    return pa.schema(fields)
