"""Reading the gold table for the lifecycle: labelled windows, labels joined to predictions."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from jobs.core.errors import BadInputError, MissingInputError
from jobs.features.use_case_check import check_gold_columns

if TYPE_CHECKING:
    from jobs.config.env import EnvConfig
    from jobs.core.window import Window
    from jobs.tablestore import TableStore


def with_gold_labels(
    config: EnvConfig, store: TableStore, rows: pd.DataFrame, window: Window | None = None
) -> pd.DataFrame:
    """Predictions (batch or logged) with gold's label joined on the use case's keys (null where gold
    has none), from gold's ``window`` (batch scoring's, whose rows are that window's) or any date
    (requests may name entities of any date); rows that do not carry every key come back
    unchanged. One read of gold's keys and label."""

    features, label = config.use_case.features, config.use_case.model.label
    keys = list(features.keys)
    if rows.empty or not set(keys) <= set(rows.columns) or rows[keys].isna().all(axis=None):
        return rows
    dates = (features.date_column, window.start, window.end) if window is not None else None
    gold = store.read_pandas(store.name("gold", features.table), window=dates, columns=[*keys, label])
    keyed = rows.dropna(subset=keys).astype(gold[keys].dtypes.to_dict())
    return pd.concat([keyed.merge(gold, on=keys, how="left"), rows[rows[keys].isna().any(axis=1)]])


def labelled_gold(
    store: TableStore, config: EnvConfig, window: Window, *, version: int | None = None
) -> tuple[pd.DataFrame, int]:
    """The window's gold rows that have a label (date, features, label) as pandas, and the Delta
    version read (pinned, for lineage)."""
    features, model = config.use_case.features, config.use_case.model
    table = store.name("gold", features.table)
    version = store.version(table) if version is None else version
    check_gold_columns(store.schema(table), config, f"gold table {table}")
    columns = list(
        dict.fromkeys(
            [
                features.date_column,
                *features.keys,
                *model.features.categorical,
                *model.features.numeric,
                model.label,
            ]
        )
    )
    # In a fixed order (date, keys), not the files' order: estimators that sample rows (early
    # stopping's validation split) then fit the same model whatever the table's layout.
    frame = store.read_pandas(
        table,
        version=version,
        window=(features.date_column, window.start, window.end),
        columns=columns,
        order_by=[features.date_column, *features.keys],
    )
    frame = frame[frame[model.label].notna()].reset_index(drop=True)
    if frame.empty:
        raise MissingInputError(f"no labelled rows in {table} for {window}")
    check_binary_label(frame[model.label], f"{table}'s label {model.label!r} in {window}")
    return frame, version


def check_binary_label(labels: pd.Series, what: str, both: bool = False) -> None:
    """A binary task's labels are 0 and 1 (``both``: each of them present, as fitting needs); else
    one sentence, bad input (a retry cannot make a count column binary)."""
    numeric = pd.to_numeric(labels, errors="coerce")  # a text label is NaN here: not binary
    values = sorted({float(v) for v in numeric.dropna().unique()})
    if numeric.isna().any() or not set(values) <= {0.0, 1.0}:
        shown = sorted(map(str, labels.dropna().unique()))[:6]
        raise BadInputError(
            f"{what} holds {shown}{' ...' if labels.nunique() > 6 else ''}: task binary needs labels 0 and 1"
        )
    if both and len(values) < 2:
        raise BadInputError(f"{what} holds only {values[0]:g}: a binary classifier needs both 0 and 1 to fit")


def pinned_gold_version(store: TableStore, config: EnvConfig, tags: dict[str, str]) -> int | None:
    """The gold table's Delta version a model version was trained on (its lineage tag), so that
    validation and comparison score the rows training held out, whatever gold became since."""
    table = store.name("gold", config.use_case.features.table)
    recorded = tags.get(f"delta.version.{table}")
    return int(recorded) if recorded not in (None, "") else None
