"""The warm Python (jobs/runtime/fork_server.py): a job forked by the server is the process
``python -m <module>`` would be — arguments, environment, folder, descriptors, exit code, its own
process group and random state — and it stops when its caller goes away or the server stops."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from jobs.runtime.fork_server import JobServerUnavailable, run_job, socket_answers, start_job

PROBE = """
    import json, os, subprocess, sys, time
    import numpy
    mode = sys.argv[1]
    if mode == "report":
        print(json.dumps({"argv": sys.argv[1:], "cwd": os.getcwd(), "probe": os.environ.get("PROBE"),
                          "random": numpy.random.random(), "pgid": os.getpgid(0), "pid": os.getpid(),
                          "stdin": sys.stdin.read()}), flush=True)
        print("to stderr", file=sys.stderr)
        raise SystemExit(3)
    if mode == "sleep":  # a job that starts a process of its own, then waits
        child = subprocess.Popen(["sleep", "300"])
        open(sys.argv[2], "w").write(f"{os.getpid()} {child.pid}")
        time.sleep(300)
    if mode == "crash":
        raise RuntimeError("the probe crashed")
"""


@pytest.fixture(scope="module")
def job_server(tmp_path_factory):
    """A server of its own (the session's, if any, is left alone): started as scripts/job_server.py does."""
    import job_server as script  # scripts/job_server.py

    data = tmp_path_factory.mktemp("job-server")
    state = script.start(data)
    yield state["socket"]
    assert script.stop(data)
    assert not socket_answers(state["socket"])


@pytest.fixture
def probe_dir(tmp_path):
    (tmp_path / "probe_job.py").write_text(textwrap.dedent(PROBE))
    return tmp_path


def _run(socket_path, folder, *arguments, **env):
    lines: list[str] = []
    code = run_job(
        socket_path, "probe_job", list(arguments), env={**os.environ, **env}, cwd=folder, on_line=lines.append
    )
    return code, lines


def _gone(pid: int, seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def test_a_forked_job_is_the_process_python_m_would_be(job_server, probe_dir):
    import json

    code, lines = _run(job_server, probe_dir, "report", "--flag", "x y", PROBE="seen")
    report = json.loads(lines[0])
    assert code == 3 and "to stderr" in lines
    assert report["argv"] == ["report", "--flag", "x y"] and report["probe"] == "seen"
    assert report["cwd"] == str(probe_dir) and report["stdin"] == ""
    assert report["pgid"] == report["pid"]  # a session and process group of its own
    fresh = subprocess.run(
        [sys.executable, "-m", "probe_job", "report", "--flag", "x y"],
        cwd=probe_dir,
        env={**os.environ, "PROBE": "seen"},
        capture_output=True,
        text=True,
    )
    assert fresh.returncode == code and json.loads(fresh.stdout)["argv"] == report["argv"]


def test_each_job_draws_its_own_random_numbers(job_server, probe_dir):
    import json

    draws = {json.loads(_run(job_server, probe_dir, "report")[1][0])["random"] for _ in range(3)}
    assert len(draws) == 3


def test_a_crash_is_exit_code_one_with_its_traceback(job_server, probe_dir):
    code, lines = _run(job_server, probe_dir, "crash")
    assert code == 1 and any("RuntimeError: the probe crashed" in line for line in lines)


def test_jobs_at_once_keep_their_output_apart(job_server, probe_dir):
    import json

    results: dict[int, tuple[int, list[str]]] = {}

    def one(n: int) -> None:
        results[n] = _run(job_server, probe_dir, "report", str(n))

    threads = [threading.Thread(target=one, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for n, (code, lines) in results.items():
        assert code == 3 and json.loads(lines[0])["argv"] == ["report", str(n)] and len(lines) == 2
    assert len(results) == 4


def _start_sleeper(job_server, probe_dir):
    """A probe job that starts a process of its own and waits: (the job, its pid, its child's pid)."""
    pids = probe_dir / "pids"
    with open(os.devnull, "rb") as devnull, open(probe_dir / "out", "wb") as out:
        job = start_job(
            job_server,
            "probe_job",
            ["sleep", str(pids)],
            env=dict(os.environ),
            cwd=probe_dir,
            stdin=devnull.fileno(),
            stdout=out.fileno(),
            stderr=out.fileno(),
        )
    return (job, *_wait_for_pids(pids))


def test_terminating_a_job_stops_its_whole_process_group(job_server, probe_dir):
    job, job_pid, sleeper = _start_sleeper(job_server, probe_dir)
    assert job_pid == job.pid
    job.terminate()
    assert job.wait() == -signal.SIGTERM
    assert _gone(sleeper)  # what the job started went with it


def test_a_caller_that_goes_away_takes_its_job_with_it(job_server, probe_dir):
    """A killed task process cannot wait for its job: the server stops the job's group."""
    job, job_pid, sleeper = _start_sleeper(job_server, probe_dir)
    job.close()
    assert _gone(job_pid) and _gone(sleeper)


def test_another_environments_interpreter_or_no_server_is_unavailable(job_server, probe_dir, tmp_path):
    with pytest.raises(JobServerUnavailable, match="refused: this server runs"):
        run_job(
            job_server,
            "probe_job",
            ["report"],
            env=dict(os.environ),
            cwd=probe_dir,
            on_line=print,
            python="/elsewhere/bin/python",
        )
    with pytest.raises(JobServerUnavailable, match="no job server answers on"):
        run_job(
            tmp_path / "none.sock",
            "probe_job",
            ["report"],
            env=dict(os.environ),
            cwd=probe_dir,
            on_line=print,
        )


def _wait_for_pids(path: Path) -> tuple[int, int]:
    deadline = time.monotonic() + 30
    while not (path.is_file() and path.read_text()):
        assert time.monotonic() < deadline, "the probe job did not start"
        time.sleep(0.05)
    job_pid, child_pid = map(int, path.read_text().split())
    return job_pid, child_pid


def test_a_job_that_ends_before_its_caller_reads_the_pid_still_reports_its_exit_code(tmp_path):
    """Found in review: the server's two messages (the pid, then the exit code) can arrive in one
    read when the job ends at once and the caller is slow to read; both must be understood. Here a
    server that answers exactly so (both lines in one send) stands for that interleaving."""
    import socket as sockets

    path = tmp_path / "s.sock"
    listener = sockets.socket(sockets.AF_UNIX, sockets.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(1)

    def answer() -> None:
        connection, _ = listener.accept()
        with connection:
            header, fds, _, _ = sockets.recv_fds(connection, 4, 3)
            for fd in fds:
                os.close(fd)
            length = int.from_bytes(header, "big")
            while length > 0:
                length -= len(connection.recv(length))
            connection.sendall(b'{"pid": 4242}\n{"exit_code": 7}\n')

    server = threading.Thread(target=answer)
    server.start()
    with open(os.devnull, "rb") as devnull:
        job = start_job(
            path,
            "probe_job",
            [],
            env={},
            cwd=tmp_path,
            stdin=devnull.fileno(),
            stdout=devnull.fileno(),
            stderr=devnull.fileno(),
        )
    server.join(10)
    listener.close()
    assert job.pid == 4242 and job.wait() == 7


def test_a_malformed_request_is_refused_and_the_server_serves_on(job_server, probe_dir):
    import json
    import socket as sockets
    import struct

    for body in (b"not json", json.dumps({"module": "probe_job"}).encode()):  # unreadable; keys missing
        with sockets.socket(sockets.AF_UNIX, sockets.SOCK_STREAM) as bad, open(os.devnull, "rb") as devnull:
            bad.connect(job_server)
            sockets.send_fds(bad, [struct.pack("!I", len(body))], [devnull.fileno()] * 3)
            bad.sendall(body)
            bad.settimeout(10)
            assert bad.recv(1024) == b""  # closed, no job
    assert _run(job_server, probe_dir, "report")[0] == 3  # the server still forks jobs


@pytest.mark.parametrize("end", ["stopped", "killed"])
def test_a_job_ends_with_its_server_before_its_caller_returns(end, probe_dir, tmp_path):
    """Stopped (SIGTERM: the server stops its jobs) or killed outright (SIGKILL: no chance to), a
    server must not leave a job running that the task's retry would then run a second time beside:
    the caller sees the server gone (None, retryable) only once the job's group is gone."""
    import job_server as script

    data = tmp_path / "data"
    state = script.start(data)
    pids = probe_dir / "pids"
    outcome: list[int | None] = []
    runner = threading.Thread(
        target=lambda: outcome.append(_run(state["socket"], probe_dir, "sleep", str(pids))[0])
    )
    runner.start()
    job_pid, sleeper = _wait_for_pids(pids)
    if end == "stopped":
        assert script.stop(data)
    else:
        os.kill(state["pid"], signal.SIGKILL)
    runner.join(60)
    assert outcome == [None]
    for pid in (job_pid, sleeper):  # gone by the time the caller returned, not eventually
        assert not _alive(pid)
    script.stop(data)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
