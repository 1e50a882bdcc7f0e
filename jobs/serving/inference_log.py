"""The inference table's write path: a write-ahead log on the request path, Delta off it.

Each answered request appends its rows, as JSON lines, to the current WAL segment with one
``write`` to an ``O_APPEND`` file before the response is sent: once a client has its answer, its
rows are in the operating system's hands, so a ``kill -9`` of the server loses none of them. A
flusher thread rotates the segment every ``flush_rows`` rows or ``flush_seconds`` and commits each
closed segment to ``<catalog>.ml.inference_log`` with ``append_once`` (application id of the WAL,
transaction version = the segment's number), then deletes it. A segment committed just before a
crash is committed again after the restart as a no-op, so no request is logged twice. The WAL folder
is locked by one server at a time.

If Delta cannot be written (disk full, a schema the table may not take), serving goes on: the
segments wait, the backlog shows in ``/metrics`` and the next flush tries again.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from jobs.core.errors import BadInputError
from jobs.modeling.scoring import SIGNATURE_ARROW_TYPES
from jobs.tablestore.arrow import simple_arrow_types, small_schema

if TYPE_CHECKING:
    import pyarrow as pa

    from jobs.tablestore import TableName, TableStore

log = logging.getLogger("runway.serving.inference_log")

SEGMENT_SUFFIX = ".jsonl"
# The table's fixed columns (a DDL schema, as small_frame takes); the model's inputs, typed by its
# signature, go between the request's columns and the outputs.
REQUEST_SCHEMA = (
    "request_id string, row_index int, requested_at timestamp, route string, model_name string, "
    "model_version string, model_alias string, status int, latency_ms double, error string"
)
OUTPUT_SCHEMA = "prediction double, predicted_label int"


class WalLockedError(BadInputError):
    """Another server writes this WAL folder."""


@dataclass
class FlushOutcome:
    segments: int = 0
    rows: int = 0
    already_committed: int = 0


class InferenceLog:
    """Append request rows durably; commit them to Delta in the background, once each."""

    def __init__(
        self,
        folder: Path,
        store: TableStore,
        table: TableName,
        *,
        flush_rows: int = 1000,
        flush_seconds: float = 5.0,
        to_arrow: Callable[[list[dict[str, Any]]], pa.Table] | None = None,
    ) -> None:
        """``to_arrow``: a segment's rows as the table's columns (default: a model's request rows,
        ``log_rows``; the assistant's route has its own)."""
        self.folder, self.store, self.table = Path(folder), store, table
        self._to_arrow = to_arrow
        self.flush_rows, self.flush_seconds = flush_rows, flush_seconds
        self.folder.mkdir(parents=True, exist_ok=True)
        self._lock_handle = self._lock_folder()
        self.app_id = f"runway-inference-log-{self._wal_id()}"
        self._write_lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._input_types: dict[str, str] = {}
        committed = self._committed_version()
        left = self._segments()  # a previous process's segments: committed by the first flush
        self._closed_rows = sum(len(read_segment(path)) for _, path in left)
        self._segment = max([committed or 0, *(n for n, _ in left)]) + 1
        self._fd = self._open(self._segment)
        self._rows_in_segment = 0
        self.dropped = 0
        self.flush_errors = 0
        self._stop, self._wake = threading.Event(), threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ the request path

    def append(self, rows: list[dict[str, Any]], input_types: dict[str, str] | None = None) -> bool:
        """Write a request's rows (one ``write``); False (counted as dropped) when the disk refuses."""
        if input_types:
            self._input_types.update(input_types)
        data = "".join(json.dumps(row, default=str, separators=(",", ":")) + "\n" for row in rows).encode()
        with self._write_lock:
            try:
                os.write(self._fd, data)
            except OSError as exc:
                self.dropped += len(rows)
                log.error("inference log: %d row(s) dropped, the WAL cannot be written: %s", len(rows), exc)
                return False
            self._rows_in_segment += len(rows)
            full = self._rows_in_segment >= self.flush_rows
        if full and self._thread is not None:
            self._wake.set()
        return True

    # ------------------------------------------------------------------ the flusher

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="inference-log-flusher", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop the flusher and commit everything written (a clean shutdown leaves no backlog)."""
        self._stop.set()
        if self._thread is not None:
            self._wake.set()
            self._thread.join(timeout=60)
        self.flush()
        with self._write_lock:
            os.close(self._fd)
        self._lock_handle.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.flush_seconds)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.flush()
            except Exception:  # a failing flush must not stop the flusher: the segments wait
                self.flush_errors += 1
                log.exception("inference log: flush failed; the segments stay for the next one")

    def flush(self) -> FlushOutcome:
        """Close the current segment (when it holds rows) and commit every closed segment, in order."""
        with self._flush_lock:
            with self._write_lock:
                if self._rows_in_segment:
                    os.close(self._fd)
                    self._segment += 1
                    self._fd = self._open(self._segment)
                    self._closed_rows += self._rows_in_segment
                    self._rows_in_segment = 0
                current = self._segment
            outcome = FlushOutcome()
            for number, path in self._segments():
                if number >= current:
                    continue
                rows = read_segment(path)
                if rows and self._commit(number, rows):
                    outcome.rows += len(rows)
                    outcome.segments += 1
                elif rows:
                    outcome.already_committed += 1
                path.unlink()
                self._closed_rows -= len(rows)
            return outcome

    def _commit(self, number: int, rows: list[dict[str, Any]]) -> bool:
        table = (
            self._to_arrow(rows) if self._to_arrow else log_rows(rows, self._input_types, self._table_types())
        )
        return self.store.append_once(
            self.table,
            table,
            self.app_id,
            number,
            metadata={"job": "serving.inference_log", "segment": str(number)},
        )

    def backlog(self) -> int:
        """Rows written to the WAL and not yet committed to Delta."""
        return self._closed_rows + self._rows_in_segment

    # ------------------------------------------------------------------ files

    def _segments(self) -> list[tuple[int, Path]]:
        found = []
        for path in self.folder.glob(f"*{SEGMENT_SUFFIX}"):
            with contextlib.suppress(ValueError):
                found.append((int(path.stem), path))
        return sorted(found)

    def _open(self, number: int) -> int:
        path = self.folder / f"{number:012d}{SEGMENT_SUFFIX}"
        return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def _lock_folder(self):
        handle = (self.folder / "server.lock").open("a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise WalLockedError(
                f"another serving process writes the inference log's WAL {self.folder}: give each server its "
                "own "
                "folder (serving.inference_log.wal_root: <root>/<env>)"
            ) from None
        return handle

    def _wal_id(self) -> str:
        """This WAL's identity (the Delta application id's suffix), kept across restarts."""
        path = self.folder / "wal_id"
        if not path.is_file():
            path.write_text(uuid.uuid4().hex)
        return path.read_text().strip()

    def _committed_version(self) -> int | None:
        return (
            self.store.transaction_version(self.table, self.app_id) if self.store.exists(self.table) else None
        )

    def _table_types(self) -> dict[str, str]:
        return self.store.schema(self.table) if self.store.exists(self.table) else {}


class NoInferenceLog:
    """``serving.inference_log.enabled: false``: nothing is logged (to measure what logging costs)."""

    dropped = 0

    def append(self, rows: list[dict[str, Any]], input_types: dict[str, str] | None = None) -> bool:
        return True

    def start(self) -> None: ...

    def close(self) -> None: ...

    def backlog(self) -> int:
        return 0


def read_segment(path: Path) -> list[dict[str, Any]]:
    """A segment's rows; a torn last line (the process died inside its ``write``: never answered) is
    skipped."""
    rows = []
    for line in path.read_bytes().splitlines():
        try:
            rows.append(json.loads(line))
        except (json.JSONDecodeError, UnicodeDecodeError):
            log.warning("inference log: skipped a torn line in %s", path)
    return rows


def log_rows(
    rows: list[dict[str, Any]], input_types: dict[str, str], table_types: dict[str, str]
) -> pa.Table:
    """The rows as the inference table's Arrow columns: the request's, then the inputs (typed as the
    table has them, else by the signature that scored them), then the outputs."""

    def input_type(name: str) -> pa.DataType | None:  # the table's type wins: every segment must fit it
        if name in table_types:
            return simple_arrow_types().get(table_types[name])
        kind = SIGNATURE_ARROW_TYPES.get(input_types.get(name, ""))
        return pa.type_for_alias(kind) if kind else None

    def column(name: str, arrow_type: pa.DataType | None) -> pa.Array:
        values = [row[name] if name in row else (row.get("inputs") or {}).get(name) for row in rows]
        if arrow_type is not None and pa.types.is_timestamp(arrow_type):
            values = [datetime.fromisoformat(v) if v else None for v in values]
        return pa.array(values, type=arrow_type)

    inputs = list(dict.fromkeys(name for row in rows for name in (row.get("inputs") or {})))
    typed = [
        *small_schema(REQUEST_SCHEMA),
        *(pa.field(n, input_type(n) or pa.null()) for n in inputs),
        *small_schema(OUTPUT_SCHEMA),
    ]
    return pa.table({f.name: column(f.name, None if pa.types.is_null(f.type) else f.type) for f in typed})
