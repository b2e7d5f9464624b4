"""The server's memory budget: bytes of decoded pixels and voxels in flight, reserved before decoding.

A request reserves what its upload will need once decoded (from the file's header: pixels ×
:data:`~hlfnet.serve.config.BYTES_PER_PIXEL`, voxels × :data:`~hlfnet.serve.config.BYTES_PER_VOXEL`) before it
decodes anything, and gives it back when its answer is built. When the budget is spent, further requests wait
(first come, first served) until memory is given back, within their request timeout; so sixteen concurrent
maximum-size uploads are decoded a few at a time instead of all at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

__all__ = ["MemoryBudget"]


class MemoryBudget:
    """A weighted, first-come-first-served semaphore over bytes.

    Args:
        total: the budget in bytes.
    """

    def __init__(self, total: int) -> None:
        if total < 1:
            raise ValueError(f"memory budget must be positive, got {total}")
        self.total = total
        self.used = 0
        self.peak = 0
        self._waiting: list[tuple[int, asyncio.Future[None]]] = []

    @contextlib.asynccontextmanager
    async def reserve(self, amount: int) -> AsyncIterator[None]:
        """Hold ``amount`` bytes (at most :attr:`total`) while the block runs; waits while they are not free.

        Raises:
            ValueError: ``amount`` is larger than the whole budget (the serving limits prevent that).
        """
        amount = max(0, int(amount))
        if amount > self.total:
            raise ValueError(f"{amount} bytes exceed the whole memory budget of {self.total}")
        if self._waiting or self.used + amount > self.total:
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            entry = (amount, future)
            self._waiting.append(entry)
            try:
                await future
            except BaseException:
                if entry in self._waiting:
                    self._waiting.remove(entry)
                elif future.done() and not future.cancelled():
                    self._release(amount)  # granted just as we were cancelled: give it back
                raise
        else:
            self.used += amount
        self.peak = max(self.peak, self.used)
        try:
            yield
        finally:
            self._release(amount)

    def _release(self, amount: int) -> None:
        self.used -= amount
        while self._waiting and self.used + self._waiting[0][0] <= self.total:
            amount, future = self._waiting.pop(0)
            if future.done():
                continue
            self.used += amount
            future.set_result(None)
