"""MLflow's scoring protocol: request bodies into Arrow rows (what the scorer takes).

The JSON shapes are MLflow's (``dataframe_split``, ``dataframe_records``, ``inputs``/``instances``
as records or as columns), CSV is a header row and values. Bodies go straight to Arrow (pyarrow
infers each column's type; the scorer then checks and casts to the model's signature), without a
pandas frame per request: on a 2-core machine that per-request cost is what bounds throughput.
"""

from __future__ import annotations

import io
import json
import math
import sys
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from pyarrow import csv

from jobs.core.errors import BadInputError

if TYPE_CHECKING:
    import pyarrow as pa

JSON_FORMATS = ("dataframe_split", "dataframe_records", "inputs", "instances")


class BadRequestError(BadInputError):
    """A request the endpoint cannot score: answered 400 with this sentence."""


class _NotFinite:
    """A number written in the body that no double holds (``1e400``, ``Infinity``): kept as
    written, so that the column holding it can be named."""

    def __init__(self, text: str) -> None:
        self.text = text


def _number(text: str) -> float | _NotFinite:
    value = float(text)
    return value if math.isfinite(value) else _NotFinite(text)


def load_json(body: bytes | None) -> Any:
    """A JSON body; ``BadRequestError`` for one that is not JSON or nests deeper than the parser
    goes (a body of 5,000 nested arrays). Numbers too large for a double stay ``_NotFinite``."""
    try:
        return json.loads(body or b"", parse_float=_number, parse_constant=_constant)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadRequestError(f"the body is not valid JSON: {exc}") from None
    except RecursionError:
        raise BadRequestError(
            f"the body nests deeper than {sys.getrecursionlimit()} levels: send records or columns"
        ) from None


def _constant(text: str) -> float | _NotFinite:
    return float("nan") if text == "NaN" else _NotFinite(text)  # NaN: a missing value, as pandas reads it


def parse_body(body: bytes, content_type: str, max_rows: int) -> pa.Table:
    """The rows of a request body in one of MLflow's formats (JSON or CSV); raises
    ``BadRequestError`` naming what is wrong with the body, or that it holds no or too many rows."""
    media = (content_type or "application/json").split(";")[0].strip().lower()
    if media == "text/csv":
        table = _from_csv(body)
    elif media == "application/json":
        table = _from_json(body)
    else:
        raise BadRequestError(f"content type {media!r} is not supported: send application/json or text/csv")
    if table.num_rows == 0:
        raise BadRequestError("the request holds no rows to score")
    if table.num_rows > max_rows:
        raise BadRequestError(f"the request holds {table.num_rows} rows; at most {max_rows} per request")
    return table


def _from_json(body: bytes) -> pa.Table:
    payload = load_json(body)
    keys = set(payload) & set(JSON_FORMATS) if isinstance(payload, dict) else set()
    if len(keys) != 1:
        shown = sorted(payload) if isinstance(payload, dict) else type(payload).__name__
        raise BadRequestError(
            f"the body must be a JSON object with exactly one of {list(JSON_FORMATS)} (got {shown})"
        )
    [key] = keys
    data = payload[key]
    if key == "dataframe_split":
        if not isinstance(data, dict) or not isinstance(data.get("columns"), list):
            raise BadRequestError("'dataframe_split' needs 'columns' and 'data' (pandas' split orientation)")
        rows = data.get("data") or []
        if any(len(row) != len(data["columns"]) for row in rows):
            raise BadRequestError("'dataframe_split': every row of 'data' needs one value per column")
        return _table({name: [row[i] for row in rows] for i, name in enumerate(data["columns"])})
    if isinstance(data, dict):  # inputs/instances by column: {column: [values]}
        if not all(isinstance(values, list) for values in data.values()):
            raise BadRequestError(f"'{key}' by column needs a list of values per column")
        if len({len(values) for values in data.values()}) > 1:
            raise BadRequestError(f"'{key}': every column needs the same number of values")
        return _table(data)
    if isinstance(data, list) and all(isinstance(record, dict) for record in data):  # records
        names = list(dict.fromkeys(name for record in data for name in record))
        return _table({name: [record.get(name) for record in data] for name in names})
    raise BadRequestError(f"'{key}' must name its columns: a list of records or an object of column lists")


def _table(columns: dict[str, list[Any]]) -> pa.Table:

    arrays = {}
    for name, values in columns.items():
        try:
            arrays[name] = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            if huge := next((v for v in values if isinstance(v, _NotFinite)), None):
                raise BadRequestError(
                    f"column {name!r} holds {huge.text}, a number too large for a double"
                ) from None
            raise BadRequestError(f"column {name!r} mixes types: {str(exc).splitlines()[0]}") from None
    return pa.table(arrays)


def _from_csv(body: bytes) -> pa.Table:

    try:
        return csv.read_csv(io.BytesIO(body))
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        raise BadRequestError(f"the body is not CSV with a header row: {str(exc).splitlines()[0]}") from None
