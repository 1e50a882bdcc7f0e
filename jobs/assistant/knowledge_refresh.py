"""The knowledge refresh: documents chunked, embedded and indexed behind a quality gate."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa

from jobs.assistant.knowledge import (
    VERSION_KEY,
    Embedder,
    VectorIndex,
    check_embeddings,
    chunk_document,
    index_dir,
    knowledge_version,
    latest_snapshot,
    load_corpus,
    split_checked,
)
from jobs.config.env import EnvConfig
from jobs.core.errors import BadInputError
from jobs.features.quality import QualityGateError, load_suite, validate

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

    from jobs.config.assistant import AssistantConfig
    from jobs.tablestore import TableName, TableStore


log = logging.getLogger("runway.knowledge_refresh")


def assistant_of(config: EnvConfig) -> AssistantConfig:
    if config.assistant is None:
        raise BadInputError(f"environment {config.env!r} configures no assistant (the `assistant:` section)")
    return config.assistant


def chunks_schema(dim: int) -> pa.Schema:

    return pa.schema(
        [
            ("chunk_id", pa.string()),
            ("doc_id", pa.string()),
            ("position", pa.int32()),
            ("text", pa.string()),
            ("embedding", pa.list_(pa.float32(), dim)),
        ]
    )


def written_version(store: TableStore, table: TableName, key: str) -> int | None:
    """The table version that wrote knowledge version ``key``, if it is the latest snapshot."""
    latest = latest_snapshot(store, table)
    return latest[0] if latest is not None and latest[1] == key else None


def embed_new(
    store: TableStore, table: TableName, chunks: list[dict[str, Any]], embedder: Embedder
) -> tuple[np.ndarray, int]:
    """Each chunk's embedding: the table's where it holds the chunk (same id, same model), else new;
    and how many were new."""

    known: dict[str, np.ndarray] = {}
    if store.exists(table):
        held = store.read_pandas(table, columns=["chunk_id", "embedding"])
        known = dict(zip(held.chunk_id, held.embedding, strict=True))
    fresh = [c["text"] for c in chunks if c["chunk_id"] not in known]
    new = iter(embedder.passages(fresh))
    log.info("embedding %d new chunks (%d reused)", len(fresh), len(chunks) - len(fresh))
    if not chunks:
        return np.empty((0, embedder.dim), np.float32), 0
    vectors = [
        np.asarray(known[c["chunk_id"]], np.float32) if c["chunk_id"] in known else next(new) for c in chunks
    ]
    return np.vstack(vectors), len(fresh)


def quality_gate(config: EnvConfig, chunks: list[dict[str, Any]], key: str) -> None:
    """The assistant's expectation suite (``expectations/<chunks_table>.json``) on the good chunks."""

    assistant = assistant_of(config)
    suite_path = assistant.folder / "expectations" / f"{assistant.chunks_table}.json"
    name, expectations = load_suite(suite_path)
    frame = pd.DataFrame(chunks, columns=["chunk_id", "doc_id", "position", "text"])
    outcome = validate(
        frame,
        name,
        expectations,
        severity="fail",
        backend="pandas",
        parameters={"min_chunks": assistant.corpus.min_chunks, "max_chars": assistant.chunking.max_chars},
        report_path=Path(config.storage.reports_root)
        / config.env
        / "data_quality"
        / assistant.chunks_table
        / f"{key}.json",
    )
    if not outcome.success:
        raise QualityGateError(
            f"chunks of knowledge version {key} failed {suite_path.name}: {outcome.summary()}"
        )


def refresh_knowledge(config: EnvConfig, store: TableStore, run_id: str) -> dict[str, Any]:
    """Corpus → checked chunks → embeddings → the chunks table's snapshot → its index."""

    assistant = assistant_of(config)
    documents = load_corpus(assistant.corpus)
    key = knowledge_version(documents, assistant)
    table = store.name("gold", assistant.chunks_table)
    version, written, quarantined, embedded = written_version(store, table, key), 0, 0, 0
    if version is None:
        chunks = [
            c
            for d in documents
            for c in chunk_document(d, assistant.chunking.max_chars, assistant.chunking.overlap_chars)
        ]
        good, bad = split_checked(chunks)
        quality_gate(config, good, key)
        embedder = Embedder(assistant.embedding_model)
        vectors, embedded = embed_new(store, table, good, embedder)
        check_embeddings(vectors, assistant.embedding_dim, f"{table}")
        written, quarantined = len(good), len(bad)
        _quarantine(store, table, bad, key, run_id)
        rows = pa.Table.from_pylist(
            [{**c, "embedding": v.tolist()} for c, v in zip(good, vectors, strict=True)],
            schema=chunks_schema(assistant.embedding_dim),
        )
        metadata = {
            VERSION_KEY: key,
            "run_id": run_id,
            "job": "knowledge_refresh",
            "embedding_model": assistant.embedding_model,
            "documents": str(len(documents)),
        }
        version = store.overwrite(table, rows, metadata=metadata).version
        log.info(
            "%s v%d: %d chunks of %d documents (knowledge version %s)",
            table,
            version,
            len(good),
            len(documents),
            key,
        )
    folder = build_index(config, store, table, version, key)
    return {
        "table": str(table),
        "table_version": version,
        "knowledge_version": key,
        "documents": len(documents),
        "chunks_written": written,
        "newly_embedded": embedded,
        "quarantined": quarantined,
        "index": str(folder),
    }


def _quarantine(
    store: TableStore, table: TableName, bad: list[dict[str, Any]], key: str, run_id: str
) -> None:
    """The knowledge version's quarantined chunks, replaced as a whole (a rerun writes the same rows)."""
    quarantine = store.name("gold", f"{table.table}_quarantine")
    if not bad and not store.exists(quarantine):
        return
    rows = store.small_frame(
        [{**c, VERSION_KEY: key, "run_id": run_id} for c in bad],
        "chunk_id string, doc_id string, position int, text string, reason string, "
        f"{VERSION_KEY} string, run_id string",
    )
    store.overwrite(quarantine, rows, predicate=f"{VERSION_KEY} = '{key}'", metadata={"run_id": run_id})


def build_index(config: EnvConfig, store: TableStore, table: TableName, version: int, key: str):
    """The index of the table's ``version`` (built once; an existing one is kept)."""

    folder = index_dir(config, version)
    if (folder / VectorIndex.MANIFEST).is_file():
        return folder
    rows = store.read_pandas(table, version=version, columns=["chunk_id", "embedding"])
    vectors = np.vstack(rows.embedding.to_numpy()).astype(np.float32) if len(rows) else np.empty((0, 0))
    manifest = {
        "table": str(table),
        "table_version": version,
        VERSION_KEY: key,
        "embedding_model": assistant_of(config).embedding_model,
    }
    VectorIndex.build(rows.chunk_id.tolist(), vectors, manifest).save(folder)
    log.info("index of %s v%d: %d chunks at %s", table, version, len(rows), folder)
    return folder
