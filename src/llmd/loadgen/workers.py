"""`--workers N`: run a stage in N processes, each driving a share of the concurrency/rate/requests.

Workers are started with the `spawn` method (no fork of a process that may run threads), start at one shared
CLOCK_MONOTONIC instant (perf_counter_ns is system-wide on Linux, so their timestamps merge), and send their
StageRun back over a pipe. Live counters go through a shared array. On SIGINT every worker (same process group)
drains and returns a partial stage; the parent terminates any worker that does not, so none outlives the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing as mp
import signal
from dataclasses import replace
from time import perf_counter_ns

from llmd.loadgen.client import Timeouts
from llmd.loadgen.endpoint import Endpoint
from llmd.loadgen.engine import DRAIN_S, Progress, Stage, StageRun, run_stage
from llmd.loadgen.loop import run as loop_run

_SLOTS = 4  # done, inflight, errors, rolling TTFT p50 in microseconds
_START_DELAY_S = 1.0  # time for the spawned interpreters to import and connect


class _Endpoint:
    """Picklable snapshot of the caller's endpoint (a port-forward restart is seen between stages only)."""

    def __init__(self, url: str, via_port_forward: bool, generation: int, headers: dict | None = None) -> None:
        self.url, self.via_port_forward, self.generation = url, via_port_forward, generation
        self.headers = dict(headers or {})  # Authorization travels over the worker's pipe, never in argv


def split_stage(stage: Stage, workers: int) -> list[Stage]:
    """Shares of one stage; never more workers than concurrency or requests allow."""
    if stage.mode == "closed":
        workers = min(workers, stage.concurrency or 1)
    if stage.requests is not None:
        workers = min(workers, stage.requests)
    workers = max(1, workers)
    def share(total: int | None, w: int) -> int | None:
        return None if total is None else total // workers + (1 if w < total % workers else 0)

    out = []
    for w in range(workers):
        out.append(replace(stage, concurrency=share(stage.concurrency, w), requests=share(stage.requests, w),
                           rate=None if stage.rate is None else stage.rate / workers,
                           max_inflight=max(1, stage.max_inflight // workers)))
    return out


def _child(conn, counters, w: int, args: tuple) -> None:
    endpoint, api_path, timeouts, workload, stage, run_id, seed, t0_ns, start_ns = args

    async def main() -> StageRun:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        progress = Progress()

        async def publish() -> None:
            base = w * _SLOTS
            while True:
                counters[base], counters[base + 1] = progress.done, progress.inflight
                counters[base + 2] = progress.errors
                recent = sorted(progress.ttft_recent)
                counters[base + 3] = int(recent[len(recent) // 2] * 1000) if recent else 0
                await asyncio.sleep(0.2)

        pub = asyncio.ensure_future(publish())
        try:
            return await run_stage(endpoint, api_path, timeouts, workload, stage, run_id=run_id, seed=seed,
                                   t0_ns=t0_ns, progress=progress, stop=stop, worker=w, start_ns=start_ns)
        finally:
            pub.cancel()

    try:
        conn.send(("ok", loop_run(main())))
    except BaseException as exc:  # report, never hang the parent
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()


async def run_stage_workers(endpoint: Endpoint, api_path: str, timeouts: Timeouts, workload, stage: Stage, *,
                            run_id: str, seed: int, t0_ns: int, workers: int, stop: asyncio.Event,
                            on_tick=None) -> list[StageRun]:
    ctx = mp.get_context("spawn")
    shares = split_stage(stage, workers)
    counters = ctx.Array("q", _SLOTS * len(shares), lock=False)
    ep = _Endpoint(endpoint.url, endpoint.via_port_forward, endpoint.generation, dict(endpoint.headers))
    start_ns = perf_counter_ns() + int(_START_DELAY_S * 1e9)
    procs, pipes = [], []
    for w, share in enumerate(shares):
        parent, child = ctx.Pipe(duplex=False)
        phase = int(w * 1e9 / stage.rate) if stage.mode == "open" and stage.arrival == "constant" and stage.rate else 0
        args = (ep, api_path, timeouts, workload, share, run_id, seed, t0_ns, start_ns + phase)
        p = ctx.Process(target=_child, args=(child, counters, w, args), daemon=True, name=f"llmd-perf-worker-{w}")
        p.start()
        child.close()
        procs.append(p)
        pipes.append(parent)
    results: dict[int, StageRun] = {}
    errors: list[str] = []
    stop_at = None
    try:
        while len(results) + len(errors) < len(procs):
            for w, pipe in enumerate(pipes):
                if w in results or not pipe.poll():
                    continue
                try:
                    kind, value = pipe.recv()
                except EOFError:
                    kind, value = "error", f"worker {w} exited with code {procs[w].exitcode}"
                if kind == "ok":
                    results[w] = value
                else:
                    errors.append(value)
                    results[w] = None  # type: ignore[assignment]
            if on_tick is not None:
                on_tick(_merge(counters, len(shares)))
            if stop.is_set():
                stop_at = stop_at or perf_counter_ns()
                if perf_counter_ns() - stop_at > (DRAIN_S + 3) * 1e9:
                    break
            if any(not p.is_alive() for w, p in enumerate(procs) if w not in results) and not any(
                    pipes[w].poll() for w in range(len(procs)) if w not in results):
                for w, p in enumerate(procs):
                    if w not in results and not p.is_alive():
                        errors.append(f"worker {w} exited with code {p.exitcode}")
                        results[w] = None  # type: ignore[assignment]
            await asyncio.sleep(0.05)
    finally:
        for p in procs:
            p.join(timeout=1)
            if p.is_alive():
                p.terminate()
                p.join(timeout=2)
            if p.is_alive():
                p.kill()
                p.join()
        for pipe in pipes:
            with contextlib.suppress(OSError):
                pipe.close()
    runs = [r for r in results.values() if r is not None]
    if errors and not runs:
        from llmd.errors import LlmdError

        raise LlmdError("all perf workers failed: " + "; ".join(errors[:3]), "re-run with --workers 1 and --debug")
    for run in runs:
        run.interrupted = run.interrupted or stop.is_set()
    return runs


def _merge(counters, n: int) -> Progress:
    p = Progress()
    for w in range(n):
        base = w * _SLOTS
        p.done += counters[base]
        p.inflight += counters[base + 1]
        p.errors += counters[base + 2]
        if counters[base + 3]:
            p.ttft_recent.append(counters[base + 3] / 1000)
    return p
