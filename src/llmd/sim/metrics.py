"""Counters of one replica and their Prometheus text exposition (vLLM metric names).

Gauges carry `model_name`; prefix-cache counters are exported without a `_total` suffix, as
llm-d-inference-sim's Go client does (real vLLM adds `_total`).
"""

from __future__ import annotations

from bisect import bisect_left

TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
                20.0, 40.0, 80.0, 160.0, 640.0, 2560.0)
E2E_BUCKETS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0,
               480.0, 960.0, 1920.0, 7680.0)


class Histogram:
    __slots__ = ("bounds", "counts", "sum", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0
        self.total = 0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value
        self.total += 1

    def lines(self, name: str, labels: str) -> list[str]:
        out = [f"# TYPE {name} histogram"]
        acc = 0
        for bound, count in zip(self.bounds, self.counts, strict=False):
            acc += count
            out.append(f'{name}_bucket{{{labels},le="{bound}"}} {acc}')
        out.append(f'{name}_bucket{{{labels},le="+Inf"}} {self.total}')
        out.append(f"{name}_sum{{{labels}}} {self.sum}")
        out.append(f"{name}_count{{{labels}}} {self.total}")
        return out


class Stats:
    def __init__(self) -> None:
        self.prompt_tokens = 0
        self.generation_tokens = 0
        self.prefix_queries = 0
        self.prefix_hits = 0
        self.success: dict[str, int] = {}
        self.ttft = Histogram(TTFT_BUCKETS)
        self.e2e = Histogram(E2E_BUCKETS)
        self.queue = Histogram(E2E_BUCKETS)


def render(model: str, stats: Stats, *, running: int, waiting: int, kv_usage: float, block_size: int,
           num_gpu_blocks: int) -> bytes:
    lab = f'model_name="{model}"'
    out = [
        "# HELP vllm:num_requests_running Number of requests currently running on GPU.",
        "# TYPE vllm:num_requests_running gauge",
        f"vllm:num_requests_running{{{lab}}} {running}",
        "# HELP vllm:num_requests_waiting Number of requests waiting to be processed.",
        "# TYPE vllm:num_requests_waiting gauge",
        f"vllm:num_requests_waiting{{{lab}}} {waiting}",
        "# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.",
        "# TYPE vllm:kv_cache_usage_perc gauge",
        f"vllm:kv_cache_usage_perc{{{lab}}} {kv_usage}",
        "# HELP vllm:cache_config_info Information of the LLMEngine CacheConfig",
        "# TYPE vllm:cache_config_info gauge",
        f'vllm:cache_config_info{{block_size="{block_size}",num_gpu_blocks="{num_gpu_blocks}"}} 1',
        "# HELP vllm:lora_requests_info Running stats on lora requests.",
        "# TYPE vllm:lora_requests_info gauge",
        'vllm:lora_requests_info{max_lora="1",running_lora_adapters="",waiting_lora_adapters=""} 1',
        "# HELP vllm:prefix_cache_queries Prefix cache queries, in terms of number of queried tokens.",
        "# TYPE vllm:prefix_cache_queries counter",
        f"vllm:prefix_cache_queries{{{lab}}} {stats.prefix_queries}",
        "# HELP vllm:prefix_cache_hits Prefix cache hits, in terms of number of cached tokens.",
        "# TYPE vllm:prefix_cache_hits counter",
        f"vllm:prefix_cache_hits{{{lab}}} {stats.prefix_hits}",
        "# TYPE vllm:prompt_tokens_total counter",
        f"vllm:prompt_tokens_total{{{lab}}} {stats.prompt_tokens}",
        "# TYPE vllm:generation_tokens_total counter",
        f"vllm:generation_tokens_total{{{lab}}} {stats.generation_tokens}",
        "# TYPE vllm:request_success_total counter",
    ]
    out += [f'vllm:request_success_total{{{lab},finished_reason="{r}"}} {n}' for r, n in stats.success.items()]
    out += stats.ttft.lines("vllm:time_to_first_token_seconds", lab)
    out += stats.e2e.lines("vllm:e2e_request_latency_seconds", lab)
    out += stats.queue.lines("vllm:request_queue_time_seconds", lab)
    return ("\n".join(out) + "\n").encode()
