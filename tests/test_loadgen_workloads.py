"""Workloads: synthetic lengths and uniqueness, shared-prefix properties, JSONL and ShareGPT files."""

from __future__ import annotations

import json
import random

import pytest

from llmd.errors import ConfigError
from llmd.loadgen import workloads as W


def decode(body: W.Body, nonce: str = "N1") -> dict:
    return json.loads(body.render(nonce))


def test_synthetic_body_shape_and_unique_prefix():
    wl = W.synthetic(api="chat", model="m", input_tokens=20, output_tokens=7, seed=3, pool=4)
    a, b = decode(wl.body(0), "req-a"), decode(wl.body(0), "req-b")
    assert a["model"] == "m" and a["stream"] is True and a["stream_options"] == {"include_usage": True}
    assert a["max_tokens"] == 7 and a["ignore_eos"] is True
    text_a, text_b = a["messages"][0]["content"], b["messages"][0]["content"]
    assert text_a.startswith("req-a ") and text_b.startswith("req-b ")  # no accidental shared prefix
    assert len(text_a.split()) == 20
    comp = decode(W.synthetic(api="completions", model="m", input_tokens=5, output_tokens=2, pool=1).body(0))
    assert "prompt" in comp and "messages" not in comp


def test_synthetic_is_seeded_and_distributions():
    one = W.synthetic(api="chat", model="m", input_tokens=100, output_tokens=50, dist="normal", seed=1, pool=200)
    two = W.synthetic(api="chat", model="m", input_tokens=100, output_tokens=50, dist="normal", seed=1, pool=200)
    other = W.synthetic(api="chat", model="m", input_tokens=100, output_tokens=50, dist="normal", seed=2, pool=200)
    assert [b.render("x") for b in one.bodies] == [b.render("x") for b in two.bodies]
    assert [b.input_tokens for b in one.bodies] != [b.input_tokens for b in other.bodies]
    lens = [b.input_tokens for b in one.bodies]
    assert 90 < sum(lens) / len(lens) < 110 and len(set(lens)) > 10
    uni = W.synthetic(api="chat", model="m", input_tokens=100, output_tokens=50, dist="uniform", spread=0.5,
                      pool=300)
    assert all(50 <= b.input_tokens <= 150 for b in uni.bodies)
    fixed = W.synthetic(api="chat", model="m", input_tokens=64, output_tokens=8, pool=10)
    assert {b.input_tokens for b in fixed.bodies} == {64} and {b.max_tokens for b in fixed.bodies} == {8}
    rng = random.Random(0)
    assert all(W.sample_length(rng, 10, "lognormal", 0.3) >= 1 for _ in range(100))


def test_shared_prefix_properties():
    kw = {"api": "chat", "model": "m", "groups": 3, "prompts_per_group": 4, "system_prompt_len": 30,
          "question_len": 6, "output_tokens": 5}
    wl = W.shared_prefix(seed=7, **kw)
    assert len(wl.bodies) == 12
    by_group: dict[int, list[dict]] = {}
    for i, body in enumerate(wl.bodies):
        by_group.setdefault(body.group, []).append(decode(body, f"q{i}"))
    assert sorted(by_group) == [0, 1, 2] and all(len(v) == 4 for v in by_group.values())
    systems = {g: {d["messages"][0]["content"] for d in docs} for g, docs in by_group.items()}
    assert all(len(s) == 1 for s in systems.values())  # one shared prefix per group
    prefixes = [next(iter(s)) for s in systems.values()]
    assert len(set(prefixes)) == 3
    firsts = [p.split()[0] for p in prefixes]
    assert len(set(firsts)) == 3 and all(f.startswith("grp") for f in firsts)  # unique token leads each group
    assert all(len(p.split()) == 30 for p in prefixes)
    questions = [d["messages"][1]["content"] for docs in by_group.values() for d in docs]
    assert len(set(questions)) == 12 and all(len(q.split()) == 6 for q in questions)
    # deterministic with the seed, different with another seed
    assert [b.render("x") for b in W.shared_prefix(seed=7, **kw).bodies] == [b.render("x") for b in wl.bodies]
    assert W.shared_prefix(seed=8, **kw).bodies[0].render("x") != wl.bodies[0].render("x")
    # requests are interleaved, not grouped back to back
    assert [b.group for b in wl.bodies] != sorted(b.group for b in wl.bodies)
    comp = W.shared_prefix(seed=7, **{**kw, "api": "completions"})
    assert all(decode(b)["prompt"].startswith(W.group_token(7, b.group)) for b in comp.bodies)


def test_file_jsonl_prompts_and_messages(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"prompt": "one two three", "max_tokens": 9}\n\n'
                    '{"messages": [{"role": "user", "content": "hi there"}]}\n')
    wl = W.from_file(str(path), api="chat", model="m", output_tokens=None)
    first, second = decode(wl.body(0)), decode(wl.body(1))
    assert first["messages"] == [{"role": "user", "content": "one two three"}] and first["max_tokens"] == 9
    assert second["messages"][0]["content"] == "hi there" and second["max_tokens"] == 128
    assert wl.body(0).render("a") == wl.body(0).render("b")  # replayed verbatim
    comp = W.from_file(str(path), api="completions", model="m", output_tokens=3)
    assert decode(comp.body(1))["prompt"] == "hi there" and decode(comp.body(0))["max_tokens"] == 3


def test_file_sharegpt_array_and_jsonl(tmp_path):
    items = [{"id": "a", "conversations": [{"from": "human", "value": "What is up?"},
                                           {"from": "gpt", "value": "Not much at all, thanks"}]},
             {"id": "b", "conversations": [{"from": "system", "value": "x"}, {"from": "human", "value": "Hello"}]}]
    arr = tmp_path / "sharegpt.json"
    arr.write_text(json.dumps(items))
    wl = W.from_file(str(arr), api="chat", model="m", output_tokens=None)
    a, b = decode(wl.body(0)), decode(wl.body(1))
    assert a["messages"][0]["content"] == "What is up?" and a["max_tokens"] == 5  # reply length in words
    assert b["messages"][0]["content"] == "Hello" and b["max_tokens"] == 128
    lines = tmp_path / "sharegpt.jsonl"
    lines.write_text("\n".join(json.dumps(i) for i in items))
    assert len(W.from_file(str(lines), api="chat", model="m", output_tokens=2).bodies) == 2


@pytest.mark.parametrize(("content", "needle"), [
    ("{not json}\n", "line 1 is not JSON"),
    ('[{"conversations": "x"}]', "no prompt, messages or ShareGPT"),
    ("[1, 2]", "is not a JSON object"),
    ("", "has no requests"),
])
def test_file_errors(tmp_path, content, needle):
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(ConfigError, match=needle):
        W.from_file(str(path), api="chat", model="m", output_tokens=None)
