"""Ground-truth timing records (`--record FILE`), one JSON line per request.

Timestamps are time.perf_counter_ns() (CLOCK_MONOTONIC on Linux, comparable across processes).
Records are buffered as tuples and written at shutdown (or when the buffer grows large) so that
recording does not perturb the timing it measures.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

FLUSH_EVERY = 200_000
FIELDS = ("id", "path", "status", "port", "recv_ns", "first_token_ns", "last_token_ns", "n_tokens", "fault",
          "token_ns")


class Recorder:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text("")  # truncate now: a bad path fails at start, not at shutdown
        self._buf: list[tuple] = []
        self._lock = threading.Lock()  # replicas in threads may share one recorder

    def add(self, rec: tuple) -> None:
        self._buf.append(rec)
        if len(self._buf) >= FLUSH_EVERY:
            self.flush()

    def flush(self) -> None:
        with self._lock:
            buf, self._buf = self._buf, []
            if not buf:
                return
            with self.path.open("a", encoding="utf-8") as fh:
                for rec in buf:
                    fh.write(json.dumps(dict(zip(FIELDS, rec, strict=True)), separators=(",", ":")) + "\n")
