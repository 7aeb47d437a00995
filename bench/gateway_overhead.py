"""What the local scheduling gateway adds per request, and how many requests/s it carries on one core.

    .venv/bin/python bench/gateway_overhead.py [--seconds 8] [--concurrency 16]

1. Latency: one `llmd sim` replica with a fixed 20 ms TTFT and 2 ms ITL, streamed at concurrency 16, hit directly
   and through `python -m llmd.gateway` running the default profile (queue 2 / kv-cache-utilization 2 /
   prefix-cache 3, scraping every 50 ms). Added TTFT p50/p99 = through the gateway minus direct.
2. Capacity: a zero-latency replica at concurrency 64 through the gateway; req/s achieved, and requests per CPU second
   of the gateway process (its /proc CPU time), i.e. what one core carries.
The llmd load engine drives both (bench/perf_common.py). Traffic only to 127.0.0.1; every run bounded in time.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from perf_common import Sim, can_pin, pct, run_llmd, save, start_listening

from llmd.loadgen import workloads
from llmd.proc import stop_process
from llmd.render.epp import epp_config


class Gateway:
    def __init__(self, replica: str, pin: bool) -> None:
        self.cfg = Path(tempfile.mkdtemp()) / "epp.json"
        self.cfg.write_text(json.dumps(epp_config("default")), encoding="utf-8")
        argv: tuple[str, ...] = (sys.executable, "-m", "llmd.gateway", "--config", str(self.cfg), "--replica",
                                 replica, "--profile", "default")
        if pin and can_pin():
            argv = ("taskset", "-c", "1", *argv)
        self.proc, self.url = start_listening(argv, "gateway (bench)")

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        stop_process(self.proc, grace_int=2.0, grace_term=1.0)


def ttft(run: dict) -> list[float]:
    return [r["ttft_ms"] for r in run["records"] if r["ok"] and r["ttft_ms"] is not None]


def added(direct: dict, via: dict) -> dict:
    d, g = ttft(direct), ttft(via)
    return {
        "direct_ttft_ms": {"p50": pct(d, 50), "p99": pct(d, 99), "n": len(d)},
        "gateway_ttft_ms": {"p50": pct(g, 50), "p99": pct(g, 99), "n": len(g)},
        "added_ttft_ms": {"p50": pct(g, 50) - pct(d, 50), "p99": pct(g, 99) - pct(d, 99)},
        "failed": {"direct": direct["summary"]["requests"]["failed"], "gateway": via["summary"]["requests"]["failed"]},
    }


def direct_vs_gateway(sim_args: tuple[str, ...], kw: dict) -> dict:
    """One replica under the same load twice, directly and through the gateway: what the gateway adds."""
    sim = Sim(*sim_args, pin=False)
    try:
        gw = Gateway(sim.url, pin=False)
        try:
            direct = run_llmd(sim.url, **kw)
            via = run_llmd(gw.url, **kw)
        finally:
            gw.stop()
    finally:
        sim.stop()
    return added(direct, via)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--concurrency", type=int, default=16)
    args = ap.parse_args()
    out: dict = {"concurrency": args.concurrency, "seconds": args.seconds, "pinned": can_pin()}

    kw = {"concurrency": args.concurrency, "seconds": args.seconds, "requests": 1_000_000, "tokens": 16}
    out["latency"] = direct_vs_gateway(("--ttft", "20ms", "--itl", "2ms", "--output-len", "16"), kw)
    # the same with 1088-token shared-prefix chat prompts: the prefix scorer hashes ~70 blocks per request
    long_kw = {**kw, "workload": workloads.shared_prefix(
        api="chat", model="random", groups=16, prompts_per_group=64, system_prompt_len=1024, question_len=64,
        output_tokens=16)}
    out["latency_long_prompts"] = direct_vs_gateway(
        ("--ttft", "20ms", "--itl", "2ms", "--output-len", "16", "--max-model-len", "4096"), long_kw)

    sim = Sim(pin=False)  # zero latency: the gateway is what is measured
    gw = Gateway(sim.url, pin=True)
    try:
        cpu0 = gw.cpu_seconds()
        cap = run_llmd(gw.url, concurrency=64, seconds=args.seconds, requests=1_000_000, tokens=8, warmup=0.0)
        cpu = gw.cpu_seconds() - cpu0
    finally:
        gw.stop()
        sim.stop()
    ok = cap["summary"]["requests"]["ok"]
    window = cap["summary"]["window_s"]
    out["capacity"] = {"req_s": round(ok / window, 1), "gateway_cpu_s": round(cpu, 2),
                       "gateway_cpu_share": round(cpu / window, 3),
                       "req_per_gateway_cpu_s": round(ok / cpu, 1) if cpu else None,
                       "failed": cap["summary"]["requests"]["failed"]}
    path = save("gateway_overhead", out)
    for key, what in (("latency", "16-token prompts"), ("latency_long_prompts", "1088-token shared-prefix prompts")):
        lat = out[key]
        print(f"{what}: TTFT p50 direct {lat['direct_ttft_ms']['p50']:.2f} ms, via gateway "
              f"{lat['gateway_ttft_ms']['p50']:.2f} ms: +{lat['added_ttft_ms']['p50']:.2f} ms "
              f"(p99 +{lat['added_ttft_ms']['p99']:.2f} ms) at c={args.concurrency}")
    capd = out["capacity"]
    print(f"capacity: {capd['req_s']} req/s through the gateway at {capd['gateway_cpu_share']:.0%} of a core; "
          f"{capd['req_per_gateway_cpu_s']} requests per gateway CPU second")
    print(f"results: {path}")


if __name__ == "__main__":
    main()
