"""The assistant's lifecycle on real embeddings, a real index, a real MLflow registry (prompts
and chains) and real Delta: build → evaluation gate → promotion and rollback by alias, the prompt's
Champion alias following the chain's; a worse retriever and a prompt that drops the context are
stopped; a generative round trip through the loopback stand-in records tokens and traces."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jobs.build_assistant import build
from jobs.common.errors import BadInputError
from jobs.common.registry import CHALLENGER, FAILED, PASSED, STATUS_TAG
from jobs.evaluate_assistant import evaluate
from jobs.knowledge_refresh import refresh_knowledge
from jobs.promote import audit_trail, promote, rollback
from tests.jobs.test_knowledge_refresh import assistant_config
from tests.llm_standin import ChatStandIn

HERE = Path(__file__).parent / "assistant"


@pytest.fixture(scope="module")
def assistant(tmp_path_factory):
    """The test corpus refreshed once, an MLflow store of the module's own."""
    from jobs.tablestore import open_table_store

    root = tmp_path_factory.mktemp("assistant")
    config = assistant_config(root)
    config = config.model_copy(update={
        "assistant": config.assistant.model_copy(update={"questions_file": HERE / "questions.yaml"}),
        "mlflow": config.mlflow.model_copy(update={"tracking_uri": f"sqlite:///{root}/mlflow.db", "registry_uri": None,
                                                   "artifact_root": str(root / "artifacts")}),
    })  # fmt: skip
    store = open_table_store(config)
    refresh_knowledge(config, store, "knowledge-1")
    return config, store


def _registry(config):
    from jobs.common.registry import ModelRegistry

    return ModelRegistry.for_config(config.assistant_view())


def _prompt_champion(config) -> int:
    import mlflow

    return int(mlflow.genai.load_prompt(f"prompts:/{config.prompt_name}@Champion").version)


def test_chains_pass_the_gate_get_promoted_and_roll_back_with_their_prompt(assistant, tmp_path):
    config, store = assistant
    view, registry = config.assistant_view(), _registry(config)
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
    promote(view, store, "promote-1")
    from jobs.common.assistant import follow_chain_champion

    follow_chain_champion(view, registry)
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
        promote(view, store, "promote-2", narrow["version"])

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
    promote(view, store, "promote-3")
    follow_chain_champion(view, registry)
    assert registry.alias_version("Champion") == second["version"] and _prompt_champion(config) == 2

    rollback(view, store, "rollback-1", "ann", "answers got worse")
    follow_chain_champion(view, registry)
    assert registry.alias_version("Champion") == first["version"] and _prompt_champion(config) == 1
    again = rollback(view, store, "rollback-1", "ann", "retry")  # the same request: nothing moves
    assert again["changed"] is False and registry.alias_version("Champion") == first["version"]
    moves = [
        (e["action"], e["to_version"])
        for e in audit_trail(store, view.registered_model_name)
        if e["status"] == "done"
    ]
    assert moves == [
        ("promote", first["version"]),
        ("promote", second["version"]),
        ("rollback", first["version"]),
    ]


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
            f"models:/{generative.assistant_view().registered_model_name}/{built['version']}"
        )
        [row] = chain.predict(pd.DataFrame({"question": ["What does the pass statement do?"]})).to_dict(
            "records"
        )
        assert row["mode"] == "generative" and row["prompt_tokens"] > 50 and row["completion_tokens"] > 0
        assert json.loads(row["citations"]) == ["pass"] and llm.requests[-1]["auth"] == "Bearer secret-token"
        assert "[pass]" in llm.requests[-1]["messages"][0]["content"]  # the context went into the prompt

        judged = evaluate(generative, built["version"], "gen-eval-1")
        assert judged["status"] == PASSED and judged["metrics"]["judged_groundedness"] >= 0.9, (judged["reasons"], judged["metrics"])
        client = mlflow.MlflowClient()
        run = client.get_run(client.get_model_version(generative.assistant_view().registered_model_name,
                                                      built["version"]).tags["evaluation.run_id"])  # fmt: skip
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
