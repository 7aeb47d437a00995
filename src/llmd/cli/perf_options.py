"""`@perf_options`: adds every perf flag to a command and passes one validated `perf_opts: PerfOptions`.

Imports stay light (no load engine) so that `llmd --version` and `--help` are fast; PerfOptions is imported
when the command runs. Invalid values raise ConfigError (exit 2) before any socket opens (F10).
"""
# The IDs cited here (rule N, F##) are defined in docs/behaviours.md.

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Annotated, Any, Optional

import typer

from llmd.cli import complete

GROUP = "Perf test (with --perf)"

# (PerfOptions field, flags, type, help). Everything defaults to None: PerfOptions holds the defaults.
_PERF_FLAGS: list[tuple[str, tuple[str, ...], Any, str]] = [
    ("concurrency", ("--concurrency",), int, "Closed loop: N requests in flight (default 1)"),
    ("rate", ("--rate",), float, "Open loop: arrivals per second"),
    ("arrival", ("--arrival",), str, "Open-loop arrivals: constant|poisson (seeded)"),
    ("sweep", ("--sweep",), str, "One stage per value: 1,4,16 (concurrencies; rates with --rate) or c=.. / rate=.."),
    ("requests", ("--requests",), int, "Measured requests per stage (warm-up excluded)"),
    ("duration", ("--duration",), str, "Measured time per stage: 30s, 2m (default 30s when --requests is absent)"),
    ("warmup", ("--warmup",), str, "Warm-up time per stage, excluded from statistics (default 0)"),
    ("workload", ("--workload",), str, "synthetic|shared-prefix|file (default synthetic)"),
    ("input_tokens", ("--input-tokens",), int, "Synthetic prompt length in tokens (default 256)"),
    ("output_tokens", ("--output-tokens",), int, "max_tokens per request (default 128; file: dataset's)"),
    ("dist", ("--dist",), str, "Length distribution: fixed|uniform|normal|lognormal (default fixed)"),
    ("dist_spread", ("--dist-spread",), float, "Relative spread of --dist (default 0.25)"),
    ("seed", ("--seed",), int, "Seed of prompts, lengths and Poisson arrivals (default 0)"),
    ("groups", ("--groups",), int, "shared-prefix: number of groups (default 8; --platform local: 48)"),
    ("prompts_per_group", ("--prompts-per-group",), int, "shared-prefix: prompts per group (default 16)"),
    ("system_prompt_len", ("--system-prompt-len",), int,
     "shared-prefix: shared prefix tokens (default 512; --platform local: 1024)"),
    ("question_len", ("--question-len",), int, "shared-prefix: question tokens (default 64)"),
    ("dataset", ("--dataset",), str, "file: JSONL of prompts/messages or a ShareGPT JSON file"),
    ("api", ("--api",), str, "chat|completions (default chat)"),
    ("slo", ("--slo",), str, "Per-request limits for goodput, e.g. ttft=200ms,tpot=50ms,e2e=10s,attainment=0.95"),
    ("max_error_rate", ("--max-error-rate",), float, "Failed share above which the run exits 8 (default 0.01)"),
    ("output", ("--report-file",), str, "Write the JSON report here (default: state dir; was -o/--output)"),
    ("csv", ("--csv",), str, "Write per-request records as CSV"),
    ("benchmark_report", ("--benchmark-report",), str,
     "Also write llm-d Benchmark Report v0.2 JSON (one file per stage)"),
    ("request_timeout", ("--request-timeout",), str, "Total deadline per request (default 300s)"),
    ("stall_timeout", ("--stall-timeout",), str, "No bytes for this long = stalled (default 30s)"),
    ("max_inflight", ("--max-inflight",), int, "Open loop: cap of requests in flight (default 1000)"),
    ("workers", ("--workers",), int, "Load-generator processes (default 1)"),
]


def _choices(name: str) -> Callable[[str], list[str]]:
    """<TAB> choices: the lists PerfOptions validates against, imported only when the shell asks."""
    def values() -> tuple[str, ...]:
        from llmd.loadgen import options

        return tuple(getattr(options, name))

    return complete.fixed(values)


_COMPLETIONS = {"workload": _choices("WORKLOADS"), "arrival": _choices("ARRIVALS"), "dist": _choices("DISTS"),
                "api": _choices("APIS")}
_SECONDS = ("duration", "warmup", "request_timeout", "stall_timeout")


def perf_epilog() -> str:
    """Metric definitions for --help (the same dict is stored in every report)."""
    from llmd.loadgen.metrics import METRICS

    return "Perf metrics: " + " ".join(f"{k}: {v}" for k, v in METRICS.items())


def build_perf_options(values: dict[str, Any], defaults: dict[str, dict[str, Any]] | None = None):
    """Flag values (None = not given) -> validated PerfOptions; ConfigError (exit 2) on bad input. `defaults`: per
    workload, values for the flags not given (Platform.perf_defaults); a given flag always wins."""
    from llmd.loadgen.options import PerfOptions, parse_seconds

    given = {k: v for k, v in values.items() if v is not None}
    for key, value in (defaults or {}).get(given.get("workload", "synthetic"), {}).items():
        given.setdefault(key, value)
    for key in _SECONDS:
        if key in given:
            given[key] = parse_seconds(given[key], "--" + key.replace("_", "-"))
    return PerfOptions(**given).validate()


def perf_options(fn: Callable) -> Callable:
    """Decorate a command: it receives `perf_values` (flag values, None = not given) and validates them with
    `build_perf_options` itself, inside its own error handling: a bad perf value is an outcome that the
    --json document must report, so it cannot be raised before the command runs."""
    sig = inspect.signature(fn)
    extra = []
    for field, decls, typ, text in _PERF_FLAGS:
        opt = typer.Option(*decls, help=text, rich_help_panel=GROUP, show_default=False,
                           autocompletion=_COMPLETIONS.get(field))
        extra.append(inspect.Parameter(f"perf_{field}", inspect.Parameter.KEYWORD_ONLY, default=None,
                                       annotation=Annotated[Optional[typ], opt]))  # noqa: UP045
    own = [p for name, p in sig.parameters.items() if name != "perf_values"]

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        values = {f: kwargs.pop(f"perf_{f}") for f, *_ in _PERF_FLAGS}
        return fn(*args, perf_values=values, **kwargs)

    wrapper.__signature__ = sig.replace(parameters=own + extra)  # type: ignore[attr-defined]
    return wrapper
