"""The EPP's scheduling semantics (GAIE v1.4.0 + llm-d-inference-scheduler v0.7), built from an EndpointPickerConfig.

One cycle per request (docs/local-platform.md §1): filters in profile order, then every scorer's score clamped to
[0, 1] times its weight, summed (a plain weighted sum: no division by the sum of weights), then the picker. After the
pick, the PreRequest hook of every *declared* plugin runs with the primary target, as the EPP registers them all; that
is where the approximate prefix index and the no-hit LRU learn. Pure code: no sockets, an injectable RNG.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from llmd.errors import ConfigError

DEFAULT_WEIGHT = 1.0  # GAIE loader: an omitted weight is 1
AVG_CHARS_PER_TOKEN = 4  # the approximate prefix scorer hashes characters, 4 per token


@dataclass
class Endpoint:
    """One replica as the scheduler sees it: the last scraped metrics (`ready` = the last scrape answered)."""

    name: str  # host:port
    url: str
    waiting: int = 0
    running: int = 0
    kv_usage: float = 0.0
    block_size: int = 0  # vllm:cache_config_info labels, for the prefix scorer's autoTune
    num_gpu_blocks: int = 0
    ready: bool = False
    scraped_at: float = 0.0
    picks: int = 0


@dataclass
class Request:
    """What scheduling reads from a request: the target model and the user-input bytes the prefix scorer hashes
    (the prompt of /v1/completions; the JSON of `messages` for /v1/chat/completions)."""

    model: str
    user_input: bytes
    cache_salt: str = ""
    text: str | None = None  # the prompt as the model server tokenises it (only the precise scorer needs it)


@dataclass
class Cycle:
    """CycleState: what one plugin leaves for a later one in the same cycle (no-hit-lru reads the prefix state)."""

    data: dict[str, Any] = field(default_factory=dict)


class Plugin:
    type = ""

    def __init__(self, name: str, params: dict[str, Any], rng: random.Random) -> None:
        self.name = name
        self.params = params
        self.rng = rng

    def pre_request(self, cycle: Cycle, req: Request, target: Endpoint) -> None:
        """After the decision, before the request is sent (the EPP's PreRequest)."""

    def response_complete(self, target: Endpoint) -> None:
        """The response to a request routed to `target` ended (ResponseComplete)."""


class Scorer(Plugin):
    def score(self, cycle: Cycle, req: Request, endpoints: list[Endpoint]) -> dict[str, float]:
        raise NotImplementedError


class Picker(Plugin):
    def __init__(self, name: str, params: dict[str, Any], rng: random.Random) -> None:
        super().__init__(name, params, rng)
        k = params.get("maxNumOfEndpoints", 1)
        self.k = k if isinstance(k, int) and k > 0 else 1  # values <= 0 fall back to 1

    def pick(self, scored: list[tuple[Endpoint, float]]) -> list[Endpoint]:
        raise NotImplementedError


class Filter(Plugin):
    def filter(self, req: Request, endpoints: list[Endpoint]) -> list[Endpoint]:
        raise NotImplementedError


# ---- scorers ------------------------------------------------------------------------------------------------------

def _min_max(values: dict[str, int]) -> dict[str, float]:
    """(max - v) / (max - min); 1.0 for everybody when all are equal (incl. all zero)."""
    lo, hi = min(values.values()), max(values.values())
    if hi == lo:
        return dict.fromkeys(values, 1.0)
    return {k: (hi - v) / (hi - lo) for k, v in values.items()}


class QueueScorer(Scorer):
    """Min-max of vllm:num_requests_waiting across the candidates (running requests are ignored)."""

    type = "queue-scorer"

    def score(self, cycle: Cycle, req: Request, endpoints: list[Endpoint]) -> dict[str, float]:
        return _min_max({e.name: e.waiting for e in endpoints})


class RunningRequestsScorer(Scorer):
    type = "running-requests-size-scorer"

    def score(self, cycle: Cycle, req: Request, endpoints: list[Endpoint]) -> dict[str, float]:
        return _min_max({e.name: e.running for e in endpoints})


class KVCacheUtilizationScorer(Scorer):
    """1 - vllm:kv_cache_usage_perc: absolute, not min-max."""

    type = "kv-cache-utilization-scorer"

    def score(self, cycle: Cycle, req: Request, endpoints: list[Endpoint]) -> dict[str, float]:
        return {e.name: 1.0 - e.kv_usage for e in endpoints}


class LoadAwareScorer(Scorer):
    """0.5 with an empty queue, else 0.5 * (1 - min(waiting, T) / T); never above 0.5."""

    type = "load-aware-scorer"

    def score(self, cycle: Cycle, req: Request, endpoints: list[Endpoint]) -> dict[str, float]:
        t = self.params.get("threshold", 128)
        t = t if isinstance(t, (int, float)) and t > 0 else 128
        return {e.name: 0.5 if e.waiting == 0 else 0.5 * (1 - min(e.waiting, t) / t) for e in endpoints}


class ActiveRequestScorer(Scorer):
    """Gateway-side in-flight counts (exact, not scraped): idle -> 1.0, else (max - n) / max * maxBusyScore."""

    type = "active-request-scorer"

    def __init__(self, name: str, params: dict[str, Any], rng: random.Random) -> None:
        super().__init__(name, params, rng)
        self.count: dict[str, int] = {}

    def score(self, cycle: Cycle, req: Request, endpoints: list[Endpoint]) -> dict[str, float]:
        idle = self.params.get("idleThreshold", 0)
        busy = float(self.params.get("maxBusyScore", 1.0))
        top = max(self.count.values(), default=0)
        out = {}
        for e in endpoints:
            n = self.count.get(e.name)
            out[e.name] = 1.0 if n is None or n <= idle or top == 0 else (top - n) / top * busy
        return out

    def pre_request(self, cycle: Cycle, req: Request, target: Endpoint) -> None:
        self.count[target.name] = self.count.get(target.name, 0) + 1

    def response_complete(self, target: Endpoint) -> None:
        if self.count.get(target.name, 0) > 0:
            self.count[target.name] -= 1


@dataclass
class PrefixState:
    hashes: list[int]
    matched: dict[str, int]  # endpoint -> longest matched blocks (only endpoints holding block 0)


class PrefixIndex:
    """hash -> endpoints holding it, plus one LRU per endpoint whose capacity is fixed when it is created."""

    def __init__(self) -> None:
        self.holders: dict[int, set[str]] = {}
        self.lrus: dict[str, OrderedDict[int, None]] = {}
        self.capacity: dict[str, int] = {}

    def match(self, hashes: list[int]) -> dict[str, int]:
        res: dict[str, int] = {}
        for h in hashes:
            pods = self.holders.get(h)
            if not pods:
                break  # matching stops at the first block no endpoint has
            for p in pods:
                res[p] = res.get(p, 0) + 1
        return res

    def add(self, endpoint: str, hashes: list[int], capacity: int) -> None:
        lru = self.lrus.get(endpoint)
        if lru is None:
            lru = self.lrus[endpoint] = OrderedDict()
            self.capacity[endpoint] = capacity
        cap = self.capacity[endpoint]
        for h in hashes:  # in prompt order: block 0 becomes the least recent of the batch, evicted first
            if h in lru:
                lru.move_to_end(h)
                continue
            lru[h] = None
            self.holders.setdefault(h, set()).add(endpoint)
            while len(lru) > cap:
                old, _ = lru.popitem(last=False)
                pods = self.holders.get(old)
                if pods is not None:
                    pods.discard(endpoint)
                    if not pods:
                        del self.holders[old]

    def forget(self, endpoint: str) -> None:
        for h in self.lrus.pop(endpoint, {}):
            pods = self.holders.get(h)
            if pods is not None:
                pods.discard(endpoint)
                if not pods:
                    del self.holders[h]
        self.capacity.pop(endpoint, None)


def prompt_hashes(req: Request, block_tokens: int, max_blocks: int) -> list[int]:
    """Chained 8-byte hashes of the full character blocks of the user input (block = 4 chars per token), rooted at
    the model and cache salt. Upstream uses XXH64; any stable 64-bit hash gives the same behaviour."""
    chars = block_tokens * AVG_CHARS_PER_TOKEN
    data = req.user_input
    if len(data) < chars:
        return []
    data = data[: max_blocks * chars]
    prev = hashlib.blake2b((req.model + req.cache_salt).encode(), digest_size=8).digest()
    out = []
    for start in range(0, len(data) - chars + 1, chars):
        prev = hashlib.blake2b(data[start:start + chars] + prev, digest_size=8).digest()
        out.append(int.from_bytes(prev, "little"))
    return out


class PrefixCacheScorer(Scorer):
    """Approximate prefix affinity learned from the gateway's own routing decisions (GAIE prefix-cache-scorer):
    score = matched blocks / total blocks of the prompt; the index is updated optimistically at decision time."""

    type = "prefix-cache-scorer"

    def __init__(self, name: str, params: dict[str, Any], rng: random.Random) -> None:
        super().__init__(name, params, rng)
        if "blockSize" in params and "blockSizeTokens" not in params:
            raise ConfigError(f"plugin {name} (prefix-cache-scorer): `blockSize` (characters) is deprecated and "
                              "makes the plugin fail to start", hint="use blockSizeTokens (tokens, default 16)")
        self.auto_tune = bool(params.get("autoTune", True))
        self.block_tokens = int(params.get("blockSizeTokens") or 16)
        self.max_blocks = int(params.get("maxPrefixBlocksToMatch") or 256)
        self.lru_capacity = int(params.get("lruCapacityPerServer") or 31250)
        self.index = PrefixIndex()

    @property
    def state_key(self) -> str:
        return f"{self.name}/{self.type}"

    def _block_tokens(self, endpoints: list[Endpoint]) -> int:
        if self.auto_tune and endpoints and endpoints[0].block_size > 0:
            return endpoints[0].block_size  # the first candidate's, as upstream
        return self.block_tokens

    def score(self, cycle: Cycle, req: Request, endpoints: list[Endpoint]) -> dict[str, float]:
        hashes = prompt_hashes(req, self._block_tokens(endpoints), self.max_blocks)
        matched = self.index.match(hashes)
        cycle.data[self.state_key] = PrefixState(hashes, matched)
        if not hashes:
            return {e.name: 0.0 for e in endpoints}
        return {e.name: matched.get(e.name, 0) / len(hashes) for e in endpoints}

    def pre_request(self, cycle: Cycle, req: Request, target: Endpoint) -> None:
        state = cycle.data.get(self.state_key)
        if isinstance(state, PrefixState) and state.hashes:  # no state: declared but not scored (upstream skips)
            cap = target.num_gpu_blocks if self.auto_tune and target.num_gpu_blocks > 0 else self.lru_capacity
            self.index.add(target.name, state.hashes, cap)


class NoHitLRUScorer(Scorer):
    """Cold requests (no endpoint holds even block 0) go to the endpoint least recently given a cold request;
    warm requests score 0.5 everywhere. Must be listed after the prefix scorer it reads."""

    type = "no-hit-lru-scorer"

    def __init__(self, name: str, params: dict[str, Any], rng: random.Random) -> None:
        super().__init__(name, params, rng)
        pname = params.get("prefixPluginName") or params.get("prefixPluginType") or "prefix-cache-scorer"
        ptype = params.get("prefixPluginType") or "prefix-cache-scorer"
        self.key = f"{pname}/{ptype}"
        self.size = int(params.get("lruSize") or 1024)
        self.lru: OrderedDict[str, None] = OrderedDict()  # least recent first

    def _cold(self, cycle: Cycle) -> bool:
        state = cycle.data.get(self.key)
        return not isinstance(state, PrefixState) or not state.matched

    def score(self, cycle: Cycle, req: Request, endpoints: list[Endpoint]) -> dict[str, float]:
        if not self._cold(cycle):
            return {e.name: 0.5 for e in endpoints}
        n = len(endpoints)
        if n == 1:
            return {endpoints[0].name: 1.0}
        position = {name: i for i, name in enumerate(self.lru)}
        never = [e for e in endpoints if e.name not in position]
        out = {e.name: 1 - i / (n - 1) for i, e in enumerate(never)}
        for e in endpoints:
            if e.name in position:
                out[e.name] = max(0.0, 1 - (len(never) + position[e.name]) / (n - 1))
        return out

    def pre_request(self, cycle: Cycle, req: Request, target: Endpoint) -> None:
        if self._cold(cycle):
            self.lru.pop(target.name, None)
            self.lru[target.name] = None
            while len(self.lru) > self.size:
                self.lru.popitem(last=False)


class PrecisePrefixCacheScorer(Scorer):
    """Prefix affinity from the replicas' own KV-cache events (llm-d precise-prefix-cache-scorer): token-exact block
    keys, the score is the number of consecutive blocks from block 0 a replica holds, min-max normalised over the
    replicas holding at least one (all equal: 1.0; none: 0). Locally the events come from each replica's
    /llmd/kv-events (vLLM publishes them over ZMQ) and the keys from the simulator's own tokenizer and hashing;
    with speculativeIndexing a decision is indexed at once for 2 s, until the replica's events confirm it."""

    type = "precise-prefix-cache-scorer"
    SPECULATIVE_TTL_S = 2.0

    def __init__(self, name: str, params: dict[str, Any], rng: random.Random) -> None:
        super().__init__(name, params, rng)
        # v0.7.1 reads speculativeIndexing at the top of the parameters; the guide's indexerConfig spelling is ignored
        self.speculative = params.get("speculativeIndexing") is True
        self.held: dict[str, set[int]] = {}  # endpoint -> block keys its KV events say it holds
        self.spec: dict[str, dict[int, float]] = {}  # endpoint -> key -> expiry (monotonic)

    @property
    def state_key(self) -> str:
        return f"{self.name}/{self.type}"

    def kv_events(self, endpoint: str, doc: dict[str, Any]) -> None:
        if "snapshot" in doc:
            self.held[endpoint] = set(doc["snapshot"])
            return
        held = self.held.setdefault(endpoint, set())
        for stored, key in doc.get("events", ()):
            if stored:
                held.add(key)
            else:
                held.discard(key)

    def keys(self, req: Request, endpoints: list[Endpoint]) -> list[int]:
        from llmd.sim.kvcache import block_keys
        from llmd.sim.tokenizer import token_ids

        block = next((e.block_size for e in endpoints if e.block_size > 0), 16)
        return block_keys(token_ids(req.text or ""), block, req.model)

    def score(self, cycle: Cycle, req: Request, endpoints: list[Endpoint]) -> dict[str, float]:
        keys = self.keys(req, endpoints)
        now = time.monotonic()
        counts: dict[str, int] = {}
        for e in endpoints:
            held, spec = self.held.get(e.name, set()), self.spec.get(e.name, {})
            n = 0
            for k in keys:
                if k not in held and spec.get(k, 0.0) <= now:
                    break
                n += 1
            counts[e.name] = n
        hits = {k: v for k, v in counts.items() if v > 0}
        cycle.data[self.state_key] = PrefixState(keys, hits)
        if not hits:
            return dict.fromkeys(counts, 0.0)
        lo, hi = min(hits.values()), max(hits.values())
        return {k: 0.0 if v == 0 else 1.0 if hi == lo else (v - lo) / (hi - lo) for k, v in counts.items()}

    def pre_request(self, cycle: Cycle, req: Request, target: Endpoint) -> None:
        state = cycle.data.get(self.state_key)
        if not self.speculative or not isinstance(state, PrefixState):
            return
        now = time.monotonic()
        spec = self.spec.setdefault(target.name, {})
        if len(spec) > 50_000:  # drop the expired entries now and then
            for k in [k for k, t in spec.items() if t <= now]:
                del spec[k]
        expiry = now + self.SPECULATIVE_TTL_S
        for k in state.hashes:
            spec[k] = expiry


class TokenizerPlugin(Plugin):
    """The EPP's tokenizer sidecar; locally the simulator's own tokenizer is used, so this only has to exist."""

    type = "tokenizer"


# ---- pickers and filters ------------------------------------------------------------------------------------------

class MaxScorePicker(Picker):
    """Shuffle, then a stable sort by score: ties (exact float equality) are broken uniformly at random."""

    type = "max-score-picker"

    def pick(self, scored: list[tuple[Endpoint, float]]) -> list[Endpoint]:
        items = list(scored)
        self.rng.shuffle(items)
        items.sort(key=lambda t: t[1], reverse=True)
        return [e for e, _ in items[: self.k]]


class RandomPicker(Picker):
    type = "random-picker"

    def pick(self, scored: list[tuple[Endpoint, float]]) -> list[Endpoint]:
        items = [e for e, _ in scored]
        self.rng.shuffle(items)
        return items[: self.k]


class WeightedRandomPicker(Picker):
    """A-Res: key = U^(1/score) for positive scores; with no positive score, a random pick."""

    type = "weighted-random-picker"

    def pick(self, scored: list[tuple[Endpoint, float]]) -> list[Endpoint]:
        if not any(s > 0 for _, s in scored):
            return RandomPicker(self.name, {"maxNumOfEndpoints": self.k}, self.rng).pick(scored)
        keyed = []
        for e, s in scored:
            u = self.rng.random() or 1e-10
            keyed.append((u ** (1.0 / s) if s > 0 else 0.0, e))
        keyed.sort(key=lambda t: t[0], reverse=True)
        return [e for _, e in keyed[: self.k]]


class DecodeFilter(Filter):
    """Keeps decode-capable endpoints; local replicas carry no role label, which the filter keeps."""

    type = "decode-filter"

    def filter(self, req: Request, endpoints: list[Endpoint]) -> list[Endpoint]:
        return endpoints


class SingleProfileHandler(Plugin):
    type = "single-profile-handler"


PLUGIN_TYPES: dict[str, type[Plugin]] = {cls.type: cls for cls in (
    QueueScorer, RunningRequestsScorer, KVCacheUtilizationScorer, LoadAwareScorer, ActiveRequestScorer,
    PrefixCacheScorer, PrecisePrefixCacheScorer, NoHitLRUScorer, MaxScorePicker, RandomPicker, WeightedRandomPicker,
    DecodeFilter, SingleProfileHandler, TokenizerPlugin)}


# ---- the scheduler ------------------------------------------------------------------------------------------------

class NoEndpoints(Exception):
    """No ready endpoint (the EPP answers 503) or a filter removed every one (429)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Decision:
    targets: list[Endpoint]
    scores: dict[str, float]
    cycle: Cycle


class Scheduler:
    """One scheduling profile (single-profile-handler) built from an EndpointPickerConfig document."""

    def __init__(self, config: dict[str, Any], *, rng: random.Random | None = None) -> None:
        from llmd.render.epp import validate_epp_config

        errors = validate_epp_config(config)
        if errors:
            raise ConfigError("invalid EndpointPickerConfig:\n  • " + "\n  • ".join(errors),
                              hint="`llmd scheduler validate FILE` checks a config before it is applied")
        self.config = config
        self.rng = rng or random.Random()
        self.plugins: dict[str, Plugin] = {}
        for p in config["plugins"]:
            cls = PLUGIN_TYPES.get(p["type"])
            if cls is None:
                raise ConfigError(f"plugin type {p['type']!r} is valid for the EPP but not simulated by the local "
                                  "gateway", hint="local scorers: " + ", ".join(
                                      t for t, c in PLUGIN_TYPES.items() if issubclass(c, Scorer)))
            self.plugins[p.get("name", p["type"])] = cls(p.get("name", p["type"]), p.get("parameters") or {},
                                                          self.rng)
        profiles = config["schedulingProfiles"]
        if len(profiles) != 1:
            raise ConfigError(f"{len(profiles)} scheduling profiles: the local gateway runs the single-profile-handler,"
                              " which needs exactly one", hint="keep one profile (P/D disaggregation is not simulated)")
        self.profile = profiles[0]["name"]
        self.filters: list[Filter] = []
        self.scorers: list[tuple[Scorer, float]] = []
        picker: Picker | None = None
        for ref in profiles[0]["plugins"]:
            plugin = self.plugins[ref["pluginRef"]]
            if isinstance(plugin, Scorer):
                self.scorers.append((plugin, float(ref.get("weight", DEFAULT_WEIGHT))))
            elif isinstance(plugin, Filter):
                self.filters.append(plugin)
            elif isinstance(plugin, Picker):
                picker = plugin
        if picker is None:  # the loader's default: the first declared picker, else a new max-score-picker
            picker = next((p for p in self.plugins.values() if isinstance(p, Picker)), None)
        self.picker = picker or MaxScorePicker("max-score-picker", {}, self.rng)

    @property
    def kv_event_sinks(self) -> list[PrecisePrefixCacheScorer]:
        """Declared precise scorers: they need each replica's KV events (and the prompt text of each request)."""
        return [p for p in self.plugins.values() if isinstance(p, PrecisePrefixCacheScorer)]

    def describe(self) -> str:
        parts = [f"{s.type} {w:g}" for s, w in self.scorers]
        return ", ".join([*parts, self.picker.type])

    def schedule(self, req: Request, endpoints: list[Endpoint]) -> Decision:
        candidates = [e for e in endpoints if e.ready]
        if not candidates:
            raise NoEndpoints(503, "no ready endpoint in the pool")
        for f in self.filters:
            candidates = f.filter(req, candidates)
            if not candidates:
                raise NoEndpoints(429, f"failed to find target pod: filter {f.name} left no endpoints available")
        cycle = Cycle()
        totals = dict.fromkeys((e.name for e in candidates), 0.0)
        for scorer, weight in self.scorers:
            scores = scorer.score(cycle, req, candidates)
            for name in totals:
                totals[name] += min(max(scores.get(name, 0.0), 0.0), 1.0) * weight
        targets = self.picker.pick([(e, totals[e.name]) for e in candidates])
        for plugin in self.plugins.values():  # every declared plugin's PreRequest, referenced or not
            plugin.pre_request(cycle, req, targets[0])
        targets[0].picks += 1
        return Decision(targets, totals, cycle)

    def complete(self, target: Endpoint) -> None:
        for plugin in self.plugins.values():
            plugin.response_complete(target)
