"""What a running perf stage shows: done/total, in flight, errors, TTFT p50 and an ETA.

On a terminal one live line (refreshed from the event loop); without one (a CI log, a pipe) a plain line every
LOG_EVERY_S seconds, so a long run shows it is alive without flooding the log. The stage's own line comes first
in both cases (`→ perf stage ...`).
"""

from __future__ import annotations

import time
from typing import Any

LOG_EVERY_S = 10.0


def eta_s(stage: Any, done: int, elapsed: float) -> float | None:
    """Seconds left: the time bound when there is one, the request count's pace otherwise (the smaller)."""
    left: list[float] = []
    if stage.duration_s:
        left.append(max(0.0, (stage.warmup_s or 0.0) + stage.duration_s - elapsed))
    if stage.requests and done:
        left.append(max(0.0, elapsed / done * (stage.requests - done)))
    return min(left) if left else None


def progress_text(stage: Any, p: Any, elapsed: float) -> str:
    total = stage.requests
    done = f"done {p.done}/{total} ({min(p.done / total, 1.0):.0%})" if total else f"done {p.done}"
    recent = sorted(p.ttft_recent)
    p50 = f"{recent[len(recent) // 2]:.1f} ms" if recent else "-"
    eta = eta_s(stage, p.done, elapsed)
    return (f"{stage.label()}  {elapsed:5.1f} s  {done}  in flight {p.inflight}  errors {p.errors}  TTFT p50 {p50}"
            + (f"  ETA {eta:.0f} s" if eta is not None else ""))


class LiveLine:
    """One status line, only on a terminal."""

    def __init__(self, ui: Any, stage: Any) -> None:
        from rich.live import Live

        self.stage = stage
        self.t0 = time.monotonic()
        self.shown = 0.0
        # refreshed from the event loop (no refresh thread competing with the load for the GIL)
        self.live = Live("", console=ui.err, auto_refresh=False, transient=True)
        self.live.start()

    def update(self, p: Any) -> None:
        now = time.monotonic()
        if now - self.shown < 0.2:
            return
        self.shown = now
        self.live.update("  " + progress_text(self.stage, p, now - self.t0), refresh=True)

    def close(self) -> None:
        self.live.stop()


class LogLines:
    """Without a terminal: the same text as a plain line every LOG_EVERY_S seconds."""

    def __init__(self, ui: Any, stage: Any, every_s: float | None = None) -> None:
        self.ui = ui
        self.stage = stage
        self.every_s = LOG_EVERY_S if every_s is None else every_s
        self.t0 = time.monotonic()
        self.shown = self.t0

    def update(self, p: Any) -> None:
        now = time.monotonic()
        if now - self.shown >= self.every_s:
            self.shown = now
            self.ui.info("  " + progress_text(self.stage, p, now - self.t0))

    def close(self) -> None:
        pass
