"""Every knob of the simulator, Go-like duration parsing and fault specs.

Defaults follow llm-d-inference-sim v0.8.2 (`--max-num-seqs 5`, `--max-waiting-queue-length 1000`,
`--max-model-len 1024`, `--kv-cache-size 1024`, `--block-size 16`, all latencies 0, port 8000).
Durations are kept in seconds (float) internally.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from llmd.durations import parse_duration  # noqa: F401 - part of this module's API
from llmd.errors import ConfigError

# kind -> (what the optional =PARAM means, default param). Stream faults take "after N tokens";
# None as default means "half of the output".
FAULT_KINDS: dict[str, tuple[str, float | None]] = {
    "status": ("HTTP status code to answer (400, 404, 500, 503, ...)", None),
    "rate_limit": ("Retry-After seconds of the 429", 2),
    "context_length": ("(none) 400 with vLLM's context-length message", None),
    "error_frame": ("tokens before the error frame", None),
    "early_close": ("tokens before the connection is cut", None),
    "stall": ("tokens before the stream stops", None),
    "malformed_frame": ("tokens before the non-JSON data: line", None),
    "slow_ttft": ("TTFT multiplier (a zero TTFT counts as 100 ms)", 10),
    "html_200": ("(none) 200 with an HTML error page", None),
    "no_choices": ("(none) 200 JSON without choices", None),
    "crlf": ("(none) SSE with CRLF line endings", None),
    "split_frames": ("(none) each SSE frame split across two TCP writes", None),
}
FAULT_HELP = ", ".join(FAULT_KINDS)


@dataclass(frozen=True)
class FaultSpec:
    kind: str
    param: float | None = None
    rate: float = 1.0

    @property
    def number(self) -> float:
        """The parameter of a kind that always has one (status, rate_limit, slow_ttft: FAULT_KINDS defaults)."""
        assert self.param is not None, f"fault {self.kind} has no parameter"
        return self.param

    @classmethod
    def parse(cls, text: str, *, with_rate: bool = True) -> FaultSpec:
        """`KIND[=PARAM][:RATE]` ("status=503:0.1", "stall=3", "rate_limit:0.05")."""
        raw = text.strip()
        rate = 1.0
        if with_rate and ":" in raw:
            raw, _, rate_s = raw.rpartition(":")
            try:
                rate = float(rate_s)
            except ValueError:
                raise ConfigError(f"fault {text!r}: rate {rate_s!r} is not a number",
                                  hint="use KIND[=PARAM][:RATE] with RATE in (0, 1], e.g. status=503:0.1") from None
            if not 0 < rate <= 1:
                raise ConfigError(f"fault {text!r}: rate {rate} must be in (0, 1]")
        kind, _, param_s = raw.partition("=")
        kind = kind.strip().replace("-", "_")
        if kind not in FAULT_KINDS:
            raise ConfigError(f"unknown fault kind {kind!r} in {text!r}", hint=f"kinds: {FAULT_HELP}")
        param: float | None = FAULT_KINDS[kind][1]
        if param_s:
            try:
                param = float(param_s)
            except ValueError:
                raise ConfigError(f"fault {text!r}: parameter {param_s!r} is not a number",
                                  hint=f"{kind}=N: {FAULT_KINDS[kind][0]}") from None
            if param < 0:
                raise ConfigError(f"fault {text!r}: parameter must not be negative")
        if kind == "status":
            if param is None or not (param == int(param) and 400 <= param <= 599):
                raise ConfigError(f"fault {text!r}: status needs a 4xx/5xx code", hint="e.g. status=503")
        return cls(kind, param, rate)


@dataclass(frozen=True)
class SimConfig:
    """One simulated vLLM replica. `port=0` lets the kernel pick a free port."""

    host: str = "127.0.0.1"
    port: int = 8000
    model: str = "random"
    served_model_names: tuple[str, ...] = ()  # default: (model,)
    ttft: float = 0.0  # seconds; 0 -> prefill_overhead + prefill_per_token * uncached prompt tokens
    ttft_std: float = 0.0
    itl: float = 0.0
    itl_std: float = 0.0
    prefill_overhead: float = 0.0
    prefill_per_token: float = 0.0
    prefill_std: float = 0.0
    time_factor_under_load: float = 1.0
    output_len: int | None = None  # tokens per response when the request does not force max_tokens
    max_num_seqs: int = 5
    max_waiting: int = 1000
    max_model_len: int = 1024
    enable_kvcache: bool = False
    kv_cache_size: int = 1024  # blocks
    kv_wait: bool = False  # no room to pin a request's blocks: wait for releases (vLLM) instead of 500 (upstream sim)
    block_size: int = 16  # tokens per block
    hash_seed: str = ""
    faults: tuple[FaultSpec, ...] = ()
    warmup_404: int = 0
    warmup_503: int = 0
    record: str | None = None
    seed: int | None = None
    stall_cap: float = 30.0  # a stalled request gives up after this long if the client stays
    random_output_cap: int = 128  # random output length bound when the request sets no max_tokens

    @property
    def names(self) -> tuple[str, ...]:
        return self.served_model_names or (self.model,)

    def with_port(self, port: int) -> SimConfig:
        return replace(self, port=port)

    def validate(self) -> SimConfig:
        """Raise ConfigError (exit 2) naming each bad value, the rule and the fix."""
        errs: list[str] = []

        def need(ok: bool, msg: str) -> None:
            if not ok:
                errs.append(msg)

        need(0 <= self.port <= 65535, f"port {self.port} must be 0..65535 (0 = any free port)")
        need(bool(self.model.strip()), "model must not be empty")
        need(self.max_num_seqs >= 1, f"max-num-seqs {self.max_num_seqs} must be >= 1")
        need(self.max_waiting >= 0, f"max-waiting {self.max_waiting} must be >= 0")
        need(self.max_model_len >= 1, f"max-model-len {self.max_model_len} must be >= 1")
        need(self.output_len is None or self.output_len >= 1, f"output-len {self.output_len} must be >= 1")
        need(self.time_factor_under_load >= 1.0,
             f"time-factor-under-load {self.time_factor_under_load} must be >= 1.0")
        need(self.kv_cache_size >= 1, f"kv-cache-size {self.kv_cache_size} must be >= 1 block")
        need(self.block_size in (8, 16, 32, 64, 128), f"block-size {self.block_size} must be one of 8,16,32,64,128")
        need(self.warmup_404 >= 0 and self.warmup_503 >= 0, "warmup counts must be >= 0")
        need(self.stall_cap > 0, "stall cap must be > 0")
        for name, mean, std in (("ttft", self.ttft, self.ttft_std), ("itl", self.itl, self.itl_std),
                                ("prefill", self.prefill_overhead + self.prefill_per_token, self.prefill_std)):
            need(min(mean, std) >= 0, f"{name}: latencies must not be negative")
            need(std <= 0.3 * mean + 1e-12 or std == 0,
                 f"{name}-std {std * 1000:g}ms must be <= 30% of the mean ({mean * 1000:g}ms), as upstream enforces")
        total = sum(f.rate for f in self.faults)
        need(total <= 1.0 + 1e-9, f"fault rates add up to {total:g}; they are exclusive and must sum to <= 1")
        if errs:
            raise ConfigError("invalid simulator settings:\n  • " + "\n  • ".join(errs))
        return self
