"""The dev knowledge-refresh and assistant DAGs run for real with dag.test(): a corpus subset is
chunked, embedded, written and indexed by the job's own process (a second run commits nothing);
the assistant DAG then builds, judges and promotes the chain."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from jobs.config.loader import load_config
from tests.support import ASSISTANT_TOPICS, edit_yaml

ROOT = Path(__file__).resolve().parents[2]


def test_the_assistant_dag_builds_judges_and_promotes_after_a_refresh(airflow_db, tmp_path_factory):
    """The knowledge-refresh DAG, then the assistant DAG (its Asset's consumer) under dag.test():
    the chain is built, passes the gate and becomes Champion with its prompt; run again, nothing
    new is registered and the Champion stays."""
    import mlflow
    from airflow.models import DagBag

    from jobs.assistant.knowledge import VERSION_KEY, VectorIndex, index_dir
    from jobs.release.registry import ModelRegistry
    from jobs.tablestore import open_table_store

    configs = tmp_path_factory.mktemp("configs")
    shutil.copytree(ROOT / "include" / "configs", configs, dirs_exist_ok=True)
    questions = ROOT / "tests" / "jobs" / "assistant" / "questions.yaml"
    topics = ASSISTANT_TOPICS
    edit_yaml(
        configs / "dev.yaml",
        lambda dev: dev.setdefault("assistant", {}).update(
            questions_file=str(questions), corpus={"include": topics, "min_chunks": 5}
        ),
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RUNWAY_CONFIG_DIR", str(configs))
        config = load_config("dev")
        bag = DagBag(dag_folder=str(ROOT / "dags"))
        refresh = bag.dags["dev_knowledge_refresh"]
        first = refresh.test(logical_date=None)
        assert str(first.state) == "success"
        store = open_table_store(config)
        table = store.name("gold", config.assistant.chunks_table)
        version, key = store.version(table), store.last_commit_metadata(table)[VERSION_KEY]
        assert set(store.read_pandas(table).doc_id) == set(topics)
        assert store.last_commit_metadata(table)["run_id"] == first.run_id  # lineage: the Airflow run
        index = VectorIndex.load(index_dir(config, version))
        assert index.manifest[VERSION_KEY] == key and index.manifest["chunks"] == len(
            store.read_pandas(table)
        )
        assert (
            str(refresh.test(logical_date=None).state) == "success" and store.version(table) == version
        )  # no-op
        assistant = bag.dags["dev_assistant"]
        run = assistant.test(logical_date=None)
        states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
        assert states == {
            "build_chain": "success",
            "evaluate_chain": "success",
            "route_decision": "success",
            "promote": "success",
            "champion_kept": "skipped",
        }, states
        registry = ModelRegistry.for_config(config, config.assistant_target)
        champion = registry.alias_version("Champion")
        prompt = mlflow.genai.load_prompt(f"prompts:/{config.assistant_target.prompt_name}@Champion")
        assert registry.version(champion).tags["assistant.prompt_version"] == str(prompt.version)

        again = assistant.test(logical_date=None, run_conf={"k": 4})  # the same parts: the same version
        assert str(again.state) == "success" and registry.alias_version("Champion") == champion

        # The monitoring DAG: a window of questions unlike the evaluation set asks for re-evaluation
        # (the assistant DAG is triggered once, re-index skipped); a window without questions does nothing.
        from datetime import UTC, datetime, timedelta

        from jobs.serving.assistant_endpoint import log_table

        at = datetime(2026, 2, 3, 9, tzinfo=UTC)
        asked = [
            "What is the weather in Paris tomorrow?",
            "Recommend a pasta recipe.",
            "Who won the cup?",
        ] * 10
        rows = log_table(
            [
                {
                    "request_id": f"dag-{i}",
                    "requested_at": (at + timedelta(minutes=i)).isoformat(),
                    "route": "champion",
                    "status": 200,
                    "model_version": champion,
                    "question": q,
                    "no_answer": False,
                    "top_score": 0.86,
                    "answer": "x",
                }
                for i, q in enumerate(asked)
            ]
        )
        log = store.name("ml", f"{config.assistant.name}_inference_log")
        window = "requested_at >= '2026-02-03' AND requested_at < '2026-02-04'"
        store.overwrite(log, rows, predicate=window)  # replaceWhere also creates the table
        monitoring = bag.dags["dev_assistant_monitoring"]
        drifted = monitoring.test(
            logical_date=None, run_conf={"start_date": "2026-02-03", "end_date": "2026-02-04"}
        )
        states = {ti.task_id: str(ti.state) for ti in drifted.get_task_instances()}
        assert states["trigger_reevaluate"] == "success" and states["trigger_reindex"] == "skipped", states
        quiet = monitoring.test(
            logical_date=None, run_conf={"start_date": "2026-02-10", "end_date": "2026-02-11"}
        )
        states = {ti.task_id: str(ti.state) for ti in quiet.get_task_instances()}
        assert states["monitor"] == "skipped" and states["trigger_reevaluate"] == "skipped", states
