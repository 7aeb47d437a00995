"""Pure parts of the simulator: durations, fault specs, validation, tokenizer, KV cache, latency."""

from __future__ import annotations

import random

import pytest

from llmd.errors import ConfigError
from llmd.sim.config import FaultSpec, SimConfig, parse_duration
from llmd.sim.kvcache import CapacityError, KVCache, block_keys
from llmd.sim.latency import Latency
from llmd.sim.tokenizer import count_tokens, flatten_chat, token_ids


@pytest.mark.parametrize(("text", "seconds"), [
    ("50ms", 0.05), ("1.5s", 1.5), ("250us", 0.00025), ("250µs", 0.00025), ("1m30s", 90.0), ("0", 0.0),
    ("20", 0.02), ("2h", 7200.0), ("100ns", 1e-7),
])
def test_parse_duration_go_like(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


def test_parse_duration_bare_unit():
    assert parse_duration("2", bare_unit=1.0) == 2.0 and parse_duration("2s", bare_unit=1.0) == 2.0


@pytest.mark.parametrize("text", ["5x", "", "ms", "-5ms", "1.5 s", "5ms3"])
def test_parse_duration_rejects_with_name_and_hint(text):
    with pytest.raises(ConfigError) as err:
        parse_duration(text, name="--itl")
    assert "--itl" in err.value.message


def test_fault_spec_grammar():
    assert FaultSpec.parse("status=503:0.25") == FaultSpec("status", 503.0, 0.25)
    assert FaultSpec.parse("rate_limit") == FaultSpec("rate_limit", 2, 1.0)
    assert FaultSpec.parse("stall=3") == FaultSpec("stall", 3.0, 1.0)
    assert FaultSpec.parse("early-close:0.5").kind == "early_close"
    for bad, needle in [("status", "4xx/5xx"), ("status=200", "4xx/5xx"), ("bogus", "unknown fault"),
                        ("stall:2", "(0, 1]"), ("stall:x", "not a number"), ("stall=a", "not a number")]:
        with pytest.raises(ConfigError) as err:
            FaultSpec.parse(bad)
        assert needle in err.value.message


def test_config_validation_lists_every_problem():
    cfg = SimConfig(max_num_seqs=0, block_size=7, itl=0.01, itl_std=0.005, time_factor_under_load=0.5,
                    faults=(FaultSpec("stall", None, 0.7), FaultSpec("crlf", None, 0.6)))
    with pytest.raises(ConfigError) as err:
        cfg.validate()
    msg = err.value.message
    for needle in ("max-num-seqs 0", "block-size 7", "itl-std 5ms", "time-factor-under-load 0.5", "sum to <= 1"):
        assert needle in msg
    assert SimConfig().validate().names == ("random",)


def test_simple_tokenizer_counts_words_and_punctuation():
    assert count_tokens("Hello, world!  How are you?") == 8
    ids = token_ids("a b a ")  # a piece includes its trailing whitespace
    assert len(ids) == 3 and ids[0] == ids[2] != ids[1]
    text = flatten_chat([{"role": "system", "content": "Be brief."},
                         {"role": "user", "content": [{"type": "text", "text": "Hi"}]}])
    assert text == "### system:\nBe brief.\n### user:\nHi\n"


def test_block_keys_are_chained_prefix_hashes():
    a = block_keys(list(range(40)), 16, "m")
    b = block_keys([*range(32), 99, 98, 97], 16, "m")
    assert len(a) == 2 and a == b[:2]  # partial tail ignored; equal prefix -> equal keys
    assert block_keys(list(range(40)), 16, "other")[0] != a[0]  # rooted at the model name
    c = block_keys([1, *range(1, 40)], 16, "m")
    assert c[0] != a[0] and c[1] != a[1]  # a change in block 0 changes every later key


def test_kv_cache_used_unused_eviction_and_capacity():
    kv = KVCache(capacity=4, block_size=16)
    assert kv.acquire([1, 2]) == 0
    assert kv.usage == 0.5
    assert kv.acquire([1, 2, 3]) == 2  # blocks pinned by a running request are hits too
    kv.release([1, 2])
    kv.release([1, 2, 3])
    assert kv.usage == 0.0 and list(kv.unused) == [1, 2, 3]  # released blocks stay hit-able
    assert kv.acquire([4, 5]) == 0  # cache full at 4 -> evict the oldest released block (1)
    assert 1 not in kv.unused and 2 in kv.unused
    assert kv.acquire([2, 3]) == 2
    with pytest.raises(CapacityError):
        kv.acquire([6, 7, 8])  # 4 pinned + 3 new > 4
    assert kv.usage == 1.0


def test_latency_formulas_and_load_factor():
    cfg = SimConfig(max_num_seqs=5, time_factor_under_load=3.0, prefill_overhead=0.01, prefill_per_token=0.001,
                    itl=0.02)
    lat = Latency(cfg, random.Random(1))
    assert lat.load_factor(1) == 1.0 and lat.load_factor(5) == 3.0 and lat.load_factor(3) == 2.0
    assert lat.ttft(100, 40, 1) == pytest.approx(0.01 + 60 * 0.001)  # cached tokens are not prefilled
    assert lat.ttft(100, 0, 5) == pytest.approx(3 * (0.01 + 0.1))
    assert lat.itl(3) == pytest.approx(0.04)
    fixed = Latency(SimConfig(ttft=0.05, ttft_std=0.01, prefill_per_token=1.0), random.Random(2))
    samples = [fixed.ttft(1000, 0, 1) for _ in range(200)]
    assert all(0.3 * 0.05 <= s <= 1.7 * 0.05 for s in samples)  # fixed TTFT ignores prefill; clamped normal
    assert 0.045 < sum(samples) / len(samples) < 0.055
    assert Latency(SimConfig(max_num_seqs=1, time_factor_under_load=4), random.Random()).load_factor(1) == 1.0


def test_kv_wait_queues_instead_of_500_when_blocks_do_not_fit():
    """--kv-wait: a request whose blocks do not fit waits for a running one to release (counted as waiting)."""
    import asyncio as aio

    import httpx

    from llmd.sim.config import SimConfig
    from llmd.sim.server import run_in_thread

    words = " ".join(f"w{i}" for i in range(40 * 16))  # 40 blocks of 16 tokens; the cache holds 64
    for wait, expect in ((True, {200}), (False, {200, 500})):
        cfg = SimConfig(port=0, enable_kvcache=True, kv_cache_size=64, max_model_len=4096, itl=0.01, output_len=20,
                        kv_wait=wait)
        with run_in_thread(cfg) as sim:
            async def two() -> list[int]:
                async with httpx.AsyncClient(base_url=sim.url, timeout=10) as c:
                    rs = await aio.gather(*(c.post("/v1/completions", json={
                        "model": "random", "prompt": f"{i} {words}", "max_tokens": 20}) for i in range(2)))
                return [r.status_code for r in rs]

            assert set(aio.run(two())) == expect
            assert sim.app.kv_waiting == 0 and sim.app.slots.running == 0
