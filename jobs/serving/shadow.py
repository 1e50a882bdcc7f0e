"""Shadow scoring off the request path: a thread of its own, a bounded backlog.

The shadow version scores a copy of each answered request after its answer is ready; its predict
never shares the primary's thread or batches, so a slow shadow cannot slow the answers. At most
``limit`` copies wait; more are dropped and counted (the comparison is a sample then, never a
delay). On shutdown the waiting copies are scored before the inference log's last flush.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from jobs.serving.batcher import one_openmp_thread

log = logging.getLogger("runway.serving.shadow")


class ShadowWorker:
    def __init__(self, limit: int, on_outcome: Callable[[str], None] | None = None) -> None:
        self.limit = limit
        self._on_outcome = on_outcome or (lambda outcome: None)
        self._pool = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="shadow", initializer=one_openmp_thread
        )
        self._waiting = 0
        self._lock = threading.Lock()

    @property
    def waiting(self) -> int:
        return self._waiting

    def submit(self, job: Callable[[], None]) -> bool:
        """Queue one shadow scoring; False (dropped, counted) when ``limit`` wait already."""
        with self._lock:
            if self._waiting >= self.limit:
                self._on_outcome("dropped")
                return False
            self._waiting += 1
        self._pool.submit(self._run, job)
        return True

    def _run(self, job: Callable[[], None]) -> None:
        try:
            job()
            self._on_outcome("scored")
        except Exception:  # never lost silently, never raised into the answers
            log.exception("shadow scoring failed")
            self._on_outcome("failed")
        finally:
            with self._lock:
                self._waiting -= 1

    def close(self) -> None:
        self._pool.shutdown(wait=True)
