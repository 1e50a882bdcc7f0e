"""MLflow's scoring protocol: request bodies into rows, predictions into the response body."""

from __future__ import annotations

import io
import json
from typing import TYPE_CHECKING, Any

from jobs.common.errors import BadInputError

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

JSON_FORMATS = ("dataframe_split", "dataframe_records", "inputs", "instances")


class BadRequestError(BadInputError):
    """A request the endpoint cannot score: answered 400 with this sentence."""


def parse_body(body: bytes, content_type: str) -> pd.DataFrame:
    """The rows of a request body in one of MLflow's formats (JSON or CSV), as pandas; raises
    ``BadRequestError`` naming what is wrong with the body."""
    media = (content_type or "application/json").split(";")[0].strip().lower()
    if media == "text/csv":
        return _from_csv(body)
    if media != "application/json":
        raise BadRequestError(f"content type {media!r} is not supported: send application/json or text/csv")
    try:
        payload = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadRequestError(f"the body is not valid JSON: {exc}") from None
    if not isinstance(payload, dict) or len(set(payload) & set(JSON_FORMATS)) != 1:
        keys = sorted(payload) if isinstance(payload, dict) else type(payload).__name__
        raise BadRequestError(
            f"the body must be a JSON object with exactly one of {list(JSON_FORMATS)} (got {keys})"
        )
    return _from_json(payload)


def _from_json(payload: dict[str, Any]) -> pd.DataFrame:
    import pandas as pd
    from mlflow.exceptions import MlflowException
    from mlflow.pyfunc.scoring_server import infer_and_parse_data

    data = {key: value for key, value in payload.items() if key in JSON_FORMATS}
    try:
        parsed = infer_and_parse_data(data)  # MLflow's own parser: the same semantics as its server
    except MlflowException as exc:
        raise BadRequestError(
            f"the body is not in MLflow's scoring format: {exc.message.splitlines()[0]}"
        ) from None
    if isinstance(parsed, pd.DataFrame):
        return parsed
    try:
        if isinstance(parsed, dict):  # "inputs"/"instances" by column: {column: values}
            return pd.DataFrame({name: _plain(values) for name, values in parsed.items()})
        if isinstance(parsed, list) and all(isinstance(record, dict) for record in parsed):  # records
            return pd.DataFrame(
                [{name: _plain(value) for name, value in record.items()} for record in parsed]
            )
    except (TypeError, ValueError) as exc:
        raise BadRequestError(f"'inputs' must give every column the same number of values: {exc}") from None
    raise BadRequestError("'inputs' must name its columns: a list of records or an object of column lists")


def _plain(value: Any) -> Any:
    """MLflow's tensor parsing gives numpy arrays and 0-d arrays: back to Python values."""
    return value.tolist() if hasattr(value, "tolist") else value


def _from_csv(body: bytes) -> pd.DataFrame:
    import pandas as pd

    try:
        return pd.read_csv(io.BytesIO(body))
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise BadRequestError(f"the body is not CSV with a header row: {str(exc).splitlines()[0]}") from None


def as_arrow(frame: pd.DataFrame, max_rows: int) -> pa.Table:
    """The request's rows as Arrow (what the scorer takes); empty or oversized inputs are refused."""
    import pyarrow as pa

    if frame.empty:
        raise BadRequestError("the request holds no rows to score")
    if len(frame) > max_rows:
        raise BadRequestError(f"the request holds {len(frame)} rows; at most {max_rows} per request")
    try:
        return pa.Table.from_pandas(frame, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise BadRequestError(f"a column mixes types: {exc}") from None
