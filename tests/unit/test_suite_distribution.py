"""`make test`'s two workers (tests/conftest.py): each module runs on one worker, so its fixtures
start once; the modules sharing a session resource run on the same one."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT, SHARED_SESSION_RESOURCE, distribution_group

RECORDER = """
import os

def pytest_runtest_setup(item):
    with open(os.environ["RUNWAY_TEST_RECORD"], "a") as record:
        record.write(f"{os.environ['PYTEST_XDIST_WORKER']} {item.nodeid.split('::')[0]}\\n")
"""


def make_test_options() -> list[str]:
    """The options `make test` runs pytest with (its recipe in the Makefile), workers at 2."""
    recipe = re.search(r"^test: .*\n\t\$\(PY\) -m pytest (.*)$", (ROOT / "Makefile").read_text(), re.M)
    assert recipe, "the Makefile's test target runs $(PY) -m pytest"
    return shlex.split(recipe.group(1).replace("$(TEST_WORKERS)", "2"))


def test_a_module_runs_on_one_worker(tmp_path: Path):
    """Under xdist's loadgroup with pytest 9.2 every test was a group of its own: modules ran on
    both workers and their fixtures (the stack, the identity server) started twice."""
    (tmp_path / "recorder.py").write_text(RECORDER)
    record = tmp_path / "record.txt"
    modules = ["tests/unit/release/test_traffic.py", "tests/unit/release/test_gates.py"]
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "recorder"]
        + [*make_test_options(), *modules],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(tmp_path), "RUNWAY_TEST_RECORD": str(record)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-2000:]
    ran = [line.split() for line in record.read_text().splitlines()]
    workers = {module: {worker for worker, ran_module in ran if ran_module == module} for module in modules}
    assert all(len(on) == 1 for on in workers.values()), workers
    assert len(ran) >= 10  # every test of both modules ran


def test_the_wheel_and_the_cluster_tests_are_one_group():
    for module, group in SHARED_SESSION_RESOURCE.items():
        assert distribution_group(f"{module}::test_x[a-b]") == group == distribution_group(f"{group}::test_y")
    assert distribution_group("tests/jobs/test_serving.py::test_z") == "tests/jobs/test_serving.py"
    assert "-n" in make_test_options()
