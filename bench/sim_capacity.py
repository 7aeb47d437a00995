"""Capacity of `llmd sim` on one core: max requests/s with zero latency.

The sim runs as a separate process (`python -m llmd sim`, pinned with `taskset -c 1` when the
machine has >= 2 cores); this process is the client, pinned to core 0. The client is a raw
asyncio protocol with pre-encoded requests over keep-alive connections (optionally pipelined),
so it costs far less per request than the server. Traffic goes only to 127.0.0.1, and every
scenario stops after --seconds.

    .venv/bin/python bench/sim_capacity.py [--seconds 5] [--connections 32] [--pipeline 4] [--tokens 32]
        [--timing-streams 50 200 500]

A second table runs the sim with TTFT 50 ms / ITL 10 ms and `--record`, drives N concurrent
streams, and reports how late tokens left the sim relative to their absolute deadlines.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time

from llmd.proc import Cmd, Runner, stop_process

END_CHUNKED = b"\r\n0\r\n\r\n"


def request_bytes(path: str, body: dict) -> bytes:
    data = json.dumps(body).encode()
    return (f"POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
            f"content-length: {len(data)}\r\n\r\n").encode() + data


class Client(asyncio.Protocol):
    """Keeps `depth` requests outstanding on one connection and counts complete responses."""

    def __init__(self, req: bytes, depth: int, counter: dict) -> None:
        self.req = req
        self.depth = depth
        self.counter = counter
        self.buf = b""
        self.transport = None

    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.write(self.req * self.depth)

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        done = 0
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                break
            head = buf[:end]
            if b"transfer-encoding: chunked" in head:
                stop = buf.find(END_CHUNKED, end)
                if stop < 0:
                    break
                nxt = stop + len(END_CHUNKED)
                self.counter["tokens"] += buf.count(b'"content":"', end, nxt) + buf.count(b'"text":"', end, nxt)
            else:
                i = head.find(b"content-length: ")
                length = int(head[i + 16:head.find(b"\r\n", i)])
                nxt = end + 4 + length
                if len(buf) < nxt:
                    break
            if not head.startswith(b"HTTP/1.1 200"):
                self.counter["errors"] += 1
            done += 1
            buf = buf[nxt:]
        self.buf = buf
        if done:
            self.counter["responses"] += done
            if not self.counter["stop"]:
                self.transport.write(self.req * done)

    def connection_lost(self, exc) -> None:
        self.counter["lost"] += 1


async def drive(url: str, req: bytes, *, connections: int, depth: int, warmup: float, seconds: float) -> dict:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    loop = asyncio.get_running_loop()
    counter = {"responses": 0, "tokens": 0, "errors": 0, "lost": 0, "stop": False}
    transports = []
    for _ in range(connections):
        tr, _ = await loop.create_connection(lambda: Client(req, depth, counter), host, int(port))
        transports.append(tr)
    await asyncio.sleep(warmup)
    r0, t0, c0 = counter["responses"], counter["tokens"], time.perf_counter()
    await asyncio.sleep(seconds)
    r1, t1, c1 = counter["responses"], counter["tokens"], time.perf_counter()
    counter["stop"] = True
    for tr in transports:
        tr.close()
    return {"req_s": (r1 - r0) / (c1 - c0), "tok_s": (t1 - t0) / (c1 - c0), "errors": counter["errors"]}


async def drive_closed_loop(url: str, req: bytes, *, concurrency: int, seconds: float) -> int:
    """`concurrency` connections, one request in flight each, for `seconds`; returns responses."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    loop = asyncio.get_running_loop()
    counter = {"responses": 0, "tokens": 0, "errors": 0, "lost": 0, "stop": False}
    transports = []
    for _ in range(concurrency):
        tr, _ = await loop.create_connection(lambda: Client(req, 1, counter), host, int(port))
        transports.append(tr)
    await asyncio.sleep(seconds)
    counter["stop"] = True
    await asyncio.sleep(1.0)  # let in-flight streams finish so their records are complete
    for tr in transports:
        tr.close()
    return counter["responses"]


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def timing_accuracy(args, pin: bool, new_loop, record_dir: str) -> None:
    """TTFT 50 ms / ITL 10 ms: how late each token leaves the sim vs its ideal deadline, from --record."""
    print(f"\ntiming accuracy (TTFT 50ms, ITL 10ms, {args.tokens} tokens, closed loop {args.seconds}s; "
          "lateness = token write time - (recv + TTFT + k*ITL))")
    print(f"{'streams':>8}{'req/s':>9}{'tok/s':>10}{'ttft p50':>10}{'ttft p99':>10}{'late p50':>10}"
          f"{'late p99':>10}{'late max':>10}{'server CPU':>12}")
    msgs = [{"role": "user", "content": "Say something short about simulators."}]
    req = request_bytes("/v1/chat/completions", {"model": "random", "messages": msgs, "stream": True,
                                                  "max_tokens": args.tokens, "ignore_eos": True})
    for streams in args.timing_streams:
        rec = os.path.join(record_dir, f"rec-{streams}.jsonl")
        argv = (sys.executable, "-m", "llmd", "sim", "--port", "0", "--ttft", "50ms", "--itl", "10ms",
                "--max-num-seqs", "100000", "--record", rec)
        if pin:
            argv = ("taskset", "-c", "1", *argv)
        server = Runner().spawn(Cmd(argv, title="sim server (timing)"))
        try:
            url = server.stdout.readline().decode().strip()
            loop = new_loop()
            cpu0, wall0 = cpu_seconds(server.pid), time.perf_counter()
            n = loop.run_until_complete(drive_closed_loop(url, req, concurrency=streams, seconds=args.seconds))
            cpu = (cpu_seconds(server.pid) - cpu0) / (time.perf_counter() - wall0)
            loop.close()
        finally:
            stop_process(server)
        recs = [json.loads(line) for line in open(rec, encoding="utf-8")]
        recs = [r for r in recs if r["status"] == 200 and r["n_tokens"] == args.tokens]
        ttft = [(r["first_token_ns"] - r["recv_ns"]) / 1e6 for r in recs]
        late = [(t - r["recv_ns"]) / 1e6 - 50.0 - 10.0 * k for r in recs for k, t in enumerate(r["token_ns"])]
        print(f"{streams:>8}{n / args.seconds:>9.0f}{n * args.tokens / args.seconds:>10.0f}"
              f"{pct(ttft, 0.5):>9.1f}ms{pct(ttft, 0.99):>8.1f}ms{pct(late, 0.5):>8.2f}ms{pct(late, 0.99):>8.2f}ms"
              f"{max(late, default=float('nan')):>8.2f}ms{cpu:>11.0%}")


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=5.0, help="measured time per scenario")
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--pipeline", type=int, default=4, help="requests outstanding per connection")
    ap.add_argument("--tokens", type=int, default=32, help="output tokens per response")
    ap.add_argument("--no-taskset", action="store_true", help="do not pin the server to core 1")
    ap.add_argument("--timing-streams", type=int, nargs="*", default=[50, 200, 500],
                    help="concurrent streams for the timing-accuracy table (none: skip it)")
    args = ap.parse_args()

    pin = not args.no_taskset and shutil.which("taskset") is not None and (os.cpu_count() or 1) >= 2
    argv = (sys.executable, "-m", "llmd", "sim", "--port", "0", "--output-len", str(args.tokens))
    if pin:
        argv = ("taskset", "-c", "1", *argv)
        os.sched_setaffinity(0, {0})
    server = Runner().spawn(Cmd(argv, title="sim server"))
    try:
        url = server.stdout.readline().decode().strip()
        if not url.startswith("http://"):
            print(f"sim did not start: {url!r} {server.stderr.read().decode()}", file=sys.stderr)
            return 1
        msgs = [{"role": "user", "content": "Say something short about simulators."}]
        scenarios = [
            ("chat stream", request_bytes("/v1/chat/completions", {"model": "random", "messages": msgs,
                                                                    "stream": True, "max_tokens": args.tokens})),
            ("chat stream+usage", request_bytes("/v1/chat/completions", {
                "model": "random", "messages": msgs, "stream": True, "max_tokens": args.tokens,
                "stream_options": {"include_usage": True}})),
            ("completions stream", request_bytes("/v1/completions", {"model": "random", "prompt": "Hello sim",
                                                                      "stream": True, "max_tokens": args.tokens})),
            ("chat non-stream", request_bytes("/v1/chat/completions", {"model": "random", "messages": msgs,
                                                                        "max_tokens": args.tokens})),
        ]
        try:
            import uvloop

            new_loop = uvloop.new_event_loop
        except ImportError:
            new_loop = asyncio.new_event_loop
        print(f"sim {url}  server pinned to core 1: {pin}  connections={args.connections} "
              f"pipeline={args.pipeline} tokens={args.tokens} seconds={args.seconds}")
        print(f"{'scenario':<22}{'req/s':>10}{'tok/s':>12}{'server CPU':>12}{'errors':>8}")
        for name, req in scenarios:
            loop = new_loop()
            cpu0, wall0 = cpu_seconds(server.pid), time.perf_counter()
            res = loop.run_until_complete(drive(url, req, connections=args.connections, depth=args.pipeline,
                                                warmup=args.warmup, seconds=args.seconds))
            cpu = (cpu_seconds(server.pid) - cpu0) / (time.perf_counter() - wall0)
            loop.close()
            print(f"{name:<22}{res['req_s']:>10.0f}{res['tok_s']:>12.0f}{cpu:>11.0%}{res['errors']:>8}")
    finally:
        stop_process(server)
    if args.timing_streams:
        with tempfile.TemporaryDirectory() as tmp:
            timing_accuracy(args, pin, new_loop, tmp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
