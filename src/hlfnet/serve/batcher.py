"""A micro-batcher: requests that arrive together share one forward pass, on one inference thread.

Jobs wait in a bounded :class:`asyncio.Queue`; a full queue is refused at once (the server answers 503 with
``Retry-After``) instead of growing. The worker takes the next job and, when it can be batched, every job of
the same kind already waiting — and, if more requests are still being uploaded, waits a short window for them —
up to ``max_batch``. The work itself runs in a single worker thread, so the event loop never blocks on the
network and the model is used by one thread at a time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

__all__ = ["BatchInfo", "MicroBatcher", "QueueFull"]

logger = logging.getLogger(__name__)


class QueueFull(Exception):
    """The batcher's queue holds ``queue_size`` jobs already."""


@dataclass(frozen=True)
class BatchInfo:
    """How a job was run: jobs in its forward pass, milliseconds queued and running."""

    batch_size: int
    queue_ms: float
    run_ms: float


@dataclass
class _Job:
    kind: str
    payload: Any
    future: asyncio.Future[tuple[Any, BatchInfo]]
    enqueued: float


_STOP = object()


class MicroBatcher:
    """Batch jobs of the same kind into one call of ``process`` on a worker thread.

    Args:
        process: ``process(kind, payloads) -> results`` (same length; an element may be an exception, which
            fails only its own job). Runs on the worker thread.
        max_batch: most jobs per call.
        window_ms: how long to wait for more jobs when ``incoming()`` says requests are on their way.
        queue_size: most jobs waiting; :meth:`submit` raises :class:`QueueFull` beyond it.
        batchable: the kinds that may share a call (others run one at a time).
        incoming: how many requests are being received but not yet submitted (0 = do not wait).
    """

    def __init__(
        self,
        process: Callable[[str, list[Any]], Sequence[Any]],
        *,
        max_batch: int = 8,
        window_ms: float = 5.0,
        queue_size: int = 32,
        batchable: tuple[str, ...] = ("image",),
        incoming: Callable[[], int] = lambda: 0,
    ) -> None:
        if max_batch < 1 or queue_size < 1 or window_ms < 0:
            raise ValueError(
                f"max_batch and queue_size must be ≥ 1 and window_ms ≥ 0, got {max_batch}, {queue_size}, {window_ms}"
            )
        self.process = process
        self.max_batch = max_batch
        self.window = window_ms / 1000.0
        self.queue_size = queue_size
        self.batchable = batchable
        self.incoming = incoming
        self._queue: asyncio.Queue[Any] | None = None
        self._held: deque[Any] = deque()
        self._executor: ThreadPoolExecutor | None = None
        self._task: asyncio.Task[None] | None = None
        self.batches = 0
        self.jobs = 0

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def depth(self) -> int:
        """Jobs waiting (not yet running)."""
        return (self._queue.qsize() if self._queue is not None else 0) + len(self._held)

    async def start(self) -> None:
        self._queue = asyncio.Queue(maxsize=self.queue_size)
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="hlfnet-infer")
        self._task = asyncio.create_task(self._run(), name="hlfnet-batcher")

    def submit(self, kind: str, payload: Any) -> asyncio.Future[tuple[Any, BatchInfo]]:
        """Queue a job; await the returned future for ``(result, BatchInfo)``.

        Raises:
            QueueFull: ``queue_size`` jobs are waiting already.
            RuntimeError: the batcher is not running.
        """
        if self._queue is None or not self.running:
            raise RuntimeError("the batcher is not running")
        future: asyncio.Future[tuple[Any, BatchInfo]] = asyncio.get_running_loop().create_future()
        try:
            self._queue.put_nowait(_Job(kind, payload, future, time.perf_counter()))
        except asyncio.QueueFull:
            raise QueueFull(f"{self.queue_size} jobs waiting") from None
        return future

    async def stop(self) -> None:
        """Finish every queued job, then stop the worker and its thread."""
        if self._queue is not None and self.running:
            await self._queue.put(_STOP)
            await self._task
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    def _next_nowait(self) -> Any:
        if self._held:
            return self._held.popleft()
        assert self._queue is not None
        return self._queue.get_nowait()

    def _gather(self, first: _Job, batch: list[_Job]) -> bool:
        """Add waiting jobs of ``first``'s kind to ``batch``; False when a job of another kind (or the stop
        mark) is next, which is then held for the next round."""
        while len(batch) < self.max_batch:
            try:
                job = self._next_nowait()
            except asyncio.QueueEmpty:
                return True
            if job is _STOP or job.kind != first.kind:
                self._held.appendleft(job)
                return False
            batch.append(job)
        return False

    async def _run(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        while True:
            job = self._held.popleft() if self._held else await self._queue.get()
            if job is _STOP:
                return
            batch = [job]
            if job.kind in self.batchable and self._gather(job, batch) and self.window > 0:
                deadline = loop.time() + self.window
                while len(batch) < self.max_batch and self.incoming() > 0 and loop.time() < deadline:
                    await asyncio.sleep(min(0.001, self.window))
                    if not self._gather(job, batch):
                        break
            live = [j for j in batch if not j.future.done()]  # a timed-out request no longer waits
            if not live:
                continue
            started = time.perf_counter()
            try:
                results = await loop.run_in_executor(
                    self._executor, self.process, job.kind, [j.payload for j in live]
                )
            except Exception as error:  # the whole call failed: every job of it fails with that error
                logger.exception("inference failed for a batch of %d", len(live))
                results = [error] * len(live)
            finished = time.perf_counter()
            self.batches += 1
            self.jobs += len(live)
            for j, result in zip(live, results, strict=True):
                if j.future.done():
                    continue
                if isinstance(result, BaseException):
                    j.future.set_exception(result)
                else:
                    info = BatchInfo(len(live), (started - j.enqueued) * 1000, (finished - started) * 1000)
                    j.future.set_result((result, info))
