"""The assistant's figures of `make bench`: the knowledge refresh of the whole corpus (embedding
throughput, index build), the chain built, judged and promoted by its jobs, then the endpoint's
/assistant/ask under Locust (loopback, bounded) and the chain against its retriever alone in one
process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from background import free_port, kill_group  # scripts/ is on the path (this file's folder)

ROOT = Path(__file__).resolve().parents[1]
QUESTIONS = [
    "How do I leave a loop early?",
    "What does the with statement do?",
    "How do I define a class?",
    "What values are false in a boolean context?",
    "How do I format a float with two decimals?",
]


def _in_process(data: Path) -> dict:
    """Embedding throughput, index build time, and the Champion chain vs its retriever alone."""
    os.environ["RUNWAY_DATA_DIR"] = str(data)
    import mlflow
    import numpy as np

    from jobs.assistant.knowledge import Embedder, VectorIndex
    from jobs.config.loader import load_config
    from jobs.runtime.mlflow_setup import point_mlflow
    from jobs.tablestore import open_table_store

    config = load_config("dev")
    store = open_table_store(config)
    chunks = store.read_pandas(
        store.name("gold", config.assistant.chunks_table), columns=["chunk_id", "text", "embedding"]
    )
    embedder = Embedder()
    sample = chunks.text.head(128).tolist()
    embedder.passages(sample[:4])  # warm
    started = time.perf_counter()
    embedder.passages(sample)
    chunks_per_second = len(sample) / (time.perf_counter() - started)
    vectors = np.vstack(chunks.embedding.to_numpy()).astype(np.float32)
    started = time.perf_counter()
    VectorIndex.build(chunks.chunk_id.tolist(), vectors, {}).save(data / "bench_index")
    index_seconds = time.perf_counter() - started
    point_mlflow(config)
    chain = mlflow.pyfunc.load_model(f"models:/{config.assistant_target.registered_model_name}@Champion")
    inner = chain.unwrap_python_model().chain
    questions = QUESTIONS * 40
    started = time.perf_counter()
    for question in questions:
        inner.index.search(embedder.queries([question]), inner.k)
    retriever = len(questions) / (time.perf_counter() - started)
    started = time.perf_counter()
    for question in questions:
        inner.answer(question)
    whole = len(questions) / (time.perf_counter() - started)
    return {
        "embedding_chunks_per_second": round(chunks_per_second, 1),
        "chunks": len(chunks),
        "index_build_seconds": round(index_seconds, 4),
        "retriever_questions_per_second": round(retriever, 1),
        "chain_questions_per_second": round(whole, 1),
        "chain_vs_retriever": round(whole / retriever, 3),
    }


def assistant_figure(data: Path, run_job) -> dict:
    """``run_job(label, data, *args)`` runs a job against ``data`` and returns its wall seconds."""
    from jobs.serving.load import run_locust

    refresh = run_job("assistant_knowledge_refresh", data, "jobs.knowledge_refresh", "--env", "dev")
    again = run_job("assistant_knowledge_refresh_again", data, "jobs.knowledge_refresh", "--env", "dev")
    build = run_job("assistant_build", data, "jobs.build_assistant", "--env", "dev")
    judge = run_job("assistant_evaluate", data, "jobs.evaluate_assistant", "--env", "dev")
    run_job("assistant_promote", data, "jobs.promote", "promote", "--model", "assistant", "--env", "dev")
    measured = json.loads(
        subprocess.run(
            [
                sys.executable,
                "-c",
                f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
                f"import json, bench_assistant as b; from pathlib import Path; "
                f"print(json.dumps(b._in_process(Path({str(data)!r}))))",
            ],
            env={**os.environ, "RUNWAY_DATA_DIR": str(data)},
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    port, log = free_port(), data / "assistant_serve.log"
    env = {**os.environ, "RUNWAY_DATA_DIR": str(data), "RUNWAY_SERVING_WAL_ROOT": str(data / "assistant_wal")}
    with log.open("w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "jobs.serve", "--env", "dev", "--port", str(port)],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for_answer(url, server, log)
        body = json.dumps({"question": QUESTIONS[0]}).encode()
        levels = {
            users: run_locust(url, body, users, 10, data / "assistant_locust", path="/assistant/ask").__dict__
            for users in (1, 4)
        }
    finally:
        kill_group(server.pid)
    return {
        "knowledge_refresh_seconds": round(refresh, 1),
        "knowledge_refresh_again_seconds": round(again, 1),
        "build_seconds": round(build, 1),
        "evaluate_seconds": round(judge, 1),
        **measured,
        "endpoint": {f"{users}_clients": figures for users, figures in levels.items()},
        "endpoint_p50_ms": levels[1]["p50_ms"],
        "endpoint_p99_ms": levels[1]["p99_ms"],
    }


def _wait_for_answer(url: str, server: subprocess.Popen, log: Path, seconds: float = 180) -> None:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the endpoint exited: {log.read_text()[-2000:]}")
        try:
            request = urllib.request.Request(
                url + "/assistant/ask",
                data=b'{"question": "What is pass?"}',
                headers={"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=10) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    raise SystemExit(f"the endpoint served no chain within {seconds:g} s: {log.read_text()[-2000:]}")
