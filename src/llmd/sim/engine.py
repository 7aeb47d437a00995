"""Concurrency model of one replica: `max_num_seqs` slots and a FIFO waiting queue.

A request holds its slot for its whole life (TTFT, every token, the final write). When a slot
frees up it is handed directly to the oldest waiter, so `running` never dips in between.
`running` / `len(waiting)` are exactly vllm:num_requests_running / vllm:num_requests_waiting.
"""

from __future__ import annotations

import asyncio
from collections import deque


class QueueFull(Exception):
    """The waiting queue is at --max-waiting (upstream answers 429)."""


class Slots:
    def __init__(self, max_num_seqs: int, max_waiting: int) -> None:
        self.max_num_seqs = max_num_seqs
        self.max_waiting = max_waiting
        self.running = 0
        self.waiting: deque[asyncio.Future] = deque()

    def try_acquire(self) -> bool:
        """Take a free slot without waiting (the synchronous fast path)."""
        if self.running < self.max_num_seqs and not self.waiting:
            self.running += 1
            return True
        return False

    async def acquire(self) -> None:
        if self.try_acquire():
            return
        if len(self.waiting) >= self.max_waiting:
            raise QueueFull("waiting requests queue is full")
        fut = asyncio.get_running_loop().create_future()
        self.waiting.append(fut)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release()  # the slot was handed over just before the cancel: pass it on
            else:
                try:
                    self.waiting.remove(fut)
                except ValueError:
                    pass
            raise

    def release(self) -> None:
        waiting = self.waiting
        while waiting:
            fut = waiting.popleft()
            if not fut.done():
                fut.set_result(None)  # the slot moves to the waiter; running stays the same
                return
        self.running -= 1
