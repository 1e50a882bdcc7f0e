"""Locust load for the endpoint (the load-test gate, ``jobs.load_test``, and ``make bench``):
closed-loop clients posting one scoring request (or question) each, as fast as answers come. Always run as its
own process (Locust's gevent patches the interpreter), headless, bounded in users and time, against
loopback only (``jobs.serving.load.run_locust``).

    RUNWAY_LOAD_BODY=/path/body.json locust -f jobs/serving/locustfile.py --headless \
        -u 64 -r 64 -t 15s --host http://127.0.0.1:8000 --csv out --only-summary
"""

import os
from pathlib import Path

from locust import FastHttpUser, constant, task

BODY = Path(os.environ["RUNWAY_LOAD_BODY"]).read_bytes()
PATH = os.environ.get("RUNWAY_LOAD_PATH", "/invocations")  # the assistant's: /assistant/ask
HEADERS = {"Content-Type": "application/json"}


class ScoringClient(FastHttpUser):
    wait_time = constant(0)

    @task
    def invoke(self) -> None:
        self.client.post(PATH, data=BODY, headers=HEADERS)
