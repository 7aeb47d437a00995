"""Shared pieces of bench/perf_accuracy.py and bench/perf_capacity.py: the sim process, the llmd engine, a naive
httpx client for comparison, and percentile helpers. Traffic goes only to the sim on 127.0.0.1 and every run is
bounded by a duration and a request count.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import time
from pathlib import Path
from time import perf_counter_ns

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
sys.path.insert(0, str(ROOT / "src"))

from llmd.loadgen import workloads  # noqa: E402
from llmd.loadgen.client import Timeouts  # noqa: E402
from llmd.loadgen.engine import Progress, Stage, run_stage  # noqa: E402
from llmd.loadgen.loop import loop_kind, new_event_loop  # noqa: E402
from llmd.loadgen.metrics import percentile  # noqa: E402
from llmd.loadgen.report import summarize_stage  # noqa: E402
from llmd.proc import Cmd, Runner, stop_process  # noqa: E402


def can_pin() -> bool:
    return shutil.which("taskset") is not None and (os.cpu_count() or 1) >= 2 and hasattr(os, "sched_setaffinity")


class Sim:
    """`llmd sim` in its own process (pinned to core 1 when possible); the client pins itself to core 0."""

    def __init__(self, *args: str, record: str | None = None, pin: bool = True) -> None:
        argv = (sys.executable, "-m", "llmd", "sim", "--port", "0", "--max-num-seqs", "100000", *args)
        if record:
            argv = (*argv, "--record", record)
        self.pinned = pin and can_pin()
        if self.pinned:
            argv = ("taskset", "-c", "1", *argv)
            os.sched_setaffinity(0, {0})
        self.proc, self.url = start_listening(argv, "llmd sim (bench)")

    def cpu_seconds(self) -> float:
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            return float("nan")

    def stop(self) -> None:
        stop_process(self.proc)  # SIGINT first: the sim writes --record at exit


def start_listening(argv: tuple[str, ...], title: str):
    """Start a server that prints its URL as the first stdout line; (process, url)."""
    p = Runner().spawn(Cmd(argv, title=title))
    url = p.stdout.readline().decode().strip()
    if not url.startswith("http://"):
        err = p.stderr.read().decode()
        stop_process(p)
        raise SystemExit(f"{title} did not start: {url!r} {err}")
    return p, url


class EP:
    def __init__(self, url: str) -> None:
        self.url, self.via_port_forward, self.generation = url, False, 0
        self.headers: dict[str, str] = {}


def new_loop():
    """The engine's own loop choice (uvloop unless LLMD_LOOP=asyncio), reported in the results."""
    return new_event_loop(), loop_kind()


def run_llmd(url: str, *, concurrency: int, seconds: float, requests: int, tokens: int, warmup: float = 1.0,
             workers: int = 1, workload: workloads.Workload | None = None) -> dict:
    """Drive the llmd engine (closed loop) and return the stage summary plus the per-request records."""
    wl = workload or workloads.synthetic(api="chat", model="random", input_tokens=16, output_tokens=tokens, pool=256)
    stage = Stage(f"c{concurrency}", "closed", concurrency=concurrency, requests=requests, duration_s=seconds,
                  warmup_s=warmup)
    timeouts = Timeouts(connect_s=5, read_s=10, total_s=60)
    if workers > 1:
        from llmd.loadgen.workers import run_stage_workers

        async def go_workers():
            return await run_stage_workers(EP(url), "/v1/chat/completions", timeouts, wl, stage, run_id="bench",
                                           seed=0, t0_ns=perf_counter_ns(), workers=workers, stop=asyncio.Event())
        loop, kind = asyncio.new_event_loop(), "asyncio"
        runs = loop.run_until_complete(go_workers())
    else:
        async def go():
            return await run_stage(EP(url), "/v1/chat/completions", timeouts, wl, stage, run_id="bench", seed=0,
                                   t0_ns=perf_counter_ns(), progress=Progress(), stop=asyncio.Event())
        loop, kind = new_loop()
        runs = [loop.run_until_complete(go())]
    loop.close()
    summary = summarize_stage(runs, {}, 1.0, stage)
    summary["loop"] = kind
    return {"summary": summary, "records": [r for run in runs for r in run.records if not r["warmup"]],
            "itl_ms": [x for run in runs for x in run.itl_ms]}


def run_httpx(url: str, *, concurrency: int, seconds: float, requests: int, tokens: int) -> dict:
    """A naive streaming client: one httpx.AsyncClient, `aiter_lines`, timestamps after the line parser."""
    import httpx

    body = json.loads(workloads.synthetic(api="chat", model="random", input_tokens=16, output_tokens=tokens,
                                          pool=1).body(0).render("n"))
    out: list[dict] = []
    cpu0 = time.process_time()

    async def main() -> None:
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(base_url=url, limits=limits, timeout=httpx.Timeout(30.0)) as client:
            deadline = time.perf_counter() + seconds
            counter = iter(range(requests))

            async def worker() -> None:
                for i in counter:
                    if time.perf_counter() > deadline:
                        return
                    rid = f"httpx-{i}"
                    t0 = perf_counter_ns()
                    first = 0
                    last_t = 0
                    gaps = []
                    ok = False
                    async with client.stream("POST", "/v1/chat/completions", json=body,
                                             headers={"x-request-id": rid}) as resp:
                        async for line in resp.aiter_lines():
                            if not line.startswith("data:"):
                                continue
                            data = line[5:].strip()
                            if data == "[DONE]":
                                ok = True
                                continue
                            chunk = json.loads(data)
                            choices = chunk.get("choices") or []
                            if choices and (choices[0].get("delta") or {}).get("content"):
                                now = perf_counter_ns()
                                if not first:
                                    first = now
                                else:
                                    gaps.append((now - last_t) / 1e6)
                                last_t = now
                    out.append({"id": rid, "ok": ok and resp.status_code == 200, "sent_ns": t0,
                                "ttft_ms": (first - t0) / 1e6 if first else None, "gaps": gaps,
                                "e2e_ms": (perf_counter_ns() - t0) / 1e6})

            await asyncio.gather(*(worker() for _ in range(concurrency)))

    t = time.perf_counter()
    loop, kind = new_loop()
    loop.run_until_complete(main())
    loop.close()
    wall = time.perf_counter() - t
    ok = [r for r in out if r["ok"]]
    return {"records": out, "req_s": len(ok) / wall, "cpu": (time.process_time() - cpu0) / wall, "loop": kind,
            "ttft_p99": pct([r["ttft_ms"] for r in ok if r["ttft_ms"] is not None], 99)}


def pct(values: list[float], q: float) -> float:
    return percentile(sorted(values), q) if values else float("nan")


def read_record(path: str) -> dict[str, dict]:
    out = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.strip():
            rec = json.loads(line)
            out[rec["id"]] = rec
    return out


def save(name: str, doc: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(doc, indent=1, default=str) + "\n", encoding="utf-8")
    return path
