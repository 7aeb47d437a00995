#!/usr/bin/env python3
"""Capacity of the llmd load engine: zero-delay sim, 32 tokens, closed loop at concurrency 64.

The sim runs pinned to core 1, the client to core 0 (one core). Reports req/s, TTFT p99, client CPU and whether
the sim (server CPU near 100%) was the limit. Runs a naive httpx client the same way for context, and with
--workers N also the multi-process mode (then the client is not confined to one core).

Usage: .venv/bin/python bench/perf_capacity.py [--seconds 12] [--concurrency 64] [--tokens 32] [--workers 2]
Prints a table and writes bench/results/perf_capacity.json.
"""

from __future__ import annotations

import argparse
import time

from perf_common import Sim, run_httpx, run_llmd, save


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=12.0)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--requests", type=int, default=200_000)
    ap.add_argument("--workers", type=int, default=0, help="also run the multi-process mode with N workers")
    ap.add_argument("--no-httpx", action="store_true")
    args = ap.parse_args()
    rows = []
    clients = ["llmd"] + ([f"llmd --workers {args.workers}"] if args.workers > 1 else []) + (
        [] if args.no_httpx else ["httpx (naive)"])
    for name in clients:
        sim = Sim("--output-len", str(args.tokens))
        try:
            cpu0, t0 = sim.cpu_seconds(), time.perf_counter()
            if name.startswith("llmd"):
                res = run_llmd(sim.url, concurrency=args.concurrency, seconds=args.seconds, requests=args.requests,
                               tokens=args.tokens, warmup=1.0, workers=args.workers if "workers" in name else 1)
                s = res["summary"]
                row = {"client": name, "req_s": s["throughput"]["request_rate"], "ttft_p99_ms": s["ttft_ms"]["p99"],
                       "ttft_p50_ms": s["ttft_ms"]["p50"], "ok": s["requests"]["ok"], "failed": s["requests"]["failed"],
                       "client_cpu": s["client"]["cpu_per_core_max"], "loop": s["loop"],
                       "loop_lag_p99_ms": s["client"]["loop_lag_p99_ms"]}
            else:
                res = run_httpx(sim.url, concurrency=args.concurrency, seconds=args.seconds, requests=args.requests,
                                tokens=args.tokens)
                ok = [r for r in res["records"] if r["ok"]]
                row = {"client": name, "req_s": res["req_s"], "ttft_p99_ms": res["ttft_p99"], "ttft_p50_ms": None,
                       "ok": len(ok), "failed": len(res["records"]) - len(ok), "client_cpu": res["cpu"],
                       "loop": res["loop"], "loop_lag_p99_ms": None}
            row["server_cpu"] = (sim.cpu_seconds() - cpu0) / (time.perf_counter() - t0)
        finally:
            sim.stop()
        row["pinned"] = sim.pinned
        rows.append(row)
    print(f"capacity: zero-delay sim, {args.tokens} tokens, concurrency {args.concurrency}, {args.seconds:g} s; "
          f"client core 0, sim core 1 (pinned: {rows[0]['pinned']})")
    print(f"{'client':<20}{'req/s':>9}{'TTFT p50':>10}{'p99':>9}{'ok':>8}{'failed':>7}{'client CPU':>11}"
          f"{'sim CPU':>9}  loop")
    for r in rows:
        p50 = "-" if r["ttft_p50_ms"] is None else f"{r['ttft_p50_ms']:.2f}"
        print(f"{r['client']:<20}{r['req_s']:>9.0f}{p50:>10}{r['ttft_p99_ms']:>9.2f}{r['ok']:>8}{r['failed']:>7}"
              f"{r['client_cpu']:>11.0%}{r['server_cpu']:>9.0%}  {r['loop']}")
    path = save("perf_capacity", {"args": vars(args), "rows": rows})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
