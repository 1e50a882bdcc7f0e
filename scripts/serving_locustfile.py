"""Locust load for the serving bench (scripts/bench.py ``serving``): closed-loop clients posting one
scoring request each, as fast as answers come. Run by the bench as its own process (Locust's gevent
patches the interpreter), headless, bounded in users and time, against loopback only.

    RUNWAY_BENCH_BODY=/path/body.json locust -f scripts/serving_locustfile.py --headless \
        -u 64 -r 64 -t 15s --host http://127.0.0.1:8000 --csv out --only-summary
"""

import os
from pathlib import Path

from locust import FastHttpUser, constant, task

BODY = Path(os.environ["RUNWAY_BENCH_BODY"]).read_bytes()
HEADERS = {"Content-Type": "application/json"}


class ScoringClient(FastHttpUser):
    wait_time = constant(0)

    @task
    def invoke(self) -> None:
        self.client.post("/invocations", data=BODY, headers=HEADERS)
