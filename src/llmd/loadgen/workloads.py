"""Workloads: deterministic (seeded) request bodies for chat or completions, pre-encoded for the hot path.

Every body is split at a marker into (head, tail) bytes; the engine inserts a per-request nonce there so that
synthetic prompts never share a prefix by accident, while shared-prefix prompts share exactly their group's system
prompt (the nonce goes after it). Token lengths are counted in words of a fixed vocabulary of short common English
words, which common tokenizers (and llm-d-inference-sim) count as about one token each; the server's `usage` is the
authoritative count and the report says which source each number came from.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path

from llmd.errors import ConfigError

_NONCE = "\x00NONCE\x00"
_VOCAB = (
    "the of and to in is you that it he was for on are as with his they at be this have from or one had by word but "
    "not what all were we when your can said there use an each which she do how their if will up other about out many "
    "then them these so some her would make like him into time has look two more write go see number no way could "
    "people my than first water been call who oil its now find long down day did get come made may part over new sound "
    "take only little work know place year live me back give most very after thing our just name good sentence man "
    "think say great where help through much before line right too mean old any same tell boy follow came want show"
).split()
_POOL = 1024  # distinct bodies kept per workload; the nonce keeps repeats unique


@dataclass(frozen=True, slots=True)
class Body:
    head: bytes
    tail: bytes
    input_tokens: int  # intended prompt length in words (the server's usage is authoritative)
    max_tokens: int
    group: int = -1  # shared-prefix group, -1 otherwise
    unique: bool = True  # False: replayed verbatim (file workload), head is the whole body

    def render(self, nonce: str) -> bytes:
        return self.head + nonce.encode() + self.tail if self.unique else self.head


def words(rng: random.Random, n: int) -> str:
    return " ".join(rng.choices(_VOCAB, k=max(0, n)))


def sample_length(rng: random.Random, mean: int, dist: str, spread: float) -> int:
    """A token length around `mean`: fixed, uniform in mean*(1±spread), normal/lognormal with sd mean*spread."""
    if dist == "fixed" or mean <= 1:
        return max(1, mean)
    if dist == "uniform":
        lo, hi = mean * (1 - spread), mean * (1 + spread)
        return max(1, round(rng.uniform(lo, hi)))
    if dist == "normal":
        return max(1, round(rng.gauss(mean, mean * spread)))
    if dist == "lognormal":
        import math

        sigma = math.sqrt(math.log(1 + spread * spread))
        return max(1, round(rng.lognormvariate(math.log(mean) - sigma * sigma / 2, sigma)))
    raise ConfigError(f"unknown length distribution {dist!r}", "use fixed, uniform, normal or lognormal")


def _encode(api: str, model: str, system: str | None, user: str, max_tokens: int, *,
            ignore_eos: bool) -> tuple[bytes, bytes]:
    body: dict = {"model": model, "stream": True, "stream_options": {"include_usage": True}, "max_tokens": max_tokens}
    if api == "chat":
        msgs = [{"role": "system", "content": system}] if system else []
        msgs.append({"role": "user", "content": user})
        body["messages"] = msgs
    else:
        body["prompt"] = (system + "\n" + user) if system else user
    if ignore_eos:
        body["ignore_eos"] = True  # vLLM extension: generate exactly max_tokens so output length is controlled
    text = json.dumps(body, ensure_ascii=False)
    marker = json.dumps(_NONCE)[1:-1]
    head, _, tail = text.partition(marker)
    return head.encode(), tail.encode()


class Workload:
    """A cyclic list of pre-encoded bodies; `body(i)` is deterministic for a given seed."""

    kind = "base"

    def __init__(self, bodies: list[Body], describe: dict) -> None:
        if not bodies:
            raise ConfigError("the workload has no requests", "check --dataset or the workload parameters")
        self.bodies = bodies
        self._describe = describe

    def body(self, i: int) -> Body:
        return self.bodies[i % len(self.bodies)]

    def describe(self) -> dict:
        return dict(self._describe, distinct_bodies=len(self.bodies))


def synthetic(*, api: str, model: str, input_tokens: int, output_tokens: int, dist: str = "fixed",
              spread: float = 0.25, seed: int = 0, ignore_eos: bool = True, pool: int = _POOL) -> Workload:
    rng = random.Random(f"synthetic:{seed}")
    bodies = []
    for _ in range(pool):
        n_in = sample_length(rng, input_tokens, dist, spread)
        n_out = sample_length(rng, output_tokens, dist, spread)
        # the nonce is the first word, so no two requests share a prefix
        head, tail = _encode(api, model, None, _NONCE + " " + words(rng, n_in - 1), n_out, ignore_eos=ignore_eos)
        bodies.append(Body(head, tail, n_in, n_out))
    return Workload(bodies, {"workload": "synthetic", "api": api, "input_tokens": input_tokens,
                             "output_tokens": output_tokens, "dist": dist, "spread": spread, "seed": seed})


def group_token(seed: int, group: int, salt: str = "") -> str:
    """A token unique to (seed, group, salt) that starts the group's system prompt, so groups never share a prefix
    (and with a per-stage salt, no stage or run finds its prefixes already cached by an earlier one)."""
    return "grp" + hashlib.sha256(f"{seed}:{group}:{salt}".encode()).hexdigest()[:10]


def shared_prefix(*, api: str, model: str, groups: int, prompts_per_group: int, system_prompt_len: int,
                  question_len: int, output_tokens: int, seed: int = 0, ignore_eos: bool = True,
                  salt: str = "") -> Workload:
    """groups x prompts_per_group requests; each group's prompts start with the same system prompt.

    Requests are shuffled (seeded) so every group's prefix is requested throughout the run, which is what makes
    prefix-cache-aware scheduling measurable: a router that keeps a group on one replica turns those prefixes
    into cache hits (visible as usage.prompt_tokens_details.cached_tokens).
    """
    rng = random.Random(f"shared-prefix:{seed}")
    systems = [group_token(seed, g, salt) + " " + words(rng, system_prompt_len - 1) for g in range(groups)]
    bodies = []
    for g in range(groups):
        for _ in range(prompts_per_group):
            question = _NONCE + " " + words(rng, question_len - 1)
            if api == "chat":
                head, tail = _encode(api, model, systems[g], question, output_tokens, ignore_eos=ignore_eos)
            else:
                head, tail = _encode(api, model, None, systems[g] + "\n" + question, output_tokens,
                                     ignore_eos=ignore_eos)
            bodies.append(Body(head, tail, system_prompt_len + question_len, output_tokens, g))
    rng.shuffle(bodies)
    return Workload(bodies, {"workload": "shared-prefix", "api": api, "groups": groups,
                             "prompts_per_group": prompts_per_group, "system_prompt_len": system_prompt_len,
                             "question_len": question_len, "output_tokens": output_tokens, "seed": seed})


def _sharegpt_prompt(item: dict) -> tuple[str, int | None] | None:
    turns = item.get("conversations") or item.get("conversation")
    if not isinstance(turns, list):
        return None
    prompt = None
    for turn in turns:
        if not isinstance(turn, dict):
            continue
        who = turn.get("from") or turn.get("role")
        text = turn.get("value") or turn.get("content")
        if not isinstance(text, str):
            continue
        if prompt is None and who in ("human", "user"):
            prompt = text
        elif prompt is not None and who in ("gpt", "assistant", "chatgpt", "bard"):
            return prompt, max(1, len(text.split()))
    return (prompt, None) if prompt else None


def from_file(path: str, *, api: str, model: str, output_tokens: int | None, seed: int = 0,
              ignore_eos: bool = True) -> Workload:
    """JSONL of {"prompt": str, "max_tokens"?: int} / {"messages": [...]} lines, or a ShareGPT JSON array/JSONL.

    ShareGPT items use the first human turn as the prompt and, unless --output-tokens is given, the length of the
    reply as max_tokens. Prompts are replayed verbatim (no nonce), in file order.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read --dataset {path}: {exc}", "give a readable UTF-8 JSONL or ShareGPT JSON file") \
            from exc
    items: list = []
    stripped = text.lstrip()
    try:
        if stripped.startswith("["):
            items = json.loads(stripped)
        else:
            for n, line in enumerate(text.splitlines(), 1):
                if line.strip():
                    try:
                        items.append(json.loads(line))
                    except ValueError as exc:
                        raise ConfigError(f"--dataset {path} line {n} is not JSON: {exc}",
                                          "each line must be one JSON object (JSONL)") from exc
    except ValueError as exc:
        raise ConfigError(f"--dataset {path} is not valid JSON: {exc}", "give JSONL or a ShareGPT JSON array") from exc
    bodies = []
    default_out = output_tokens or 128
    for n, item in enumerate(items, 1):
        if not isinstance(item, dict):
            raise ConfigError(f"--dataset {path} item {n} is not a JSON object", "each item needs prompt or messages")
        out = output_tokens or item.get("max_tokens") or item.get("output_tokens")
        if isinstance(item.get("prompt"), str):
            prompt, n_in = item["prompt"], len(item["prompt"].split())
            messages = None
        elif isinstance(item.get("messages"), list):
            messages = item["messages"]
            prompt = None
            n_in = sum(len(str(m.get("content", "")).split()) for m in messages if isinstance(m, dict))
        else:
            got = _sharegpt_prompt(item)
            if got is None:
                raise ConfigError(f"--dataset {path} item {n} has no prompt, messages or ShareGPT conversations",
                                  'use {"prompt": "..."} or {"conversations": [{"from": "human", "value": "..."}]}')
            prompt, reply_len = got
            n_in = len(prompt.split())
            out = out or reply_len
            messages = None
        out = int(out or default_out)
        body = _file_body(api, model, prompt, messages, out, ignore_eos=ignore_eos)
        bodies.append(Body(body, b"", n_in, out, unique=False))
    return Workload(bodies, {"workload": "file", "api": api, "dataset": str(p), "items": len(bodies),
                             "output_tokens": output_tokens, "seed": seed})


def _file_body(api, model, prompt, messages, max_tokens, *, ignore_eos) -> bytes:
    body: dict = {"model": model, "stream": True, "stream_options": {"include_usage": True}, "max_tokens": max_tokens}
    if api == "chat":
        body["messages"] = messages if messages is not None else [{"role": "user", "content": prompt}]
    else:
        body["prompt"] = prompt if prompt is not None else "\n".join(
            str(m.get("content", "")) for m in messages if isinstance(m, dict))
    if ignore_eos:
        body["ignore_eos"] = True
    return json.dumps(body, ensure_ascii=False).encode()
