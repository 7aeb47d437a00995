#!/usr/bin/env python3
"""TTFT/ITL accuracy of the llmd load engine against the sim's server-side ground truth.

The sim (TTFT 50 ms, ITL 10 ms, 128 tokens) runs pinned to core 1 with `--record`; the client runs pinned to
core 0 at concurrency 16 for --seconds (or --requests). Each client request is joined with the sim's record on
x-request-id: truth TTFT = first token write - request received (server clock = client clock, CLOCK_MONOTONIC).
Error = client TTFT - truth TTFT; ITL compares pooled gaps. A naive httpx client runs the same for context.

Usage: .venv/bin/python bench/perf_accuracy.py [--seconds 30] [--requests 2000] [--concurrency 16] [--no-httpx]
Prints a table and writes bench/results/perf_accuracy.json.
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
from pathlib import Path

from perf_common import Sim, pct, read_record, run_httpx, run_llmd, save


def truth(rec: dict) -> tuple[float, list[float]]:
    ttft = (rec["first_token_ns"] - rec["recv_ns"]) / 1e6
    toks = rec.get("token_ns") or []
    return ttft, [(b - a) / 1e6 for a, b in itertools.pairwise(toks)]


def compare(name: str, client: list[dict], record: dict[str, dict], client_gaps: list[float]) -> dict:
    errs, truth_gaps, send, recv = [], [], [], []
    for r in client:
        t = record.get(r["id"])
        if not t or not r.get("ok") or r.get("ttft_ms") is None or not t.get("first_token_ns"):
            continue
        ttft, gaps = truth(t)
        errs.append(r["ttft_ms"] - ttft)
        truth_gaps.extend(gaps)
        # the error splits into: request written -> sim parsed it (sim read delay), and first token written by
        # the sim -> first token timestamped by the client (client receive delay); one clock for both processes
        send.append((t["recv_ns"] - r["sent_ns"]) / 1e6)
        recv.append((r["sent_ns"] + r["ttft_ms"] * 1e6 - t["first_token_ns"]) / 1e6)
    return {"client": name, "joined": len(errs), "ttft_err_p50_ms": pct(errs, 50), "ttft_err_p99_ms": pct(errs, 99),
            "send_delay_p50_ms": pct(send, 50), "send_delay_p99_ms": pct(send, 99),
            "recv_delay_p50_ms": pct(recv, 50), "recv_delay_p99_ms": pct(recv, 99),
            "ttft_err_max_ms": max(errs, default=float("nan")), "itl_client_p50_ms": pct(client_gaps, 50),
            "itl_truth_p50_ms": pct(truth_gaps, 50), "itl_err_p50_ms": pct(client_gaps, 50) - pct(truth_gaps, 50)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--no-httpx", action="store_true")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="llmd-bench-") as tmp:
        for name in ("llmd", "httpx") if not args.no_httpx else ("llmd",):
            rec_path = str(Path(tmp) / f"{name}.jsonl")
            sim = Sim("--ttft", "50ms", "--itl", "10ms", record=rec_path)
            try:
                if name == "llmd":
                    res = run_llmd(sim.url, concurrency=args.concurrency, seconds=args.seconds,
                                   requests=args.requests, tokens=args.tokens)
                    client = res["records"]
                    gaps = res["itl_ms"]
                    extra = {"loop": res["summary"]["loop"], "client_cpu": res["summary"]["client"]["cpu_per_core_max"]}
                else:
                    res = run_httpx(sim.url, concurrency=args.concurrency, seconds=args.seconds,
                                    requests=args.requests, tokens=args.tokens)
                    client = res["records"]
                    gaps = [g for r in client if r["ok"] for g in r["gaps"]]
                    extra = {"loop": res["loop"], "client_cpu": res["cpu"]}
            finally:
                sim.stop()
            row = compare(name, client, read_record(rec_path), gaps)
            row.update(extra, pinned=sim.pinned)
            rows.append(row)
    print(f"accuracy: sim TTFT 50 ms / ITL 10 ms / {args.tokens} tokens, concurrency {args.concurrency}, "
          f"client core 0, sim core 1 (pinned: {rows[0]['pinned']})")
    print(f"{'client':<8}{'joined':>8}{'TTFT err p50':>14}{'p99':>9}{'max':>9}{'ITL p50':>10}{'truth':>8}"
          f"{'ITL err':>9}{'CPU':>6}{'sim read p50/p99':>18}{'client recv p50/p99':>21}")
    for r in rows:
        print(f"{r['client']:<8}{r['joined']:>8}{r['ttft_err_p50_ms']:>12.3f}ms{r['ttft_err_p99_ms']:>7.3f}ms"
              f"{r['ttft_err_max_ms']:>7.2f}ms{r['itl_client_p50_ms']:>8.3f}ms{r['itl_truth_p50_ms']:>7.3f}"
              f"{r['itl_err_p50_ms']:>8.3f}ms{r['client_cpu']:>6.0%}"
              f"{r['send_delay_p50_ms']:>9.3f}/{r['send_delay_p99_ms']:.3f}"
              f"{r['recv_delay_p50_ms']:>12.3f}/{r['recv_delay_p99_ms']:.3f}")
    print("TTFT error = sim read delay (request written -> sim parsed it; the sim's own event loop) + client receive "
          "delay (sim wrote the first token -> client timestamped it)")
    path = save("perf_accuracy", {"args": vars(args), "rows": rows})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
