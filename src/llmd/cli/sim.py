"""`llmd sim`: run local OpenAI-compatible simulated replicas (an llm-d-inference-sim twin)."""

from __future__ import annotations

import signal
from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any, Optional, TypeVar

import typer

if TYPE_CHECKING:
    from llmd.sim.config import SimConfig

_T = TypeVar("_T")
Opt = Optional[_T]  # noqa: UP045  # typer needs Optional[...] (not X | None) on Python 3.10
LAT = "Latency"
KV = "KV cache"
FAULTS = "Faults"


def sim(
    ctx: typer.Context,
    *,
    host: Annotated[str, typer.Option(help="Address to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port of the first replica (0 = kernel picks; replicas use port+i)")] = 8000,
    model: Annotated[str, typer.Option(help="Model name served (response `model`, /v1/models)")] = "random",
    served_model_name: Annotated[Opt[list[str]], typer.Option(
        help="Names the model answers to, first one in metrics (repeatable; default: --model)")] = None,
    ttft: Annotated[str, typer.Option(
        "--ttft", "--time-to-first-token", help='Time to first token ("50ms"); 0 = use the prefill model',
        rich_help_panel=LAT)] = "0",
    ttft_std: Annotated[str, typer.Option(
        "--ttft-std", "--time-to-first-token-std-dev", help="TTFT standard deviation (<= 30% of TTFT)",
        rich_help_panel=LAT)] = "0",
    itl: Annotated[str, typer.Option(
        "--itl", "--inter-token-latency", help='Inter-token latency ("10ms")', rich_help_panel=LAT)] = "0",
    itl_std: Annotated[str, typer.Option(
        "--itl-std", "--inter-token-latency-std-dev", help="ITL standard deviation (<= 30% of ITL)",
        rich_help_panel=LAT)] = "0",
    prefill_overhead: Annotated[str, typer.Option(help="Fixed prefill time when --ttft is 0",
                                                  rich_help_panel=LAT)] = "0",
    prefill_per_token: Annotated[str, typer.Option(
        "--prefill-per-token", "--prefill-time-per-token", help='Prefill time per uncached prompt token ("0.3ms")',
        rich_help_panel=LAT)] = "0",
    time_factor_under_load: Annotated[float, typer.Option(
        help="Latency multiplier when all max-num-seqs slots run (linear from 1 at one request)",
        rich_help_panel=LAT)] = 1.0,
    output_len: Annotated[Opt[int], typer.Option(
        help="Tokens per response when the request does not set ignore_eos (default: random <= max_tokens)")] = None,
    max_num_seqs: Annotated[int, typer.Option(help="Concurrent sequences; more requests queue (FIFO)")] = 5,
    max_waiting: Annotated[int, typer.Option(
        "--max-waiting", "--max-waiting-queue-length", help="Waiting-queue length; beyond it requests get 429")] = 1000,
    max_model_len: Annotated[int, typer.Option(help="prompt + max_tokens above this -> 400 context length")] = 1024,
    enable_kvcache: Annotated[bool, typer.Option("--enable-kvcache", help="Simulate the prefix KV cache",
                                                 rich_help_panel=KV)] = False,
    kv_cache_size: Annotated[int, typer.Option(help="KV cache capacity in blocks", rich_help_panel=KV)] = 1024,
    kv_wait: Annotated[bool, typer.Option(
        "--kv-wait", help="A request whose blocks do not fit waits (counted as waiting) until running requests "
        "release theirs, as vLLM queues; default: HTTP 500, as llm-d-inference-sim", rich_help_panel=KV)] = False,
    block_size: Annotated[int, typer.Option(help="Tokens per KV block (8,16,32,64,128)", rich_help_panel=KV)] = 16,
    hash_seed: Annotated[str, typer.Option(help="Seed of the block hash chain", rich_help_panel=KV)] = "",
    replicas: Annotated[int, typer.Option(help="Number of replicas (independent servers)")] = 1,
    fault: Annotated[Opt[list[str]], typer.Option(
        help="KIND[=PARAM][:RATE], repeatable; kinds: status=CODE, rate_limit, context_length, error_frame, "
             "early_close, stall, malformed_frame, slow_ttft, html_200, no_choices, crlf, split_frames. "
             "A request header `x-llmd-fault: KIND[=PARAM]` forces one.", rich_help_panel=FAULTS)] = None,
    warmup_404: Annotated[int, typer.Option(help="First N /v1/models requests answer 404",
                                            rich_help_panel=FAULTS)] = 0,
    warmup_503: Annotated[int, typer.Option(help="Next N /v1/models requests answer 503 no healthy upstream",
                                            rich_help_panel=FAULTS)] = 0,
    stall_cap: Annotated[str, typer.Option(help="A stalled request closes after this long (bare number: seconds)",
                                           rich_help_panel=FAULTS)] = "30s",
    record: Annotated[Opt[str], typer.Option(help="Write one JSON line per request (timings) to FILE at exit")] = None,
    seed: Annotated[Opt[int], typer.Option(help="Seed for output lengths, text, sampled latencies, faults")] = None,
    duration: Annotated[Opt[str], typer.Option(
        help='Stop by itself after this long ("2" or "2s"; a bare number is seconds)')] = None,
) -> None:
    """Serve /v1/models, /v1/chat/completions, /v1/completions, /health and /metrics locally.

    Prints one URL per replica on stdout once listening. Durations are Go-like ("50ms", "1.5s", "250us");
    a bare number is milliseconds for latencies (as upstream) and seconds for --duration and --stall-cap.
    Stops on Ctrl-C (exit 0), SIGTERM (exit 143) or after --duration (exit 0).
    """
    import asyncio

    from llmd.loadgen.loop import new_event_loop
    from llmd.sim.server import replica_configs, serve

    ui = ctx.obj.ui()
    cfg, seconds = build_config(ctx.params)

    def ready(servers) -> None:
        ui.data("".join(f"{s.url}\n" for s in servers))
        ui.info(f"llmd sim: {len(servers)} replica(s) of {cfg.model!r} listening; Ctrl-C stops")

    loop = new_event_loop()
    try:
        signum = loop.run_until_complete(serve(replica_configs(cfg, replicas), duration=seconds, on_ready=ready))
    finally:
        loop.close()
        asyncio.set_event_loop(None)
    if record:
        ui.info(f"records written to {record}")
    if signum == signal.SIGTERM:  # Ctrl-C is the normal way to stop a simulator: exit 0
        from llmd.errors import ExitCode

        raise typer.Exit(ExitCode.for_signal(signum))


def build_config(p: Mapping[str, Any]) -> tuple[SimConfig, float | None]:
    """The simulator's config and --duration (seconds) from the parsed options of `llmd sim` (keyed by parameter
    name, as click gives them): every value checked here, also for the local platform's replica flags."""
    from llmd.errors import ConfigError
    from llmd.sim.config import FaultSpec, SimConfig, parse_duration

    if p["replicas"] < 1:
        raise ConfigError(f"--replicas {p['replicas']} must be >= 1")
    cfg = SimConfig(
        host=p["host"], port=p["port"], model=p["model"], served_model_names=tuple(p["served_model_name"] or ()),
        ttft=parse_duration(p["ttft"], name="--ttft"), ttft_std=parse_duration(p["ttft_std"], name="--ttft-std"),
        itl=parse_duration(p["itl"], name="--itl"), itl_std=parse_duration(p["itl_std"], name="--itl-std"),
        prefill_overhead=parse_duration(p["prefill_overhead"], name="--prefill-overhead"),
        prefill_per_token=parse_duration(p["prefill_per_token"], name="--prefill-per-token"),
        time_factor_under_load=p["time_factor_under_load"], output_len=p["output_len"],
        max_num_seqs=p["max_num_seqs"], max_waiting=p["max_waiting"], max_model_len=p["max_model_len"],
        enable_kvcache=p["enable_kvcache"], kv_cache_size=p["kv_cache_size"], kv_wait=p["kv_wait"],
        block_size=p["block_size"], hash_seed=p["hash_seed"],
        faults=tuple(FaultSpec.parse(f) for f in p["fault"] or ()), warmup_404=p["warmup_404"],
        warmup_503=p["warmup_503"], record=p["record"], seed=p["seed"],
        stall_cap=parse_duration(p["stall_cap"], name="--stall-cap", bare_unit=1.0),
    ).validate()
    if cfg.port and cfg.port + p["replicas"] - 1 > 65535:
        raise ConfigError(f"--port {p['port']} with --replicas {p['replicas']} runs past port 65535")
    duration = p["duration"]
    return cfg, parse_duration(duration, name="--duration", bare_unit=1.0) if duration else None
