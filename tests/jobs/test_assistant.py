"""The assistant's lifecycle on real embeddings, a real index, a real MLflow registry (prompts
and chains) and real Delta: build → evaluation gate → promotion and rollback by alias, the prompt's
Champion alias following the chain's; a worse retriever and a prompt that drops the context are
stopped; a generative round trip through the loopback stand-in records tokens and traces."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jobs.assistant.build import build
from jobs.assistant.evaluation import evaluate
from jobs.assistant.knowledge_refresh import refresh_knowledge
from jobs.config.traffic import Traffic
from jobs.core.errors import BadInputError
from jobs.release.champion import audit_trail, promote, rollback
from jobs.release.registry import CHALLENGER, FAILED, PASSED, STATUS_TAG
from jobs.release.rollout import set_traffic
from tests.jobs.test_knowledge_refresh import assistant_config
from tests.llm_standin import ChatStandIn

HERE = Path(__file__).parent / "assistant"


@pytest.fixture(scope="module")
def assistant(tmp_path_factory):
    """The test corpus refreshed once, an MLflow store of the module's own."""
    from jobs.tablestore import open_table_store

    root = tmp_path_factory.mktemp("assistant")
    config = assistant_config(root)
    config = config.model_copy(
        update={
            "assistant": config.assistant.model_copy(update={"questions_file": HERE / "questions.yaml"}),
            "mlflow": config.mlflow.model_copy(
                update={
                    "tracking_uri": f"sqlite:///{root}/mlflow.db",
                    "registry_uri": None,
                    "artifact_root": str(root / "artifacts"),
                }
            ),
        }
    )
    store = open_table_store(config)
    refresh_knowledge(config, store, "knowledge-1")
    return config, store


def _registry(config):
    from jobs.release.registry import ModelRegistry

    return ModelRegistry.for_config(config, config.assistant_target)


def _prompt_champion(config) -> int:
    import mlflow

    return int(mlflow.genai.load_prompt(f"prompts:/{config.assistant_target.prompt_name}@Champion").version)


def test_chains_pass_the_gate_get_promoted_and_roll_back_with_their_prompt(assistant, tmp_path):
    config, store = assistant
    chain, registry = config.assistant_target, _registry(config)
    first = build(config, store, "build-1")
    assert (
        first["created"]
        and first["assistant.prompt_version"] == "1"
        and first["assistant.index_version"] == "0"
    )
    assert build(config, store, "build-1-retry") == {
        **first,
        "created": False,
    }  # the same parts: same version
    judged = evaluate(config, first["version"], "eval-1")
    assert judged["status"] == PASSED and judged["decision"] == "promote" and judged["champion"] is None
    assert judged["metrics"]["recall_at_k"] >= 0.9 and judged["metrics"]["groundedness"] == 1.0
    assert registry.alias_version(CHALLENGER) == first["version"]
    assert evaluate(config, first["version"], "eval-1-retry")["changed"] is False
    promote(config, store, "promote-1", target=chain)  # the prompt's Champion alias follows the chain's
    assert registry.alias_version("Champion") == first["version"] and _prompt_champion(config) == 1

    # A worse retriever (k=1) passes its floors but is worse than the Champion in the same run: kept out.
    narrow = build(config, store, "build-2", k=1)
    verdict = evaluate(config, narrow["version"], "eval-2")
    assert (
        verdict["status"] == PASSED
        and verdict["decision"] == "keep"
        and verdict["champion"] == first["version"]
    )
    assert "recall_at_k" in verdict["reasons"] and registry.alias_version(CHALLENGER) is None
    with pytest.raises(BadInputError, match="did not win a comparison"):
        promote(config, store, "promote-2", narrow["version"], target=chain)

    # A reworded prompt: a new prompt version, as good as the Champion → promoted; the prompt follows.
    reworded = tmp_path / "prompt.txt"
    reworded.write_text(
        config.assistant.file(config.assistant.prompt_file)
        .read_text()
        .replace("at most three", "up to three")
    )
    second = build(config, store, "build-3", prompt_file=reworded)
    assert second["assistant.prompt_version"] == "2"
    assert evaluate(config, second["version"], "eval-3")["decision"] == "promote"
    promote(config, store, "promote-3", target=chain)
    assert registry.alias_version("Champion") == second["version"] and _prompt_champion(config) == 2

    rollback(config, store, "rollback-1", "ann", "answers got worse", target=chain)
    assert registry.alias_version("Champion") == first["version"] and _prompt_champion(config) == 1
    import mlflow

    # Killed after the chain's alias moved, before the prompt's: the retry moves nothing and heals it.
    mlflow.genai.set_prompt_alias(chain.prompt_name, alias="Champion", version=2)
    again = rollback(
        config, store, "rollback-1", "ann", "retry", target=chain
    )  # the same request: nothing moves
    assert again["changed"] is False and registry.alias_version("Champion") == first["version"]
    assert _prompt_champion(config) == 1
    moves = [
        (e["action"], e["to_version"])
        for e in audit_trail(store, chain.registered_model_name)
        if e["status"] == "done"
    ]
    assert moves == [
        ("promote", first["version"]),
        ("promote", second["version"]),
        ("rollback", first["version"]),
    ]


def test_a_busy_machine_gets_the_quiet_verdict_and_every_trace(assistant):
    """Under load on a SQLite store the evaluation exhausted the tracking pool: traces lost, every
    score NaN, p95 the pool's 30 s time-out, a good chain FAILED. With two busy processes beside it,
    the same chain now logs a trace per question and scores as on a quiet machine."""
    import subprocess
    import sys

    import mlflow

    from jobs.assistant.evaluation import evaluate_chain, verdict_of
    from jobs.assistant.gate import METRICS, load_questions
    from jobs.runtime.mlflow_setup import configure_mlflow

    config, store = assistant
    chain = config.assistant_target
    version = build(config, store, "busy-build")["version"]  # the first test's parts: its version
    questions = load_questions(config)
    mlflow.set_experiment(experiment_id=configure_mlflow(config, chain))

    def judged(name: str) -> tuple[dict, list]:
        with mlflow.start_run(run_name=name) as parent:
            figures = evaluate_chain(config, chain, version, questions, "candidate")
        [child] = mlflow.search_runs(
            filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'", output_format="list"
        )
        mlflow.flush_trace_async_logging()
        return figures, mlflow.search_traces(run_id=child.info.run_id, return_type="list")

    quiet, quiet_traces = judged("quiet")
    spinners = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import time\nend = time.monotonic() + 600\nwhile time.monotonic() < end: pass",
            ]
        )
        for _ in range(2)
    ]
    try:
        busy, busy_traces = judged("busy")
    finally:
        for spinner in spinners:
            spinner.kill()
    assert len(quiet_traces) == len(busy_traces) == len(questions)
    assert {m: busy[m] for m in METRICS} == {m: quiet[m] for m in METRICS}
    assert verdict_of(config, busy, None) == verdict_of(config, quiet, None)
    assert verdict_of(config, busy, None).passed


def test_a_generative_chain_through_the_stand_in_records_tokens_and_a_prompt_without_context_fails(
    assistant, tmp_path, monkeypatch
):
    import mlflow
    import pandas as pd

    config, store = assistant
    with ChatStandIn() as llm:
        monkeypatch.setenv("RUNWAY_LLM_API_KEY", "secret-token")
        generator = config.assistant.generator.model_copy(
            update={"endpoint": llm.url, "model": "standin-chat"}
        )
        generative = config.model_copy(
            update={"assistant": config.assistant.model_copy(update={"generator": generator})}
        )
        built = build(generative, store, "gen-1")
        assert built["created"] and built["assistant.generator"] == "standin-chat"
        chain = mlflow.pyfunc.load_model(
            f"models:/{generative.assistant_target.registered_model_name}/{built['version']}"
        )
        [row] = chain.predict(pd.DataFrame({"question": ["What does the pass statement do?"]})).to_dict(
            "records"
        )
        assert row["mode"] == "generative" and row["prompt_tokens"] > 50 and row["completion_tokens"] > 0
        assert json.loads(row["citations"]) == ["pass"] and llm.requests[-1]["auth"] == "Bearer secret-token"
        assert "[pass]" in llm.requests[-1]["messages"][0]["content"]  # the context went into the prompt

        judged = evaluate(generative, built["version"], "gen-eval-1")
        assert judged["status"] == PASSED and judged["metrics"]["judged_groundedness"] >= 0.9, (
            judged["reasons"],
            judged["metrics"],
        )
        client = mlflow.MlflowClient()
        run = client.get_run(
            client.get_model_version(
                generative.assistant_target.registered_model_name, built["version"]
            ).tags["evaluation.run_id"]
        )
        traces = mlflow.search_traces(locations=[run.info.experiment_id], return_type="list")
        assert len(traces) >= 12  # one per question and chain

        blind = tmp_path / "blind.txt"
        blind.write_text("Answer the question about Python.\nQuestion: {{question}}\nAnswer:")
        dropped = build(generative, store, "gen-2", prompt_file=blind)
        verdict = evaluate(generative, dropped["version"], "gen-eval-2")
        assert verdict["status"] == FAILED and "groundedness" in verdict["reasons"], verdict
        tags = _registry(config).version(dropped["version"]).tags
        assert (
            tags[STATUS_TAG] == FAILED and _registry(config).alias_version(CHALLENGER) != dropped["version"]
        )


def test_the_endpoint_answers_with_traces_logs_every_question_and_records_feedback_once(assistant, tmp_path):
    """``python -m jobs.serve`` on loopback: /assistant/ask answers with the Champion chain inside a
    trace, every outcome reaches the assistant's inference table (through its WAL, after SIGTERM),
    and feedback lands on the trace and in Delta, once per request and user."""
    import shutil

    import mlflow

    from jobs.release.registry import ModelRegistry
    from tests.jobs.test_serving import ROOT, Server, call

    config, store = assistant
    chain = config.assistant_target
    champion = ModelRegistry.for_config(config, chain).alias_version("Champion")
    if champion is None:  # this test alone: make a Champion
        champion = build(config, store, "serve-build")["version"]
        evaluate(config, champion, "serve-eval")
        promote(config, store, "serve-promote", champion, target=chain)
    configs = tmp_path / "configs"
    shutil.copytree(ROOT / "include" / "configs", configs)
    root = Path(config.storage.lakehouse_root).parent
    env = {
        **__import__("os").environ,
        "RUNWAY_CONFIG_DIR": str(configs),
        "RUNWAY_DATA_DIR": str(root),
        "MLFLOW_TRACKING_URI": config.mlflow.tracking_uri,
        "MLFLOW_ARTIFACT_ROOT": str(root / "artifacts"),
        "RUNWAY_SERVING_WAL_ROOT": str(tmp_path / "wal"),
        "RUNWAY_SERVING_POLL_SECONDS": "1",
    }
    env.pop("MLFLOW_REGISTRY_URI", None)
    server = Server(env, tmp_path / "server.log").start(ready=False)
    try:
        question = {"question": "How do I leave a loop early?", "user_id": "ann"}
        for _ in range(120):  # the follower loads the Champion chain
            status, answer, headers = call(server.url, "/assistant/ask", json.dumps(question).encode())
            if status == 200:
                break
            __import__("time").sleep(0.5)
        assert status == 200 and answer["version"] == champion and answer["mode"] == "extractive", answer
        assert answer["citations"] and {p["doc_id"] for p in answer["passages"]} & {"break", "while", "for"}
        assert answer["trace_id"] and headers["x-request-id"] == answer["request_id"]
        second = call(server.url, "/assistant/ask", json.dumps({"question": "What does pass do?"}).encode())[
            1
        ]
        assert call(server.url, "/assistant/ask", b'{"question": "  "}')[0] == 400
        assert call(server.url, "/assistant/ask", b"not json")[0] == 400

        feedback = {"request_id": answer["request_id"], "user_id": "ann", "rating": 2, "comment": "too long"}
        assert call(server.url, "/assistant/feedback", json.dumps(feedback).encode())[0] == 200
        feedback["rating"] = 4  # the same user again: replaces
        assert call(server.url, "/assistant/feedback", json.dumps(feedback).encode())[0] == 200
        assert (
            call(server.url, "/assistant/feedback", json.dumps({**feedback, "rating": 9}).encode())[0] == 400
        )
        unknown = call(
            server.url, "/assistant/feedback", json.dumps({**feedback, "request_id": "nope"}).encode()
        )
        assert unknown[0] == 404

        # A/B by user and a shadow, through the chain's traffic tag (the model routes' machinery).
        other = build(config, store, "serve-ab", k=2)["version"]
        from jobs.release.promotion import COMPARED_WITH_TAG, DECISION_TAG, PROMOTE

        # An answering route needs a version that may be promoted now (as its gate would leave it).
        ModelRegistry.for_config(config, chain).set_tags(
            other, {STATUS_TAG: PASSED, COMPARED_WITH_TAG: champion, DECISION_TAG: PROMOTE}
        )
        split = {
            "routes": [
                {"name": "champion", "alias": "Champion", "percent": 50},
                {"name": "candidate", "version": other, "percent": 50},
            ],
            "shadow": {"version": other},
            "sticky_key": "user_id",
        }
        set_traffic(
            config,
            store,
            Traffic.from_dict(split),
            requested_by="ann",
            reason="chain A/B",
            run_id="ab-1",
            target=chain,
        )

        def ask(question: str, user: str) -> dict:
            return call(
                server.url, "/assistant/ask", json.dumps({"question": question, "user_id": user}).encode()
            )[1]

        for i in range(120):  # the follower loads the other version, then puts the split in force
            if ask("What does pass do?", f"probe{i}").get("route") == "candidate":
                break
            __import__("time").sleep(0.25)
        seen = {}
        for user in (f"user{i}" for i in range(16)):
            reply = ask("What does pass do?", user)
            seen[user] = (reply["route"], reply["version"])
            assert ask("What is a lambda?", user)["route"] == reply["route"]  # sticky per user
        assert {route for route, _ in seen.values()} == {"champion", "candidate"}
        assert {v for r, v in seen.values() if r == "candidate"} == {other}
        set_traffic(
            config,
            store,
            chain.configured_traffic(),
            requested_by="ann",
            reason="A/B over",
            run_id="ab-2",
            target=chain,
        )
    finally:
        assert server.stop() in (0, -15)  # SIGTERM: the WAL is committed on the way out

    logged = store.read_pandas(store.name("ml", "python_reference_inference_log"))
    assert sorted(logged.status.unique()) == [200, 400] and (logged.status == 400).sum() == 2
    shadowed = logged[logged.route == "shadow"]
    assert len(shadowed) >= 32 and shadowed.model_version.eq(other).all()  # the A/B answers, shadowed
    assert set(shadowed.request_id) <= set(logged[logged.route != "shadow"].request_id)
    ok = logged[(logged.status == 200) & (logged.route == "champion")].set_index("request_id")
    assert json.loads(ok.loc[answer["request_id"], "chunk_ids"]) == [
        p["chunk_id"] for p in answer["passages"]
    ]
    assert ok.loc[answer["request_id"], "trace_id"] == answer["trace_id"]
    assert ok.loc[[answer["request_id"], second["request_id"]]].model_version.eq(champion).all()
    assert set(logged[logged.status == 400].error.str[:12]) == {"the body nee", "the body is "}
    ratings = store.read_pandas(store.name("ml", "python_reference_feedback"))
    assert ratings[["request_id", "user_id", "rating", "comment"]].values.tolist() == [
        [answer["request_id"], "ann", 4, "too long"]
    ]
    trace = mlflow.get_trace(answer["trace_id"])
    assert {span.name for span in trace.data.spans} >= {"assistant.ask", "retrieve"}
    assert [a.value for a in trace.info.assessments if a.name == "user_rating"][-1] == 4


def test_monitoring_reads_the_window_of_questions_and_asks_for_reevaluation_when_they_drift(assistant):
    """Synthetic answered questions in a window of their own: on-topic ones with good scores are
    within limits; questions unlike any evaluation question ask for re-evaluation; unanswered ones
    for a re-index. The window's figures replace its rows on a rerun."""
    from datetime import UTC, date, datetime, timedelta

    import pyarrow as pa

    from jobs.assistant.monitoring import monitor
    from jobs.core.window import Window
    from jobs.serving.assistant_endpoint import log_table

    config, store = assistant
    table = store.name("ml", "python_reference_inference_log")
    window = Window(date(2026, 1, 5), date(2026, 1, 6))

    def rows(questions: list[str], no_answer: bool = False) -> pa.Table:
        at = datetime(2026, 1, 5, 9, tzinfo=UTC)
        return log_table(
            [
                {
                    "request_id": f"m{i}-{hash(q) % 10**8}",
                    "requested_at": (at + timedelta(minutes=i)).isoformat(),
                    "route": "champion",
                    "status": 200,
                    "model_version": "1",
                    "question": q,
                    "no_answer": no_answer,
                    "top_score": 0.7 if no_answer else 0.86,
                    "answer": "x",
                }
                for i, q in enumerate(questions)
            ]
        )

    day = "requested_at >= '2026-01-05' AND requested_at < '2026-01-06'"
    on_topic = [
        "How do I leave a loop early?",
        "What does continue do in a loop?",
        "How do I write a lambda?",
    ] * 10
    store.overwrite(table, rows(on_topic), predicate=day) if store.exists(table) else store.overwrite(
        table, rows(on_topic)
    )
    calm = monitor(config, store, window, "mon-1")
    json.dumps(calm, allow_nan=False)  # strict JSON for XCom: no rating yet is absent, not NaN
    assert calm["figures"]["requests"] == 30 and calm["figures"]["uncovered_share"] < 0.3
    assert calm["action"] in ("none", "reevaluate") and not any("unlike" in r for r in calm["reasons"])

    off_topic = [
        "What is the weather in Paris tomorrow?",
        "Recommend a pasta recipe with tomatoes.",
        "Who won the football world cup?",
    ] * 10
    store.overwrite(table, rows(off_topic), predicate=day)
    drifted = monitor(config, store, window, "mon-2")
    assert (
        drifted["action"] == "reevaluate" and drifted["act"] and drifted["figures"]["uncovered_share"] > 0.9
    )

    store.overwrite(table, rows(on_topic, no_answer=True), predicate=day)
    assert monitor(config, store, window, "mon-3")["action"] == "reindex"
    figures = store.read_pandas(store.name("monitoring", "assistant_metrics"))
    ours = figures[figures.window_start == window.start]
    assert ours.metric.is_unique and ours.run_id.eq("mon-3").all()  # the rerun replaced the window's rows
