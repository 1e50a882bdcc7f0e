"""The knowledge-refresh DAG of one environment: the assistant's corpus → chunks and embeddings in
a Delta table → a vector index of that table version (jobs.knowledge_refresh)."""

from __future__ import annotations

from airflow.sdk import DAG

from dag_factories.common import dag_kwargs, table_asset
from dag_factories.compute import job_task
from jobs.config.base import ConfigError
from jobs.config.loader import load_config

DOC = """
### Knowledge refresh — `{env}`

The **{assistant}** assistant's knowledge base: its corpus (`{corpus}`) is chunked ({max_chars}
characters at most, {overlap} repeated), checked, embedded ({model}, {dim} dimensions) and written
to `{table}` — chunk id, document, position, text, embedding: the shape Databricks Vector Search
syncs from — then indexed (an exact inner-product index per table version, under
`storage.index_root`).

- **Idempotent per knowledge version** (the documents, the chunking and the embedding model): a run
  that finds its version already written commits nothing; only chunks the table lacks are embedded.
- **Quality**: empty and duplicate chunks go to `{table}_quarantine` with the reason; the rest must
  pass `include/assistants/{assistant}/expectations/{chunks}.json` (at least {min_chunks} chunks,
  unique ids, bounded text) and the embedding checks (dimension, finite unit vectors) before any
  commit. A crash between the commit and the index is healed by the next run.
- Emits the chunks table's Asset. Schedule: `{schedule}`.
"""


def build_knowledge_refresh_dag(env: str) -> DAG:
    config = load_config(env)
    assistant = config.assistant
    if assistant is None:
        raise ConfigError(f"{env}: the knowledge refresh needs an `assistant:` section")
    schedule = config.schedules.knowledge_refresh
    kwargs = dag_kwargs(config, "knowledge_refresh", schedule, "", ["llmops"])
    corpus = assistant.corpus.mapping or str(assistant.corpus.folder)
    kwargs["doc_md"] = DOC.format(
        env=env,
        assistant=assistant.name,
        corpus=corpus,
        max_chars=assistant.chunking.max_chars,
        overlap=assistant.chunking.overlap_chars,
        model=assistant.embedding_model,
        dim=assistant.embedding_dim,
        table=f"{config.catalog}.{config.schemas.gold}.{assistant.chunks_table}",
        chunks=assistant.chunks_table,
        min_chunks=assistant.corpus.min_chunks,
        schedule=schedule or "manual only",
    )
    with DAG(**kwargs, max_active_runs=1) as dag:
        job_task(
            config,
            task_id="refresh_knowledge",
            job="knowledge_refresh",
            arguments=["--run-id", "{{ run_id }}"],
            outlets=[table_asset(config, "gold", assistant.chunks_table)],
            doc_md="Corpus → checked chunks → embeddings → the chunks table's snapshot → its vector index.",
        )
    return dag
