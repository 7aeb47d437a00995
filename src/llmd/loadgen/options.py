"""PerfOptions: every knob of a perf run, validated before any socket opens (F10 -> ConfigError, exit 2)."""
# The IDs cited here (rule N, F##) are defined in docs/behaviours.md.

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from llmd.durations import parse_duration
from llmd.errors import ConfigError
from llmd.loadgen.engine import Stage
from llmd.loadgen.metrics import parse_slo
from llmd.paths import file_problem

WORKLOADS = ("synthetic", "shared-prefix", "file")
APIS = ("chat", "completions")
DISTS = ("fixed", "uniform", "normal", "lognormal")
ARRIVALS = ("constant", "poisson")
API_PATHS = {"chat": "/v1/chat/completions", "completions": "/v1/completions"}
DEFAULT_DURATION_S = 30.0

def parse_seconds(value: str | float | int | None, flag: str) -> float | None:
    """'30', '30s', '500ms', '2m' -> seconds. A bare number is seconds."""
    if value is None:
        return None
    return parse_duration(value, name=flag, bare_unit=1.0)


@dataclass(frozen=True)
class PerfOptions:
    concurrency: int | None = None
    rate: float | None = None
    arrival: str = "constant"
    sweep: str | None = None  # "1,4,16" (concurrencies, or rates with --rate), "c=1,4" or "rate=2,5"
    requests: int | None = None
    duration: float | None = None  # seconds
    warmup: float = 0.0  # seconds per stage
    workload: str = "synthetic"
    input_tokens: int = 256
    output_tokens: int | None = None  # default 128; file workloads default to the dataset's lengths
    dist: str = "fixed"
    dist_spread: float = 0.25
    seed: int = 0
    groups: int = 8
    prompts_per_group: int = 16
    system_prompt_len: int = 512
    question_len: int = 64
    dataset: str | None = None
    api: str = "chat"
    model: str | None = None  # set by the caller from Settings.model; else asked from /v1/models
    ignore_eos: bool = True
    slo: str | None = None
    max_error_rate: float = 0.01
    output: str | None = None
    csv: str | None = None
    benchmark_report: str | None = None  # llm-d Benchmark Report v0.2 JSON (one per stage)
    request_timeout: float = 300.0  # total deadline per request
    stall_timeout: float = 30.0  # no bytes for this long = stalled
    connect_timeout: float = 10.0
    max_inflight: int = 1000
    workers: int = 1
    live: bool = True
    extra: dict = field(default_factory=dict)

    @property
    def out_tokens(self) -> int:
        return self.output_tokens or 128

    @property
    def api_path(self) -> str:
        return API_PATHS[self.api]

    def slo_limits(self) -> dict[str, float]:
        return parse_slo(self.slo)

    def validate(self) -> PerfOptions:
        """Raise ConfigError naming the flag, the rule and the fix; return self for chaining."""
        def need(cond: bool, msg: str, hint: str) -> None:
            if not cond:
                raise ConfigError(msg, hint)

        need(self.api in APIS, f"--api {self.api!r} is not supported", "use chat or completions")
        need(self.workload in WORKLOADS, f"--workload {self.workload!r} is unknown", "use " + ", ".join(WORKLOADS))
        need(self.dist in DISTS, f"--dist {self.dist!r} is unknown", "use " + ", ".join(DISTS))
        need(self.arrival in ARRIVALS, f"--arrival {self.arrival!r} is unknown", "use constant or poisson")
        need(self.concurrency is None or self.concurrency >= 1,
             f"--concurrency {self.concurrency} is out of range", "use an integer >= 1, e.g. --concurrency 8")
        need(self.rate is None or (self.rate > 0 and math.isfinite(self.rate)),
             f"--rate {self.rate} is out of range", "use requests per second > 0, e.g. --rate 5")
        need(not (self.concurrency is not None and self.rate is not None),
             "--concurrency and --rate are exclusive", "closed loop: --concurrency N; open loop: --rate R")
        need(self.requests is None or self.requests >= 1,
             f"--requests {self.requests} is out of range", "use an integer >= 1")
        need(self.duration is None or (self.duration > 0 and math.isfinite(self.duration)),
             f"--duration {self.duration:g} s is out of range" if self.duration is not None else "",
             "use a positive duration, e.g. --duration 30s")
        need(self.warmup >= 0 and math.isfinite(self.warmup), f"--warmup {self.warmup:g} s must not be negative",
             "use 0 (no warm-up) or a duration such as 5s")
        for flag, v in (("--input-tokens", self.input_tokens), ("--groups", self.groups),
                        ("--prompts-per-group", self.prompts_per_group),
                        ("--system-prompt-len", self.system_prompt_len),
                        ("--question-len", self.question_len), ("--workers", self.workers),
                        ("--max-inflight", self.max_inflight)):
            need(isinstance(v, int) and v >= 1, f"{flag} {v} is out of range", f"use an integer >= 1 for {flag}")
        need(self.output_tokens is None or self.output_tokens >= 1,
             f"--output-tokens {self.output_tokens} is out of range", "use an integer >= 1")
        need(0 <= self.dist_spread < 1, f"--dist-spread {self.dist_spread} is out of range", "use a fraction in [0, 1)")
        need(0 <= self.max_error_rate <= 1, f"--max-error-rate {self.max_error_rate} is out of range",
             "use a fraction in [0, 1], e.g. 0.01 for 1%")
        for flag, seconds in (("--request-timeout", self.request_timeout), ("--stall-timeout", self.stall_timeout)):
            need(seconds > 0 and math.isfinite(seconds), f"{flag} {seconds:g} s is out of range",
                 f"use a positive duration for {flag}")
        if self.workload == "file":
            need(bool(self.dataset), "--workload file needs --dataset FILE", "give a JSONL or ShareGPT JSON file")
            need(Path(self.dataset or "").is_file(), f"--dataset {self.dataset} does not exist", "check the path")
        elif self.dataset:
            raise ConfigError(f"--dataset is only used with --workload file (got --workload {self.workload})",
                              "add --workload file or drop --dataset")
        for flag, path in (("--report-file", self.output), ("--csv", self.csv),
                           ("--benchmark-report", self.benchmark_report)):
            if path:
                parent = Path(path).expanduser().resolve().parent
                need(parent.is_dir(), f"{flag} {path}: directory {parent} does not exist",
                     "create it or pick another path")
                problem = file_problem(Path(path))
                need(problem is None, f"{flag} {path}: {problem}", "pick a writable file path")
        need(not (self.sweep and self.concurrency is not None), "--concurrency and --sweep are exclusive",
             "the sweep sets each stage's concurrency: drop --concurrency, e.g. --sweep 1,4,16")
        self.slo_limits()
        stages = self.stages()
        need(self.rate is None or all(s.mode == "open" for s in stages), "--rate and --sweep c=... are exclusive",
             "sweep rates with --sweep rate=1,2,5, or concurrencies without --rate")
        need(self.arrival == "constant" or any(s.mode == "open" for s in stages),
             f"--arrival {self.arrival} needs an open loop", "add --rate R (or --sweep rate=...), or drop --arrival")
        return self

    def check_model_len(self, max_model_len: int | None) -> None:
        """F10: prompt + max_tokens must fit the served --max-model-len (else every request is a 400)."""
        if not max_model_len or self.workload == "file":
            return
        prompt = self.system_prompt_len + self.question_len if self.workload == "shared-prefix" else self.input_tokens
        longest = round(prompt * (1 + self.dist_spread)) if self.dist == "uniform" else prompt
        if self.out_tokens >= max_model_len or longest + self.out_tokens > max_model_len:
            raise ConfigError(
                f"prompt ({longest} tokens) + --output-tokens {self.out_tokens} exceed max_model_len {max_model_len}",
                "lower --input-tokens/--system-prompt-len/--output-tokens or deploy with a larger --max-model-len")

    def _sweep_values(self) -> tuple[str, list[float]]:
        text = (self.sweep or "").strip()
        kind = "rate" if self.rate is not None else "c"
        if "=" in text:
            kind, _, text = text.partition("=")
            kind = kind.strip().lower()
            if kind not in ("c", "concurrency", "rate"):
                raise ConfigError(f"--sweep {self.sweep!r}: unknown kind {kind!r}", "use c=1,4,16 or rate=1,2,5")
            kind = "c" if kind == "concurrency" else kind
        try:
            values = [float(v) for v in text.split(",") if v.strip()]
        except ValueError:
            values = []
        if not values or any(v <= 0 or not math.isfinite(v) for v in values):
            raise ConfigError(f"--sweep {self.sweep!r} is not a list of positive numbers",
                              "use e.g. --sweep 1,4,16 (concurrencies) or --sweep rate=1,2,5")
        if kind == "c" and any(v != int(v) for v in values):
            raise ConfigError(f"--sweep {self.sweep!r}: concurrencies must be integers", "use e.g. --sweep 1,4,16")
        dup = next((v for i, v in enumerate(values) if v in values[:i]), None)
        if dup is not None:  # each value names its stage: records and --benchmark-report files would collide
            raise ConfigError(f"--sweep {self.sweep!r} repeats {dup:g}", "list each value once, e.g. --sweep 1,4,16")
        return kind, values

    def stages(self) -> list[Stage]:
        """One stage per sweep value, else one stage; each bounded by --requests and/or --duration."""
        duration = self.duration
        if duration is None and self.requests is None:
            duration = DEFAULT_DURATION_S

        def closed(c: int) -> Stage:
            return Stage(f"c{c}", "closed", concurrency=c, requests=self.requests, duration_s=duration,
                         warmup_s=self.warmup, arrival=self.arrival, max_inflight=self.max_inflight)

        def open_loop(rate: float) -> Stage:
            return Stage(f"r{rate:g}", "open", rate=rate, requests=self.requests, duration_s=duration,
                         warmup_s=self.warmup, arrival=self.arrival, max_inflight=self.max_inflight)

        if self.sweep:
            kind, values = self._sweep_values()
            if kind == "c":
                return [closed(int(v)) for v in values]
            return [open_loop(v) for v in values]
        if self.rate is not None:
            return [open_loop(self.rate)]
        return [closed(self.concurrency or 1)]

    def with_model(self, model: str | None) -> PerfOptions:
        return replace(self, model=model) if model and not self.model else self

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("extra", None)
        d["stages"] = [s.label() for s in self.stages()]
        return d
