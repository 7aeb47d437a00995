"""Per-replica KV block cache, as llm-d-inference-sim models it.

Blocks are keyed by a hash chained over full blocks of `block_size` token ids (a partial tail is
ignored), rooted at the hash seed and the model name, so equal keys mean an equal prefix.
`used` blocks are pinned by running requests (refcounted); released blocks move to `unused`
(still hit-able, evicted oldest-released first). Usage is pinned blocks / capacity, so idle
cached blocks do not count (vLLM semantics).
"""

from __future__ import annotations

import itertools
import zlib
from collections import OrderedDict, deque
from typing import Any

EVENT_WINDOW = 200_000  # events kept for pollers; one further behind gets a snapshot instead


class CapacityError(Exception):
    """The request needs more blocks than the cache can pin (upstream answers HTTP 500)."""


def block_keys(ids: list[int], block_size: int, model: str, hash_seed: str = "") -> list[int]:
    parent = zlib.crc32(f"{hash_seed}\0{model}".encode())
    keys = []
    for start in range(0, len(ids) - block_size + 1, block_size):
        # hash() of a tuple of ints is deterministic across processes (no PYTHONHASHSEED salt)
        parent = hash((parent, *ids[start:start + block_size]))
        keys.append(parent)
    return keys


class KVCache:
    def __init__(self, capacity: int, block_size: int) -> None:
        self.capacity = capacity
        self.block_size = block_size
        self.used: dict[int, int] = {}  # key -> refcount of running requests
        self.unused: OrderedDict[int, None] = OrderedDict()  # released blocks, oldest first
        # KV events (vLLM's BlockStored / BlockRemoved, which feed the precise prefix scorer): (seq, stored?, key)
        self.seq = 0
        self.events: deque[tuple[int, bool, int]] = deque(maxlen=EVENT_WINDOW)

    def acquire(self, keys: list[int]) -> int:
        """Pin the blocks of a starting request; return how many were already cached."""
        used, unused = self.used, self.unused
        present = moved = 0
        for k in keys:
            if k in used:
                present += 1
            elif k in unused:
                present += 1
                moved += 1
        new = len(keys) - present
        if len(used) + moved + new > self.capacity:
            raise CapacityError("the kv cache does not have sufficient capacity to store this request")
        for k in keys:
            if k in used:
                used[k] += 1
            elif k in unused:
                del unused[k]
                used[k] = 1
            else:
                if len(used) + len(unused) >= self.capacity:
                    old, _ = unused.popitem(last=False)  # evict the oldest-released block
                    self._event(False, old)
                used[k] = 1
                self._event(True, k)
        return present

    def _event(self, stored: bool, key: int) -> None:
        self.seq += 1
        self.events.append((self.seq, stored, key))

    def events_after(self, after: int) -> dict[str, Any]:
        """What changed since event `after`: {"seq", "events": [[1 stored | 0 removed, key], ...]} in order, or a
        full "snapshot" of the cached keys when `after` is older than the kept window (a new or restarted poller)."""
        events = self.events
        if after > self.seq:  # the poller knew a previous life of this replica
            after = -1
        if after < 0 or (events and events[0][0] > after + 1) or (not events and after < self.seq):
            return {"seq": self.seq, "snapshot": [*self.used, *self.unused]}
        newest = list(itertools.islice(reversed(events), self.seq - after))  # O(new events), not O(window)
        return {"seq": self.seq, "events": [[int(s), k] for _, s, k in reversed(newest)]}

    def release(self, keys: list[int]) -> None:
        used, unused = self.used, self.unused
        for k in keys:
            count = used.get(k)
            if count is None:
                continue
            if count > 1:
                used[k] = count - 1
            else:
                del used[k]
                unused[k] = None

    @property
    def usage(self) -> float:
        return len(self.used) / self.capacity
