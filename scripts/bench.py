"""Runway's performance figures, printed as one JSON document (`make bench`).

Each figure runs the project's real commands on the real 2013 data (the flight_delay use case,
whatever RUNWAY_USE_CASE says: the figures compare runs on the same data), in fresh folders under
data/bench/, with job logs in data/bench/logs/. Targets are reported next to the measurements;
nothing here is asserted by the test suite.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import runway_env  # noqa: E402

ROOT = runway_env.ROOT
os.environ["RUNWAY_USE_CASE"] = "flight_delay"  # every job and DAG this script starts inherits it
BENCH = Path(os.environ.get("RUNWAY_BENCH_DIR", ROOT / "data" / "bench"))
LOGS = BENCH / "logs"


def run_job(label: str, data_dir: Path, *args: str) -> float:
    """Run ``python -m jobs.<args>`` against ``data_dir``; return its wall time in seconds."""
    return _timed(
        label, [sys.executable, "-m", *args], {"RUNWAY_DATA_DIR": str(data_dir), "RUNWAY_ENV": "dev"}
    )


def _timed(label: str, command: list[str], env: dict[str, str]) -> float:
    """Run ``command`` with ``env`` added to this environment, its output in logs/<label>.log; its wall
    time."""
    LOGS.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with (LOGS / f"{label}.log").open("w") as log:
        done = subprocess.run(command, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{label} failed (exit {done.returncode}): see {LOGS / f'{label}.log'}")
    return elapsed


def fresh(name: str) -> Path:
    path = BENCH / name
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def feature_refresh_full_year() -> dict:
    data = fresh("year")
    seed = run_job("year_seed", data, "jobs.seed", "--start", "2013-01-01", "--end", "2014-01-01")
    refresh = run_job(
        "year_refresh", data, "jobs.feature_refresh", "all", "--start", "2013-01-01", "--end", "2014-01-01"
    )
    return {
        "seconds": round(refresh, 1),
        "target_seconds": 90,
        "flights": 336_776,
        "seed_seconds": round(seed, 1),
        "what": "landing -> bronze -> silver -> gate -> gold for all of 2013 as one interval, one process",
    }


def _one_day(data: Path, day: int) -> float:
    return run_job(
        f"day_{day}",
        data,
        "jobs.feature_refresh",
        "all",
        "--start",
        f"2013-06-{day:02d}",
        "--end",
        f"2013-06-{day + 1:02d}",
    )


def feature_refresh_one_day() -> dict:
    """A day's refresh as one job: with a warm Spark (a Spark Connect server the job connects to,
    what make up / make demo start) and cold (the job starts its own JVM)."""
    import spark_server

    data = fresh("day")
    run_job("day_seed", data, "jobs.seed", "--start", "2013-06-01", "--end", "2013-06-11")
    first = _one_day(data, 1)
    cold = [_one_day(data, day) for day in (2, 3, 4)]
    server = spark_server.start(data)
    os.environ["RUNWAY_SPARK_REMOTE"] = server["url"]
    try:
        # The server's JIT warms up over its first jobs (a stack's server runs all day).
        warm_first, warm_second = _one_day(data, 5), _one_day(data, 6)
        warm = [_one_day(data, day) for day in (7, 8, 9)]
    finally:
        os.environ.pop("RUNWAY_SPARK_REMOTE")
        spark_server.stop(data)
    return {
        "seconds": round(statistics.median(warm), 1),
        "samples": [round(x, 1) for x in warm],
        "target_seconds": 6,
        "first_on_the_server_seconds": round(warm_first, 1),
        "second_on_the_server_seconds": round(warm_second, 1),
        "cold_seconds": round(statistics.median(cold), 1),
        "cold_samples": [round(x, 1) for x in cold],
        "first_load_seconds": round(first, 1),
        "what": "one day landing -> gold as one job process, incl. interpreter start-up; 'seconds': median "
        "of three "
        "daily runs on a warm Spark Connect server (after its first two jobs); 'cold_seconds': the same with "
        "the job's own JVM; "
        "'first_load_seconds' (cold) also loads the reference tables",
    }


def training_full_year() -> dict:
    """The training job on all of 2013's gold (from the full-year figure) against fitting the same
    estimator directly on the same pandas frame in one process."""
    data = BENCH / "year"
    window = ("--start", "2013-01-01", "--end", "2014-01-01", "--reason", "manual")
    # The first run on a fresh folder also creates the tracking store's tables and the experiment,
    # which a deployment does once (MLflow server start-up): timed apart, not as the figure.
    first = run_job("train_year_first", data, "jobs.train", *window)
    job = run_job("train_year", data, "jobs.train", *window)
    gold = data / "lakehouse" / "dev" / "gold" / "flight_features"
    started = time.perf_counter()  # the baseline is timed like the job: a whole process, imports included
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench_direct_fit.py"), str(gold), "2014-01-01"],
        capture_output=True,
        text=True,
        check=True,
    )
    direct_seconds = time.perf_counter() - started
    direct = json.loads(out.stdout.strip().splitlines()[-1])
    return {
        "seconds": round(job, 1),
        "first_run_seconds": round(first, 1),
        "direct_seconds": round(direct_seconds, 1),
        "direct_in_process": direct,
        "ratio": round(job / direct_seconds, 2),
        "target_ratio": 1.5,
        "what": "python -m jobs.train over 2013 (split, fit, metrics, plots, MLflow logging and "
        "registration; "
        "first_run_seconds: the first run, which also creates the tracking store and experiment) "
        "vs loading the gold table into pandas and fitting the same pipeline in one process",
    }


def _set_champion(data: Path, version: str) -> None:
    """Point Champion at ``version`` in the bench's registry (promotion itself is tested elsewhere)."""
    code = (
        "import sys; from jobs.config.loader import load_config; from jobs.modeling.lifecycle import "
        "mlflow_client; "
        "c = load_config('dev'); mlflow_client(c).set_registered_model_alias(c.registered_model_name, "
        "'Champion', sys.argv[1])"
    )
    env = {**os.environ, "RUNWAY_DATA_DIR": str(data), "RUNWAY_ENV": "dev"}
    subprocess.run([sys.executable, "-c", code, version], env=env, check=True, capture_output=True)


def _result(label: str) -> dict:
    from jobs.core.results import read_result

    report = read_result((LOGS / f"{label}.log").read_text())
    if not report.get("ok"):
        raise SystemExit(f"{label}: no successful result line in its log")
    return report["result"]


def batch_scoring_full_year(version: str) -> dict:
    """Batch inference over all of 2013 (in this process over Arrow, the local engine's path; and the
    old spark_udf path for comparison) vs the model's own predict on the same frame."""
    data = BENCH / "year"
    _set_champion(data, version)
    year = ("--start", "2013-01-01", "--end", "2014-01-01")
    udf_job = run_job("batch_year_spark_udf", data, "jobs.batch_inference", *year, "--scorer", "spark_udf")
    udf_result = _result("batch_year_spark_udf")
    job = run_job("batch_year", data, "jobs.batch_inference", *year)
    result = _result("batch_year")
    gold = data / "lakehouse" / "dev" / "gold" / "flight_features"
    env = {**os.environ, "RUNWAY_DATA_DIR": str(data), "RUNWAY_ENV": "dev"}
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench_direct_predict.py"), str(gold), version],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    direct = json.loads(out.stdout.strip().splitlines()[-1])
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench_scoring_floor.py")],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    floor = json.loads(out.stdout.strip().splitlines()[-1])
    throughput = result["rows"] / result["scoring_seconds"]
    udf_throughput = udf_result["rows"] / udf_result["scoring_seconds"]
    return {
        "rows": result["rows"],
        "scorer": result["scorer"],
        "scoring_seconds": result["scoring_seconds"],
        "job_seconds": round(job, 1),
        "rows_per_second": round(throughput),
        "direct": direct,
        "ratio": round(throughput / direct["rows_per_second"], 2),
        "target_ratio": 0.8,
        "spark_udf": {
            "scoring_seconds": udf_result["scoring_seconds"],
            "job_seconds": round(udf_job, 1),
            "ratio": round(udf_throughput / direct["rows_per_second"], 2),
        },
        "same_path_seconds": floor,
        "ratio_bound_free_model": {
            k: round(direct["seconds"] / v, 2) for k, v in floor["free_model"].items()
        },
        "ratio_spark_udf_warm": round(direct["seconds"] / floor["spark_udf"]["warm"], 2),
        "what": "rows/s from the gold window read to predictions committed (in this process: Arrow batches "
        "from Delta, the pyfunc per batch, one replaceWhere) vs the same model's pyfunc predict on the "
        "same pandas frame in one process; spark_udf: the old path (and the spark engine's); "
        "same_path_seconds: the spark_udf path with a model that costs nothing (cold: fresh Python "
        "workers; warm: workers up) and with the Champion once its workers have loaded it; "
        "ratio_bound_free_model: the best ratio any model could reach on that path",
    }


_SERVING_SETUP = """
import json, sys
from jobs.config.loader import load_config
from jobs.modeling.estimator import model_inputs
from jobs.tablestore import open_table_store
config = load_config("dev")
store = open_table_store(config)
features = config.use_case.features
window = (features.date_column, "2013-07-01", "2013-07-02")
gold = store.read_pandas(store.name("gold", features.table), window=window)
row = json.loads(model_inputs(config.use_case.model, gold).head(1).to_json(orient="records"))
print(json.dumps({"tracking_uri": config.mlflow.tracking_uri, "name": config.registered_model_name,
                  "body": {"dataframe_records": row}}))
"""


def serving() -> dict:
    """The online endpoint against `mlflow models serve` on the year's Champion (scripts/bench_serving.py)."""
    from bench_serving import serving_figure

    data = BENCH / "year"
    env = {**os.environ, "RUNWAY_DATA_DIR": str(data), "RUNWAY_ENV": "dev"}
    out = subprocess.run(
        [sys.executable, "-c", _SERVING_SETUP], env=env, capture_output=True, text=True, check=True
    )
    setup = json.loads(out.stdout.strip().splitlines()[-1])
    versions = [_result("train_year_first")["version"], _result("train_year")["version"]]
    return serving_figure(
        data,
        versions,
        _set_champion,
        setup["tracking_uri"],
        setup["name"],
        json.dumps(setup["body"]).encode(),
    )


def streaming_latency(files: int = 12, pace: float = 2.0) -> dict:
    """Continuous mode (1 s trigger): seconds from an event file landing to its predictions' commit."""
    data = BENCH / "year"
    env = {**os.environ, "RUNWAY_DATA_DIR": str(data), "RUNWAY_ENV": "dev"}
    landing = data / "stream" / "flight_events"
    shutil.rmtree(landing, ignore_errors=True)
    shutil.rmtree(data / "checkpoints", ignore_errors=True)
    LOGS.mkdir(parents=True, exist_ok=True)
    with (LOGS / "stream_latency.log").open("w") as log:
        stream = subprocess.Popen(
            [sys.executable, "-m", "jobs.streaming_inference", "--trigger-seconds", "1"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            metadata = data / "checkpoints" / "dev" / "streaming_inference" / "metadata"
            deadline = time.monotonic() + 180
            while not metadata.exists() and time.monotonic() < deadline and stream.poll() is None:
                time.sleep(0.2)
            time.sleep(3)  # the first (empty) trigger has run: the query is up
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "jobs.seed",
                    "--start",
                    "2013-06-14",
                    "--end",
                    "2013-06-15",
                    "--events",
                    "--files-per-day",
                    str(files),
                    "--pace",
                    str(pace),
                ],
                env=env,
                check=True,
                capture_output=True,
            )
            time.sleep(10)
        finally:
            os.killpg(stream.pid, signal.SIGTERM)
            stream.wait(timeout=120)
    from deltalake import DeltaTable

    from jobs.tablestore.base import commit_metadata

    table = DeltaTable(str(data / "lakehouse" / "dev" / "ml" / "predictions"))
    query = json.loads(metadata.read_text())["id"]  # this run's query: earlier runs' rows are ignored
    commits = [(commit_metadata(entry), entry["timestamp"] / 1000) for entry in table.history()]
    committed = {
        meta["run_id"]: at
        for meta, at in commits
        if meta.get("job") == "streaming_inference" and meta.get("run_id", "").startswith(query)
    }
    rows = table.to_pyarrow_dataset().to_table(columns=["flight_id", "run_id"]).to_pandas()
    batch_of = {r.flight_id: r.run_id for r in rows[rows.run_id.str.startswith(query)].itertuples()}
    latencies = []
    for path in sorted(landing.glob("*.jsonl")):
        ids = [_flight_id(json.loads(line)) for line in path.read_text().splitlines()]
        batches = {batch_of.get(i) for i in ids}
        if None in batches:
            raise SystemExit(
                f"streaming latency: {path.name} was not fully scored (see {LOGS / 'stream_latency.log'})"
            )
        latencies.append(max(committed[b] for b in batches) - path.stat().st_mtime)
    return {
        "files": len(latencies),
        "p50_seconds": round(statistics.median(latencies), 2),
        "max_seconds": round(max(latencies), 2),
        "target_p50_seconds": 5,
        "what": f"continuous mode, 1 s trigger: {files} event files landing {pace} s apart; file landing -> "
        "the Delta commit holding all its predictions",
    }


def monitoring_windows() -> dict:
    """The monitoring job (Evidently drift vs the Champion's training reference, labelled quality,
    Delta write, MLflow run with the HTML report) for one day and for a month of predictions."""
    data = BENCH / "year"
    day = run_job(
        "monitor_day", data, "jobs.monitoring", "monitor", "--start", "2013-07-01", "--end", "2013-07-02"
    )
    month = run_job(
        "monitor_month", data, "jobs.monitoring", "monitor", "--start", "2013-07-01", "--end", "2013-08-01"
    )
    return {
        "day_seconds": round(day, 1),
        "month_seconds": round(month, 1),
        "month_rows": _result("monitor_month")["rows"],
        "what": "python -m jobs.monitoring monitor, whole process (imports, Evidently, the Delta write, "
        "MLflow), "
        "July 1st and all of July 2013 against the Champion's training window",
    }


def _flight_id(event: dict) -> str:
    return (
        f"{event['year']}{event['month']:02d}{event['day']:02d}_{event['carrier']}_{event['flight']}_"
        f"{event['origin']}_{event['sched_dep_time']:04d}"
    )


def dag_parsing() -> dict:
    script = """
import json, sys, time
from pathlib import Path
from airflow.models import DagBag
folder = Path(sys.argv[1])
files = sorted(p for p in folder.glob("*.py"))
started = time.perf_counter()
bag = DagBag(dag_folder=str(folder))
total = time.perf_counter() - started
per_file = {}
for path in files:
    t = time.perf_counter()
    DagBag(dag_folder=str(path))
    per_file[path.name] = round(time.perf_counter() - t, 3)
print(json.dumps({"files": len(files), "dags": len(bag.dag_ids), "errors": len(bag.import_errors),
                  "folder_seconds": round(total, 3), "per_file_seconds": per_file}))
"""
    env = {**os.environ, "RUNWAY_DAG_ENVS": "all"}
    out = subprocess.run(
        [sys.executable, "-c", script, str(ROOT / "dags")],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    parsed = json.loads(out.stdout.strip().splitlines()[-1])
    parsed["seconds_per_file"] = round(parsed["folder_seconds"] / max(parsed["files"], 1), 3)
    parsed["target_seconds_per_file"] = 0.3
    parsed["what"] = "DagBag over dags/ with all three environments deployed (Airflow already imported)"
    return parsed


def demo_lifecycle() -> dict:
    """`make demo` wall time by stage, and against the same data work and training as one plain script."""
    data = fresh("demo")
    env = {**os.environ, **runway_env.variables(data)}
    LOGS.mkdir(parents=True, exist_ok=True)
    with (LOGS / "demo.log").open("w") as log:
        subprocess.run(
            [sys.executable, str(ROOT / "scripts" / "demo.py")],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            check=True,
        )
    demo = json.loads((data / "logs" / "demo_timings.json").read_text())
    plain_data = fresh("demo_plain")
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "bench_demo_plain.py"),
            str(plain_data),
            demo["last_month"],
            *demo["training_ends"],
        ],
        env={**os.environ, **runway_env.variables(plain_data)},
        capture_output=True,
        text=True,
        check=True,
    )
    plain = json.loads(out.stdout.strip().splitlines()[-1])
    return {
        "seconds": demo["total_seconds"],
        "target_seconds": 600,
        "stages": demo["stages"],
        "dag_runs": demo["dag_runs"],
        "plain_script": plain,
        "orchestration_ratio": round(demo["total_seconds"] / plain["seconds"], 2),
        "what": "make demo end to end (Airflow dag.test runs, a process per job, MLflow tracking and "
        "registry) vs "
        "the same seed, feature refresh, fits, scoring and drift reports as one plain script",
    }


def _spark_submit(cluster_url: str, wheel: Path) -> tuple[list[str], dict[str, str]]:
    """The command line and environment the spark-submit mode's operator submits a job with (the
    shipped compute.spark_submit: native delta-spark, tables by location), without Airflow."""
    from dag_factories.compute import spark_submit_spec
    from jobs.config.loader import load_config

    os.environ.update(RUNWAY_COMPUTE="spark-submit", RUNWAY_WHEEL_FILE=str(wheel))
    try:
        spec = spark_submit_spec(load_config("dev"))
    finally:
        for key in ("RUNWAY_COMPUTE", "RUNWAY_WHEEL_FILE"):
            os.environ.pop(key)
    command = [
        str(Path(sys.executable).parent / "spark-submit"),
        "--master",
        cluster_url,
        "--deploy-mode",
        "client",
        "--name",
        "runway-bench",
        "--py-files",
        spec["wheel"],
    ]
    command += ["--jars", spec["jars"]] if spec["jars"] else []
    for key, value in spec["conf"].items():
        command += ["--conf", f"{key}={value}"]
    return [*command, spec["application"]], spec["env_vars"]


def _submitted(label: str, data: Path, submit: tuple[list[str], dict[str, str]], *job: str) -> float:
    """Run one job as a spark-submit application against ``data``; its wall time in seconds."""
    command, env_vars = submit
    env = {**env_vars, "RUNWAY_DATA_DIR": str(data), "RUNWAY_SPARK_REMOTE": ""}
    return _timed(label, [*command, *job, "--env", "dev"], env)


def cluster_vs_local() -> dict:
    """A day's feature refresh (its four steps, as the DAG runs them) and a day's batch scoring as
    spark-submit applications on a Spark standalone cluster on this machine (a master and a 2-core
    worker, native delta-spark) vs the same jobs as local processes, each with its own JVM."""
    from spark_cluster import SparkStandaloneCluster

    from jobs.core.paths import delta_jars

    if not delta_jars()[0]:
        return {"skipped": f"delta-spark's JVM jars are not on this machine: {delta_jars()[1]}"}
    local, remote, year = fresh("cluster_local"), fresh("cluster_remote"), BENCH / "year"
    day = ("--start", "2013-06-03", "--end", "2013-06-04")
    for data in (local, remote):
        run_job(f"seed_{data.name}", data, "jobs.seed", *day)
    _set_champion(year, _result("train_year")["version"])  # the year's gold and model (training_full_year)
    os.environ["RUNWAY_SPARK_REMOTE"] = ""  # cold, as each application starts its own driver
    steps = ("bronze", "silver", "gate", "gold")
    try:
        refresh_local = [run_job(f"cluster_local_{s}", local, "jobs.feature_refresh", s, *day) for s in steps]
        score_local = run_job(
            "cluster_local_score",
            year,
            "jobs.batch_inference",
            "--start",
            "2013-07-01",
            "--end",
            "2013-07-08",
        )
    finally:
        os.environ.pop("RUNWAY_SPARK_REMOTE")
    wheel_dir = fresh("cluster_dist")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(wheel_dir), str(ROOT)],
        check=True,
        capture_output=True,
    )
    cluster = SparkStandaloneCluster(BENCH / "cluster_spark")
    cluster.start()
    try:
        submit = _spark_submit(cluster.url, next(wheel_dir.glob("*.whl")))
        refresh_cluster = [
            _submitted(f"cluster_{s}", remote, submit, "feature_refresh", s, *day) for s in steps
        ]
        score_cluster = _submitted(
            "cluster_score", year, submit, "batch_inference", "--start", "2013-07-01", "--end", "2013-07-08"
        )
    finally:
        cluster.stop()
    refresh = {
        "local_seconds": round(sum(refresh_local), 1),
        "cluster_seconds": round(sum(refresh_cluster), 1),
        "local_steps": [round(x, 1) for x in refresh_local],
        "cluster_steps": [round(x, 1) for x in refresh_cluster],
    }
    refresh["ratio"] = round(refresh["cluster_seconds"] / refresh["local_seconds"], 2)
    scoring = {
        "local_seconds": round(score_local, 1),
        "cluster_seconds": round(score_cluster, 1),
        "ratio": round(score_cluster / score_local, 2),
    }
    return {
        "one_day_refresh": refresh,
        "one_week_scoring": scoring,
        "what": "cluster / local wall time of the same jobs: a day's refresh (bronze, silver, gate, gold as "
        "four "
        "processes or four spark-submit applications in client mode on a standalone master and 2-core "
        "worker on this machine, native delta-spark) and a week of July's batch scoring with the year's "
        "Champion (local engine in process vs spark engine with spark_udf on the executors); "
        "no target: what a cluster of one small machine costs, not what a real cluster gains",
    }


def assistant() -> dict:
    """The assistant's knowledge refresh, chain and endpoint (scripts/bench_assistant.py)."""
    from bench_assistant import assistant_figure

    return assistant_figure(fresh("assistant"), run_job)


FIGURES = {
    "feature_refresh_full_year": feature_refresh_full_year,
    "feature_refresh_one_day": feature_refresh_one_day,
    "training_full_year": training_full_year,
    "batch_scoring_full_year": lambda: batch_scoring_full_year(_result("train_year")["version"]),
    "streaming_latency": streaming_latency,
    "monitoring": monitoring_windows,
    "serving": serving,
    "dag_parsing": dag_parsing,
    "demo_lifecycle": demo_lifecycle,
    "cluster_vs_local": cluster_vs_local,
    "assistant": assistant,
}


def _judge(name: str, figure: dict) -> None:
    if "target_seconds" in figure:
        figure["meets_target"] = figure["seconds"] <= figure["target_seconds"]
    if name == "training_full_year":
        figure["meets_target"] = figure["ratio"] <= figure["target_ratio"]
    elif name == "batch_scoring_full_year":
        figure["meets_target"] = figure["ratio"] >= figure["target_ratio"]
    elif name == "streaming_latency":
        figure["meets_target"] = figure["p50_seconds"] <= figure["target_p50_seconds"]
    elif name == "dag_parsing":
        figure["meets_target"] = figure["seconds_per_file"] <= figure["target_seconds_per_file"]


def main() -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=list(FIGURES), help="these figures only (in this order)")
    args = parser.parse_args()
    runway_env.configure(BENCH)
    started = time.perf_counter()
    figures = {}
    for name in args.only or FIGURES:  # batch scoring scores the model training_full_year trained
        figures[name] = FIGURES[name]()
        _judge(name, figures[name])
    report = {
        "machine": {
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "figures": figures,
        "bench_seconds": round(time.perf_counter() - started, 1),
    }
    results = BENCH / "results.json"
    if args.only and results.exists():  # a partial run updates its figures, keeps the others
        report["figures"] = {**json.loads(results.read_text()).get("figures", {}), **figures}
    text = json.dumps(report, indent=2)
    (BENCH / "results.json").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
