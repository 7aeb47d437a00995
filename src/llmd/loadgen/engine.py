"""The load engine: runs one stage (closed or open loop) on one event loop and returns per-request records.

Closed loop: `concurrency` workers, each sends its next request as soon as its previous one ended.
Open loop: arrivals at `rate` per second (constant spacing or Poisson, seeded); a request waits for one of
`max_inflight` slots, and that wait shows up as client queue delay rather than hiding in TTFT.
A stage ends when its measured request budget is spent or its duration passed (no new requests; in-flight ones
finish within their own deadlines) or when `stop` is set (Ctrl-C: in-flight requests get a 2 s drain and are then
cancelled). Requests that start during warm-up are recorded but excluded from every statistic.
"""

from __future__ import annotations

import asyncio
import gc
import random
import time
from array import array
from collections import deque
from dataclasses import dataclass, field
from itertools import pairwise
from time import perf_counter_ns

from llmd.loadgen.client import Client, Result, Target, Timeouts
from llmd.loadgen.endpoint import Endpoint
from llmd.loadgen.workloads import Workload
from llmd.sse import cached_tokens

DRAIN_S = 2.0
_LAG_PERIOD_S = 0.05
_FREEZE_EVERY = 20  # lag periods: freeze the GC's view of the heap once a second


@dataclass(frozen=True)
class Stage:
    name: str
    mode: str  # "closed" | "open"
    concurrency: int | None = None
    rate: float | None = None
    arrival: str = "constant"  # open loop: "constant" | "poisson"
    requests: int | None = None  # measured requests (warm-up excluded)
    duration_s: float | None = None  # measured seconds (after warm-up)
    warmup_s: float = 0.0
    max_inflight: int = 1000  # open loop cap

    def label(self) -> str:
        return f"c={self.concurrency}" if self.mode == "closed" else f"rate={self.rate:g}/s ({self.arrival})"


@dataclass
class Progress:
    """Live counters for the progress display (read from the same event loop)."""

    done: int = 0
    inflight: int = 0
    errors: int = 0
    ttft_recent: deque = field(default_factory=lambda: deque(maxlen=256))


@dataclass
class StageRun:
    stage: Stage
    records: list[dict]
    itl_ms: array
    start_ns: int  # stage start (warm-up included)
    measure_start_ns: int  # end of warm-up
    end_ns: int
    cpu_s: float
    loop_lag_ms: list[float]
    cancelled: int
    interrupted: bool
    worker: int = 0
    client_connections: int = 0


class _Ctx:
    """State of one running stage."""

    def __init__(self, endpoint: Endpoint, api_path: str, timeouts: Timeouts, workload: Workload, stage: Stage, *,
                 run_id: str, worker: int, t0_ns: int, start_ns: int, progress: Progress) -> None:
        self.endpoint = endpoint
        self.api_path = api_path
        self.timeouts = timeouts
        self.workload = workload
        self.stage = stage
        self.run_id = run_id
        self.worker = worker
        self.t0_ns = t0_ns  # run origin for relative times in records
        self.start_ns = start_ns
        self.measure_ns = start_ns + int(stage.warmup_s * 1e9)
        self.deadline_ns = self.measure_ns + int(stage.duration_s * 1e9) if stage.duration_s else None
        self.budget = stage.requests
        self.issued = 0
        self.measured = 0
        self.stopping = False
        self.cancelled = 0
        self.records: list[dict] = []
        self.itl_ms = array("d")  # pooled gaps: 8 bytes each, not a 32-byte float object
        self.progress = progress
        self.generation = endpoint.generation
        self.via_pf = endpoint.via_port_forward
        self.clients: list[Client] = []
        self.client = self._new_client()

    def _new_client(self) -> Client:
        client = Client(Target(self.endpoint.url, self.api_path), self.timeouts,
                        extra_headers=self.endpoint.headers)  # e.g. Authorization from $LLMD_API_KEY
        self.clients.append(client)
        return client

    def claim(self, at_ns: int) -> tuple[int, bool] | None:
        """Next request index and whether it is warm-up, or None when the stage must not issue more."""
        if self.stopping:
            return None
        if self.deadline_ns is not None and at_ns >= self.deadline_ns:
            return None
        warm = at_ns < self.measure_ns
        if not warm:
            if self.budget is not None and self.measured >= self.budget:
                return None
            self.measured += 1
        i = self.issued
        self.issued += 1
        return i, warm

    async def one(self, i: int, warm: bool, scheduled_ns: int) -> None:
        gen = self.endpoint.generation
        if gen != self.generation:  # the tunnel restarted on a new local port: new connections go there
            self.generation = gen
            self.client = self._new_client()
        body = self.workload.body(i)
        rid = f"{self.run_id}-{self.stage.name}-{self.worker}-{i}"
        # a short prompt nonce (few tokens), unique across runs, stages and workers: no accidental cache hits
        nonce = f"{self.run_id[-6:]}{self.stage.name}-{self.worker}-{i}"
        prog = self.progress
        prog.inflight += 1
        try:
            res = await self.client.request(body.render(nonce), rid)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        finally:
            prog.inflight -= 1
        lost = self.endpoint.generation != gen
        rec = self._record(i, rid, body, res, scheduled_ns=scheduled_ns, warm=warm, lost=lost)
        self.records.append(rec)
        prog.done += 1
        if not rec["ok"]:
            prog.errors += 1
        elif rec["ttft_ms"] is not None:
            prog.ttft_recent.append(rec["ttft_ms"])

    def _record(self, i, rid, body, res: Result, *, scheduled_ns: int, warm: bool, lost: bool) -> dict:
        failure = res.failure
        if failure in ("connect_error", "truncated", "timeout", "stalled") and (lost or (
                self.via_pf and failure == "connect_error")):
            failure = "tunnel_lost"
        ok = res.ok and failure is None
        usage = res.usage or {}
        out_tokens = usage.get("completion_tokens")
        in_tokens = usage.get("prompt_tokens")
        source = "usage" if isinstance(out_tokens, int) else "events"
        if not isinstance(out_tokens, int):
            out_tokens = res.content_events
        if not isinstance(in_tokens, int):
            in_tokens = body.input_tokens
        ttft = tpot = e2e = itl_max = None
        sent = res.sent_ns
        if res.first_ns:
            ttft = (res.first_ns - sent) / 1e6
        if res.end_ns and sent:
            e2e = (res.end_ns - sent) / 1e6
        if ok and out_tokens > 1 and res.first_ns:  # 0 when every token arrived in one read
            tpot = (res.last_ns - res.first_ns) / 1e6 / (out_tokens - 1)
        ev = res.event_ns
        if ok and len(ev) > 1:
            gaps = [(b - a) / 1e6 for a, b in pairwise(ev)]
            itl_max = max(gaps)
            if not warm:
                self.itl_ms.extend(gaps)
        return {
            "id": rid, "stage": self.stage.name, "worker": self.worker, "index": i, "warmup": warm, "ok": ok,
            "failure": failure, "error": res.error if not ok else None, "status": res.status,
            "scheduled_s": round((scheduled_ns - self.t0_ns) / 1e9, 6),
            "queue_ms": round(max(0, sent - scheduled_ns) / 1e6, 4) if sent else None,
            "ttft_ms": _r(ttft), "tpot_ms": _r(tpot), "e2e_ms": _r(e2e), "itl_max_ms": _r(itl_max),
            "input_tokens": in_tokens, "output_tokens": out_tokens, "token_source": source,
            "cached_tokens": cached_tokens(res.usage), "content_events": res.content_events,
            "finish_reason": res.finish_reason, "group": body.group, "retry_after": res.retry_after,
            "sent_ns": sent, "end_ns": res.end_ns,
        }


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


async def _closed(ctx: _Ctx) -> None:
    async def worker() -> None:
        while True:
            now = perf_counter_ns()
            got = ctx.claim(now)
            if got is None:
                return
            await ctx.one(got[0], got[1], now)

    await asyncio.gather(*(worker() for _ in range(ctx.stage.concurrency or 1)))


async def _open(ctx: _Ctx, seed: int) -> None:
    stage = ctx.stage
    rng = random.Random(f"arrivals:{seed}:{stage.name}:{ctx.worker}")
    rate = float(stage.rate or 1.0)
    slots = asyncio.Semaphore(stage.max_inflight)
    tasks: set[asyncio.Task] = set()
    next_ns = ctx.start_ns
    first = True

    async def send(i: int, warm: bool, at: int) -> None:
        try:
            await ctx.one(i, warm, at)
        finally:
            slots.release()

    try:
        while True:
            if not first:
                gap = rng.expovariate(rate) if stage.arrival == "poisson" else 1.0 / rate
                next_ns += int(gap * 1e9)
            first = False
            delay = (next_ns - perf_counter_ns()) / 1e9
            if delay > 0:
                await asyncio.sleep(delay)
            got = ctx.claim(next_ns)
            if got is None:
                break
            await slots.acquire()  # waiting here is client queue delay: next_ns stays the scheduled time
            task = asyncio.ensure_future(send(got[0], got[1], next_ns))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.gather(*tasks)
    except asyncio.CancelledError:
        for t in list(tasks):
            t.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        raise


async def _lag_monitor(lags: list[float]) -> None:
    n = 0
    while True:
        t = time.perf_counter()
        await asyncio.sleep(_LAG_PERIOD_S)
        lags.append(max(0.0, (time.perf_counter() - t - _LAG_PERIOD_S) * 1000))
        n += 1
        if n % _FREEZE_EVERY == 0:
            # Records pile up by the hundred thousand; frozen objects are skipped by the cyclic GC, so a full
            # collection never walks them mid-measurement (measured: a full collection over 500k records
            # pauses the loop ~150 ms, and every timestamp taken after it is late).
            gc.freeze()


async def run_stage(endpoint: Endpoint, api_path: str, timeouts: Timeouts, workload: Workload, stage: Stage, *,
                    run_id: str, seed: int, t0_ns: int, progress: Progress, stop: asyncio.Event,
                    worker: int = 0, start_ns: int | None = None) -> StageRun:
    """Run one stage to its bound (or until `stop`) and return its records."""
    # Collect before the stage clock starts: the pause (tens of ms on a big heap) would otherwise be charged to
    # the first open-loop arrivals as queue delay and eaten out of the warm-up/measured window.
    gc.collect()
    gc.freeze()
    start = start_ns or perf_counter_ns()
    # aligned start across worker processes; uvloop's millisecond timers wake up to 1 ms early, and a request
    # claimed before `start` would count as warm-up, so sleep again until the instant has really passed
    while start_ns is not None and (left := start_ns - perf_counter_ns()) > 0:
        await asyncio.sleep(left / 1e9)
    ctx = _Ctx(endpoint, api_path, timeouts, workload, stage, run_id=run_id, worker=worker, t0_ns=t0_ns,
               start_ns=start, progress=progress)
    lags: list[float] = []
    cpu0 = time.process_time()
    lagger = asyncio.ensure_future(_lag_monitor(lags))
    main = asyncio.ensure_future(_closed(ctx) if stage.mode == "closed" else _open(ctx, seed))
    stopper = asyncio.ensure_future(stop.wait())
    interrupted = False
    try:
        await asyncio.wait({main, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if not main.done():  # stop requested: issue nothing more, drain, then cancel what is left
            interrupted = True
            ctx.stopping = True
            await asyncio.wait({main}, timeout=DRAIN_S)
            if not main.done():
                main.cancel()
                await asyncio.gather(main, return_exceptions=True)
        elif (exc := main.exception()) is not None:
            raise exc
    finally:
        for t in (stopper, lagger, main):
            t.cancel()
        await asyncio.gather(stopper, lagger, main, return_exceptions=True)
        for c in ctx.clients:
            c.close()
        gc.unfreeze()  # collect whatever cycles the stage left, outside the measurement
    end = perf_counter_ns()
    return StageRun(stage=stage, records=ctx.records, itl_ms=ctx.itl_ms, start_ns=start,
                    measure_start_ns=ctx.measure_ns, end_ns=end, cpu_s=time.process_time() - cpu0, loop_lag_ms=lags,
                    cancelled=ctx.cancelled,
                    interrupted=interrupted, worker=worker, client_connections=sum(c.opened for c in ctx.clients))
