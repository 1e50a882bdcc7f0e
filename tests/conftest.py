"""Test environment: isolated data and Airflow home, the plugins folder importable, one SparkSession."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_SESSION_DIR = Path(tempfile.mkdtemp(prefix="runway-tests-"))

# Before anything imports Airflow, MLflow or Spark: the same variables as the demo, all overridden.
sys.path.insert(0, str(ROOT / "scripts"))
import runway_env  # noqa: E402

runway_env.configure(_SESSION_DIR / "data", override=True)
# The framework's tests run on a small generated use case of their own (tests/use_cases/tiny, what
# `make use-case` writes); tests/use_case/ runs the selected one (SELECTED_USE_CASE) end to end.
SELECTED_USE_CASE = os.environ.get("RUNWAY_USE_CASE", "")
TEST_USE_CASE = ROOT / "tests" / "use_cases" / "tiny"
os.environ["RUNWAY_USE_CASE"] = str(TEST_USE_CASE)
os.environ["RUNWAY_DAG_ENVS"] = "all"
os.environ.pop("RUNWAY_ENV", None)
logging.getLogger("py4j").setLevel(logging.WARNING)  # its INFO at interpreter exit hits closed streams


@pytest.fixture(scope="session")
def spark():
    """The one local SparkSession all in-process tests share."""
    from jobs.config.loader import load_config
    from jobs.runtime.spark_session import DELTA_SESSION_CONF, get_spark, with_delta_jars

    config = load_config("dev")
    # With delta-spark's jars (make install fetches them where mvn is present) the same session
    # serves both table engines: the local one ignores the Delta catalog, the spark one needs it.
    conf = with_delta_jars(config.compute.spark_conf)
    if conf.get("spark.jars"):
        conf = {**conf, **DELTA_SESSION_CONF, "spark.sql.warehouse.dir": str(_SESSION_DIR / "warehouse")}
    compute = config.compute.model_copy(update={"spark_conf": conf})
    session = get_spark(config.model_copy(update={"compute": compute}), app_name="runway-tests")
    yield session
    session.stop()


def _warm_service(script: str, variable: str, address: str, cold: str):
    """Start one of the embedded stack's warm services (scripts/<script>.py) for the session and
    name it in ``variable`` for the processes tests start; ``<cold>=1`` runs the session without."""
    if os.environ.get(cold) == "1":
        yield None
        return
    import importlib

    service, data = importlib.import_module(script), _SESSION_DIR / "data"
    os.environ[variable] = service.start(data)[address]
    try:
        yield os.environ[variable]
    finally:
        os.environ.pop(variable, None)
        service.stop(data)


@pytest.fixture(scope="session")
def warm_spark(spark):
    """One Spark Connect server for the session (what `make up` and `make demo` run): the job
    processes tests start connect to it (RUNWAY_SPARK_REMOTE), where each would otherwise start a
    JVM. In-process tests keep the local session above (created first: get_spark prefers it)."""
    yield from _warm_service("spark_server", "RUNWAY_SPARK_REMOTE", "url", cold="RUNWAY_TEST_COLD_SPARK")


@pytest.fixture(scope="session")
def warm_python():
    """One job server for the session (what `make up` and `make demo` run): the Airflow tasks of
    the DAG tests fork their jobs from it (RUNWAY_JOB_SERVER)."""
    yield from _warm_service("job_server", "RUNWAY_JOB_SERVER", "socket", cold="RUNWAY_TEST_COLD_PYTHON")


UNIT_TESTS = ROOT / "tests" / "unit"

# `make test` runs the suite on two workers (pytest-xdist, --dist loadscope): a worker takes whole
# groups, so a module's fixtures start once, and each worker has its own session (one Spark session,
# one pair of warm services, one Airflow home). A group is a module, or the modules that share a
# session resource dearer than a module: the wheel and the Spark cluster. (xdist's own loadgroup
# cannot do it under pytest 9.2: it renames the items' `_nodeid`, which pytest no longer reads, so
# every test became a group of its own and module fixtures such as the stack started twice.)
XDIST_WRITTEN_FOR = "3.8."
SHARED_SESSION_RESOURCE = {"tests/jobs/test_wheel.py": "tests/plugins/test_spark_cluster_mode.py"}
# The longest groups first (seconds on a quiet 2-core machine, `--durations`), so that the last
# group a worker takes is a short one and neither waits long for the other at the end.
LONGEST_FIRST = (
    "tests/plugins/test_spark_cluster_mode.py",  # ~590 beside the other worker, ~380 alone
    "tests/jobs/test_serving.py",  # ~500, ~340
    "tests/e2e/test_stack.py",  # ~370, ~250
    "tests/use_case/test_lifecycle.py",  # ~265, ~160
    "tests/jobs/test_spark_remote.py",  # ~170, ~140
    "tests/jobs/test_tablestore.py",  # ~165, ~130
)


def distribution_group(nodeid: str) -> str:
    """The group of tests one worker runs together (see SHARED_SESSION_RESOURCE)."""
    module = nodeid.split("::", 1)[0]
    return SHARED_SESSION_RESOURCE.get(module, module)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    if config.getvalue("dist") != "loadscope":
        return None
    import xdist
    from xdist.scheduler import LoadScopeScheduling

    if not xdist.__version__.startswith(XDIST_WRITTEN_FOR):  # _split_scope is xdist's private API
        raise pytest.UsageError(
            f"tests/conftest.py's scheduler overrides pytest-xdist {XDIST_WRITTEN_FOR}'s private "
            f"LoadScopeScheduling._split_scope; this is {xdist.__version__}: check it and update the pin"
        )

    class ByGroup(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return distribution_group(nodeid)

    return ByGroup(config, log)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return
    rank = {group: index for index, group in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(distribution_group(item.nodeid), len(rank)))  # stable


@pytest.fixture(autouse=True)
def warm_stack(request):
    """Every test outside tests/unit runs beside the warm services (started once, by the first);
    tests/unit (pure functions and policies) starts none of them."""
    if not request.node.path.is_relative_to(UNIT_TESTS):
        request.getfixturevalue("warm_spark")
        request.getfixturevalue("warm_python")


@pytest.fixture(scope="session")
def project_wheel(tmp_path_factory) -> Path:
    """The project's wheel, built once for the session as `make wheel` builds it."""
    from filelock import FileLock

    out = tmp_path_factory.mktemp("dist")
    with FileLock(
        tempfile.gettempdir() + "/runway-tests-wheel.lock"
    ):  # build/ is the checkout's, not the worker's
        shutil.rmtree(ROOT / "build", ignore_errors=True)  # setuptools would ship a stale build/lib's modules
        subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(out), str(ROOT)],
            check=True,
            capture_output=True,
            timeout=300,
        )
    return next(out.glob("runway_mlops-*-py3-none-any.whl"))


@pytest.fixture(scope="session")
def spark_cluster(tmp_path_factory):
    """One real Spark standalone cluster (a master and a 2-core worker on loopback) for the session,
    started by the first test that needs it."""
    from spark_cluster import SparkStandaloneCluster  # scripts/spark_cluster.py

    cluster = SparkStandaloneCluster(tmp_path_factory.mktemp("spark-cluster"))
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture
def dev_config(tmp_path):
    """The dev config with its lakehouse, landing zone and reports under this test's tmp_path."""
    from tests.support import make_config

    return make_config(tmp_path)


@pytest.fixture
def store(dev_config, spark):
    from jobs.tablestore import open_table_store

    return open_table_store(dev_config, spark)


@pytest.fixture(scope="session")
def airflow_db():
    """A migrated Airflow metadata DB (SQLite) for DAG runs under dag.test()."""
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True, env=os.environ
    )
    return Path(os.environ["AIRFLOW_HOME"])
