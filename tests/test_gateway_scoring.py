"""The local gateway's scorers and pickers against hand-computed scores (docs/local-platform.md §1, §2)."""

from __future__ import annotations

import random

import pytest

from llmd.errors import ConfigError
from llmd.gateway import scheduling as S
from llmd.gateway.scheduling import Cycle, Endpoint, Request, Scheduler

RNG = random.Random(0)


def eps(**fields_by_name) -> list[Endpoint]:
    return [Endpoint(name=n, url=f"http://{n}", ready=True, **f) for n, f in fields_by_name.items()]


def config(*refs: tuple[str, float | None], plugins: list[dict] | None = None) -> dict:
    plugins = plugins or [{"type": t} for t, _ in refs]
    prof = [{"pluginRef": t, **({"weight": w} if w is not None else {})} for t, w in refs]
    return {"apiVersion": "inference.networking.x-k8s.io/v1alpha1", "kind": "EndpointPickerConfig",
            "plugins": plugins, "schedulingProfiles": [{"name": "default", "plugins": prof}]}


REQ = Request("m", b"")


def test_queue_scorer_min_max_on_waiting_only():
    e = eps(a={"waiting": 0, "running": 9}, b={"waiting": 2}, c={"waiting": 8})
    s = S.QueueScorer("q", {}, RNG).score(Cycle(), REQ, e)
    assert s == {"a": 1.0, "b": 0.75, "c": 0.0}  # (8-2)/(8-0) = 0.75; running is ignored
    same = eps(a={"waiting": 3}, b={"waiting": 3})
    assert S.QueueScorer("q", {}, RNG).score(Cycle(), REQ, same) == {"a": 1.0, "b": 1.0}


def test_running_requests_and_kv_utilization_scorers():
    e = eps(a={"running": 1, "kv_usage": 0.25}, b={"running": 5, "kv_usage": 0.9})
    assert S.RunningRequestsScorer("r", {}, RNG).score(Cycle(), REQ, e) == {"a": 1.0, "b": 0.0}
    kv = S.KVCacheUtilizationScorer("k", {}, RNG).score(Cycle(), REQ, e)
    assert kv == pytest.approx({"a": 0.75, "b": 0.1})


def test_load_aware_scorer_threshold():
    e = eps(a={"waiting": 0}, b={"waiting": 32}, c={"waiting": 500})
    s = S.LoadAwareScorer("l", {"threshold": 64}, RNG).score(Cycle(), REQ, e)
    assert s == {"a": 0.5, "b": 0.25, "c": 0.0}  # 0.5 * (1 - 32/64); capped at the threshold


def test_active_request_scorer_counts_pre_request_and_completion():
    e = eps(a={}, b={}, c={})
    sc = S.ActiveRequestScorer("ar", {}, RNG)
    for target in (e[0], e[0], e[0], e[0], e[1]):
        sc.pre_request(Cycle(), REQ, target)
    assert sc.score(Cycle(), REQ, e) == {"a": 0.0, "b": 0.75, "c": 1.0}  # (4-1)/4; c untracked
    for _ in range(4):
        sc.response_complete(e[0])
    assert sc.score(Cycle(), REQ, e)["a"] == 1.0


def prompt(n_blocks: int, tail: str = "") -> bytes:
    """n full 64-character blocks (16 tokens x 4 chars) plus an optional tail."""
    return b"".join(bytes([65 + i % 26]) * 64 for i in range(n_blocks)) + tail.encode()


def test_prompt_hashes_full_blocks_chained_and_model_rooted():
    h = S.prompt_hashes(Request("m", prompt(4, "xyz")), 16, 256)
    assert len(h) == 4  # the partial tail is dropped
    assert S.prompt_hashes(Request("m", prompt(2)), 16, 256) == h[:2]  # chained: an equal prefix, equal hashes
    assert S.prompt_hashes(Request("other", prompt(4)), 16, 256)[0] != h[0]  # rooted at the model
    assert S.prompt_hashes(Request("m", prompt(4), cache_salt="s"), 16, 256)[0] != h[0]
    assert S.prompt_hashes(Request("m", b"short"), 16, 256) == []
    assert len(S.prompt_hashes(Request("m", prompt(10)), 16, 3)) == 3  # maxPrefixBlocksToMatch


def test_prefix_scorer_ratio_learned_from_routing_history():
    e = eps(a={}, b={})
    sc = S.PrefixCacheScorer("prefix-cache-scorer", {"autoTune": False}, RNG)
    first = Request("m", prompt(4))
    cyc = Cycle()
    assert sc.score(cyc, first, e) == {"a": 0.0, "b": 0.0}
    sc.pre_request(cyc, first, e[0])  # optimistic: learned at decision time
    # shares blocks 0-1 with the first prompt, then differs: 2 of 5 blocks match on a
    second = Request("m", prompt(2) + b"Z" * 192)
    assert sc.score(Cycle(), second, e) == {"a": 2 / 5, "b": 0.0}
    assert sc.score(Cycle(), first, e) == {"a": 1.0, "b": 0.0}


def test_prefix_index_lru_evicts_head_blocks_first_and_match_stops_there():
    idx = S.PrefixIndex()
    idx.add("a", [1, 2, 3], capacity=4)
    idx.add("a", [7, 8], capacity=4)  # capacity 4: block 1 (head of the older prompt) is evicted
    assert idx.match([1, 2, 3]) == {}  # matching stops at the first missing block
    assert idx.match([7, 8]) == {"a": 2}
    assert 1 not in idx.holders


def test_prefix_scorer_auto_tune_takes_block_size_and_capacity_from_metrics():
    e = eps(a={"block_size": 8, "num_gpu_blocks": 2})
    sc = S.PrefixCacheScorer("p", {}, RNG)
    req = Request("m", prompt(2))  # 128 chars = 4 blocks of 8 tokens x 4 chars
    cyc = Cycle()
    sc.score(cyc, req, e)
    assert len(cyc.data["p/prefix-cache-scorer"].hashes) == 4
    sc.pre_request(cyc, req, e[0])
    assert len(sc.index.lrus["a"]) == 2  # LRU capacity = num_gpu_blocks


def test_no_hit_lru_scorer_cold_and_warm():
    e = eps(a={}, b={}, c={})
    prefix = S.PrefixCacheScorer("prefix-cache-scorer", {"autoTune": False}, RNG)
    nohit = S.NoHitLRUScorer("no-hit-lru-scorer", {}, RNG)
    cyc = Cycle()
    prefix.score(cyc, Request("m", prompt(2)), e)
    assert nohit.score(cyc, REQ, e) == {"a": 1.0, "b": 0.5, "c": 0.0}  # never used: 1 - i/(N-1)
    nohit.pre_request(cyc, REQ, e[0])  # a got a cold request: now the most recent
    cyc2 = Cycle()
    prefix.score(cyc2, Request("m", prompt(3)), e)
    # never used b, c: ranks 0, 1; a in the LRU at position 0 -> rank 2 -> 0.0
    assert nohit.score(cyc2, REQ, e) == {"b": 1.0, "c": 0.5, "a": 0.0}
    prefix.pre_request(cyc, Request("m", prompt(2)), e[1])
    warm = Cycle()
    prefix.score(warm, Request("m", prompt(2)), e)
    assert nohit.score(warm, REQ, e) == {"a": 0.5, "b": 0.5, "c": 0.5}


def test_max_score_picker_breaks_exact_ties_at_random():
    e = eps(a={}, b={}, c={})
    picker = S.MaxScorePicker("p", {}, random.Random(1))
    assert picker.pick([(e[0], 1.0), (e[1], 2.5), (e[2], 0.0)]) == [e[1]]
    seen = {picker.pick([(e[0], 1.0), (e[1], 1.0), (e[2], 0.5)])[0].name for _ in range(200)}
    assert seen == {"a", "b"}
    two = S.MaxScorePicker("p", {"maxNumOfEndpoints": 2}, RNG).pick([(e[0], 3.0), (e[1], 1.0), (e[2], 2.0)])
    assert [x.name for x in two] == ["a", "c"]


def test_random_picker_ignores_scores_and_weighted_random_is_proportional():
    e = eps(a={}, b={}, c={})
    rnd = S.RandomPicker("r", {}, random.Random(2))
    counts = {"a": 0, "b": 0, "c": 0}
    for _ in range(3000):
        counts[rnd.pick([(e[0], 100.0), (e[1], 0.0), (e[2], 0.0)])[0].name] += 1
    assert all(800 < n < 1200 for n in counts.values())
    w = S.WeightedRandomPicker("w", {}, random.Random(3))
    counts = {"a": 0, "b": 0, "c": 0}
    for _ in range(4000):
        counts[w.pick([(e[0], 3.0), (e[1], 1.0), (e[2], 0.0)])[0].name] += 1
    assert counts["c"] == 0  # score 0 never wins while a positive one exists
    assert 2700 < counts["a"] < 3300  # P = 3 / (3 + 1)


def test_scheduler_weighted_sum_is_plain_and_clamped():
    cfg = config(("queue-scorer", 2), ("kv-cache-utilization-scorer", 2), ("prefix-cache-scorer", 3))
    sched = Scheduler(cfg, rng=random.Random(0))
    e = eps(a={"waiting": 0, "kv_usage": 0.5}, b={"waiting": 4, "kv_usage": 0.0})
    d = sched.schedule(Request("m", prompt(2)), e)
    assert d.scores == {"a": 2 * 1.0 + 2 * 0.5 + 0, "b": 2 * 0.0 + 2 * 1.0 + 0}  # 3.0 vs 2.0: no normalisation
    assert d.targets[0].name == "a" and e[0].picks == 1
    # the pick taught the prefix index: the same prompt now adds 3 * 1.0 on a
    assert sched.schedule(Request("m", prompt(2)), e).scores["a"] == 6.0


def test_scheduler_defaults_weight_one_and_picker_and_skips_unready():
    sched = Scheduler(config(("queue-scorer", None)), rng=random.Random(0))
    assert sched.scorers[0][1] == 1.0 and sched.picker.type == "max-score-picker"
    e = eps(a={"waiting": 5}, b={"waiting": 0})
    e[1].ready = False
    assert sched.schedule(REQ, e).targets[0].name == "a"  # b has no answering /metrics: not a candidate
    e[0].ready = False
    with pytest.raises(S.NoEndpoints) as err:
        sched.schedule(REQ, e)
    assert err.value.status == 503


def test_random_profile_and_declared_picker():
    plugins = [{"type": "random-picker"}]
    cfg = {"apiVersion": "inference.networking.x-k8s.io/v1alpha1", "kind": "EndpointPickerConfig",
           "plugins": plugins, "schedulingProfiles": [{"name": "default", "plugins": [{"pluginRef": "random-picker"}]}]}
    sched = Scheduler(cfg, rng=random.Random(5))
    e = eps(a={}, b={}, c={}, d={})
    names = {sched.schedule(REQ, e).targets[0].name for _ in range(100)}
    assert names == {"a", "b", "c", "d"}


def test_unsupported_or_invalid_configs_are_config_errors():
    with pytest.raises(ConfigError, match="not simulated"):
        Scheduler(config(("session-affinity-scorer", 1)))
    with pytest.raises(ConfigError, match="kv-cache-scorer"):
        Scheduler(config(("kv-cache-scorer", 1)))
    two = config(("queue-scorer", 1))
    two["schedulingProfiles"].append({"name": "prefill", "plugins": [{"pluginRef": "queue-scorer"}]})
    with pytest.raises(ConfigError, match="profile"):  # the validator or the single-profile rule
        Scheduler(two)


def test_precise_prefix_scorer_consecutive_blocks_min_max_over_hit_endpoints():
    from llmd.sim.kvcache import KVCache, block_keys
    from llmd.sim.tokenizer import token_ids

    e = eps(a={"block_size": 4}, b={"block_size": 4}, c={"block_size": 4})
    sc = S.PrecisePrefixCacheScorer("precise-prefix-cache-scorer", {}, RNG)
    req = Request("m", b"", text="one two three four five six seven eight nine ten eleven twelve ")
    keys = block_keys(token_ids(req.text), 4, "m")
    assert len(keys) == 3
    # the replicas' own caches, seen through their KV events: a holds blocks 0-2, b blocks 0 and 2 (1 is missing)
    kv_a, kv_b = KVCache(16, 4), KVCache(16, 4)
    kv_a.acquire(keys)
    kv_b.acquire([keys[0], keys[2]])
    sc.kv_events("a", kv_a.events_after(-1))  # a snapshot
    sc.kv_events("b", kv_b.events_after(0))  # ordered events
    cyc = Cycle()
    assert sc.score(cyc, req, e) == {"a": 1.0, "b": 0.0, "c": 0.0}  # consecutive 3 vs 1: min-max over a, b
    assert cyc.data["precise-prefix-cache-scorer/precise-prefix-cache-scorer"].matched == {"a": 3, "b": 1}
    kv_a.release(keys)
    sc.kv_events("b", {"seq": 3, "events": [[1, keys[1]]]})
    assert sc.score(Cycle(), req, e) == {"a": 1.0, "b": 1.0, "c": 0.0}  # all hit endpoints equal: 1.0
    sc.kv_events("a", {"seq": 9, "events": [[0, keys[0]]]})  # evicted: a matches nothing any more
    assert sc.score(Cycle(), req, e) == {"a": 0.0, "b": 1.0, "c": 0.0}


def test_precise_prefix_speculative_indexing_until_events_confirm():
    e = eps(a={"block_size": 4}, b={"block_size": 4})
    req = Request("m", b"", text="alpha beta gamma delta epsilon zeta eta theta ")
    guide = S.PrecisePrefixCacheScorer("p", {"indexerConfig": {"speculativeIndexing": True}}, RNG)
    seen = Cycle()
    guide.score(seen, req, e)
    guide.pre_request(seen, req, e[1])  # where the v0.6 guide writes it, v0.7.1 ignores it: nothing indexed
    assert guide.score(Cycle(), req, e) == {"a": 0.0, "b": 0.0}
    sc = S.PrecisePrefixCacheScorer("p", {"speculativeIndexing": True}, RNG)
    cyc = Cycle()
    assert sc.score(cyc, req, e) == {"a": 0.0, "b": 0.0}
    sc.pre_request(cyc, req, e[1])
    assert sc.score(Cycle(), req, e) == {"a": 0.0, "b": 1.0}
    for k in sc.spec["b"]:
        sc.spec["b"][k] = 0.0  # the 2 s TTL ran out and no event confirmed it
    assert sc.score(Cycle(), req, e) == {"a": 0.0, "b": 0.0}


def test_sim_kv_events_window_and_snapshot():
    from llmd.sim.kvcache import KVCache

    kv = KVCache(3, 16)
    kv.acquire([1, 2])
    kv.release([1, 2])
    kv.acquire([3, 4])  # full: evicts 1, the oldest released
    assert kv.events_after(2) == {"seq": 5, "events": [[1, 3], [0, 1], [1, 4]]}
    assert kv.events_after(5) == {"seq": 5, "events": []}
    snap = kv.events_after(-1)
    assert snap["seq"] == 5 and sorted(snap["snapshot"]) == [2, 3, 4]
    assert "snapshot" in kv.events_after(99)  # a poller that knew a previous life of the replica
