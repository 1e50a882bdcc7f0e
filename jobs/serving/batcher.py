"""Dynamic micro-batching: concurrent requests scored by one ``predict``.

A request waits at most ``max_wait_ms`` for others, and only while other requests are in flight
(a lone client is never delayed); a batch closes at ``max_rows``. Each batch is scored by the
version served when it closed, in one worker thread (the model's predict releases the GIL), and
every request gets its own slice back. Throughput then grows with concurrency: the per-call cost
of ``predict`` is paid once per batch, not once per request.
"""

from __future__ import annotations

import asyncio
import contextlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
from threadpoolctl import threadpool_limits

from jobs.modeling.scoring import positive_probability

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

    from jobs.serving.follower import Served


@dataclass
class _Pending:
    served: Served
    inputs: pa.Table
    future: asyncio.Future = field(repr=False)


class MicroBatcher:
    def __init__(self, max_rows: int = 64, max_wait_ms: float = 2.0, on_batch=None) -> None:
        self.max_rows, self.max_wait = max_rows, max_wait_ms / 1000
        self._on_batch = on_batch or (lambda rows: None)
        self._queue: asyncio.Queue[_Pending] | None = None
        self._in_flight = 0
        self._pool = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="predict", initializer=one_openmp_thread
        )
        self._worker: asyncio.Task | None = None

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._worker = asyncio.create_task(self._run(), name="micro-batcher")

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        self._pool.shutdown(wait=True)

    async def score(self, served: Served, inputs: pa.Table) -> np.ndarray:
        """The positive-class probability of each input row (scored with ``served`` or, when it
        lands in the same batch, by the same version)."""
        future = asyncio.get_running_loop().create_future()
        self._in_flight += 1
        try:
            await self._queue.put(_Pending(served, inputs, future))
            return await future
        finally:
            self._in_flight -= 1

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            rows = batch[0].inputs.num_rows
            deadline = loop.time() + self.max_wait
            while rows < self.max_rows:
                if not self._queue.empty():
                    item = self._queue.get_nowait()
                elif self._in_flight > len(batch) and (left := deadline - loop.time()) > 0:
                    try:  # others are in flight: give them up to max_wait to join
                        item = await asyncio.wait_for(self._queue.get(), left)
                    except TimeoutError:
                        break
                else:
                    break
                batch.append(item)
                rows += item.inputs.num_rows
            for group in _by_version(batch):
                await self._predict(loop, group)

    async def _predict(self, loop, group: list[_Pending]) -> None:

        served = group[0].served
        inputs = pa.concat_tables([p.inputs for p in group], promote_options="permissive")
        self._on_batch(inputs.num_rows)
        try:
            proba = await loop.run_in_executor(  # off the loop, which parses and answers meanwhile
                self._pool, positive_probability, served.pyfunc, inputs.to_pandas()
            )
        except Exception as exc:  # every request of the batch fails with it (a 500 each)
            for pending in group:
                if not pending.future.done():
                    pending.future.set_exception(exc)
            return
        offsets = np.cumsum([0, *(p.inputs.num_rows for p in group)])
        for pending, start, end in zip(group, offsets[:-1], offsets[1:], strict=True):
            if not pending.future.done():  # a client that went away
                pending.future.set_result(proba[start:end])


_limits: list = []


def one_openmp_thread() -> None:
    """The predict thread runs OpenMP (scikit-learn's trees) single-threaded: handing each small
    batch to an OpenMP team from a worker thread cost ~15 ms per predict on 2 cores (4 ms without),
    and the other core serves the event loop. Kept for the thread's life."""

    _limits.append(threadpool_limits(limits=1, user_api="openmp"))


def _by_version(batch: list[_Pending]) -> list[list[_Pending]]:
    groups: dict[int, list[_Pending]] = {}
    for pending in batch:
        groups.setdefault(id(pending.served), []).append(pending)
    return list(groups.values())
