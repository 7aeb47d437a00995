"""The simulator over real sockets on 127.0.0.1 (httpx client): endpoints, streaming, usage,
queueing, KV cache, context length, records, determinism, timing."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import socket
import statistics
import time

import httpx
import pytest

from llmd.sim.config import SimConfig
from llmd.sim.server import run_in_thread

MSGS = [{"role": "user", "content": "Tell me about schedulers."}]


@pytest.fixture
def sim():
    started = []

    def start(**kw):
        handle = run_in_thread(SimConfig(port=0, **kw))
        started.append(handle)
        return handle

    yield start
    for handle in started:
        handle.stop()


def sse_data(raw: bytes) -> list[str]:
    """The payloads of the `data:` lines of an SSE body (LF or CRLF)."""
    text = raw.decode().replace("\r\n", "\n")
    return [block[6:] for block in text.split("\n\n") if block.startswith("data: ")]


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in /metrics")


def test_models_health_and_metrics(sim):
    h = sim(model="qwen", served_model_names=("qwen", "alias"), max_model_len=2048, kv_cache_size=300,
            block_size=32)
    with httpx.Client(base_url=h.url, timeout=5) as c:
        models = c.get("/v1/models").json()
        assert [m["id"] for m in models["data"]] == ["qwen", "alias"]
        assert models["data"][0]["max_model_len"] == 2048
        assert c.get("/health").status_code == 200 and c.get("/ready").status_code == 200
        r = c.post("/v1/chat/completions", json={"model": "alias", "messages": MSGS, "max_tokens": 2,
                                                 "ignore_eos": True})
        assert r.json()["model"] == "alias"  # response model = the served name asked for
        text = c.get("/metrics").text
    for name in ("vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:kv_cache_usage_perc",
                 "vllm:prefix_cache_hits", "vllm:prefix_cache_queries", "vllm:generation_tokens_total"):
        metric(text, name)
    assert 'vllm:cache_config_info{block_size="32",num_gpu_blocks="300"} 1' in text
    assert 'vllm:request_success_total{model_name="qwen",finished_reason="length"} 1' in text
    assert metric(text, "vllm:generation_tokens_total") == 2
    assert 'vllm:time_to_first_token_seconds_count{model_name="qwen"} 1' in text


def test_chat_non_stream_usage_request_id_and_ignore_eos(sim):
    h = sim(output_len=3)
    with httpx.Client(base_url=h.url, timeout=5) as c:
        r = c.post("/v1/chat/completions", headers={"x-request-id": "req-42"},
                   json={"model": "random", "messages": MSGS, "max_tokens": 7, "ignore_eos": True})
        short = c.post("/v1/chat/completions", json={"messages": MSGS, "max_tokens": 7}).json()
        capped = c.post("/v1/chat/completions", json={"messages": MSGS, "max_completion_tokens": 2}).json()
    assert r.status_code == 200 and r.headers["x-request-id"] == "req-42"
    body = r.json()
    assert body["id"] == "chatcmpl-req-42" and body["object"] == "chat.completion" and body["model"] == "random"
    choice = body["choices"][0]
    assert choice["finish_reason"] == "length" and choice["message"]["role"] == "assistant"
    # "### user:\nTell me about schedulers.\n" -> ### / user / : / Tell / me / about / schedulers / . = 10 tokens
    assert body["usage"] == {"prompt_tokens": 10, "completion_tokens": 7, "total_tokens": 17,
                             "prompt_tokens_details": {"cached_tokens": 0}}
    assert short["usage"]["completion_tokens"] == 3 and short["choices"][0]["finish_reason"] == "stop"
    assert capped["usage"]["completion_tokens"] == 2 and capped["choices"][0]["finish_reason"] == "length"


def test_completions_stream_with_usage_chunk_and_done(sim):
    h = sim()
    with httpx.Client(base_url=h.url, timeout=5) as c:
        r = c.post("/v1/completions", json={"prompt": "Once upon a time", "max_tokens": 6, "ignore_eos": True,
                                            "stream": True, "stream_options": {"include_usage": True}})
        plain = c.post("/v1/completions", json={"prompt": "x", "max_tokens": 2, "stream": True})
    assert r.headers["content-type"].startswith("text/event-stream")
    assert r.headers["transfer-encoding"] == "chunked"
    data = sse_data(r.content)
    assert data[-1] == "[DONE]"
    frames = [json.loads(d) for d in data[:-1]]
    assert all(f["object"] == "text_completion" and f["model"] == "random" for f in frames)
    texts = [f["choices"][0]["text"] for f in frames[:-2]]
    assert len(texts) == 6 and all(texts)
    assert frames[-2]["choices"][0]["finish_reason"] == "length"
    assert frames[-1]["choices"] == [] and frames[-1]["usage"]["completion_tokens"] == 6
    assert frames[-1]["usage"]["prompt_tokens"] == 4
    assert all("usage" not in json.loads(d) for d in sse_data(plain.content)[:-1])  # no usage unless asked


def test_chat_stream_role_first_then_content(sim):
    h = sim(output_len=4)
    with httpx.Client(base_url=h.url, timeout=5) as c:
        r = c.post("/v1/chat/completions", json={"messages": MSGS, "stream": True})
    frames = [json.loads(d) for d in sse_data(r.content)[:-1]]
    assert frames[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert [f["choices"][0]["delta"].get("content") for f in frames[1:5]] != [None] * 4
    assert frames[-1]["choices"][0] == {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}
    assert {f["id"] for f in frames} == {frames[0]["id"]} and frames[0]["id"].startswith("chatcmpl-")


def test_bad_requests_are_answered_cleanly(sim):
    h = sim(max_model_len=20)
    with httpx.Client(base_url=h.url, timeout=5) as c:
        assert c.post("/v1/chat/completions", content=b"{not json").status_code == 400
        assert c.post("/v1/chat/completions", json={"messages": []}).status_code == 400
        assert c.post("/v1/completions", json={"prompt": 5}).status_code == 400
        assert c.post("/v1/completions", json={"prompt": "a", "max_tokens": 0}).status_code == 400
        assert c.post("/v1/completions", json={"prompt": "a", "max_tokens": True}).status_code == 400
        assert c.post("/v1/completions", json={"prompt": "a", "model": ["x"]}).status_code == 400
        assert c.post("/v1/completions", json=["a"]).status_code == 400
        r = c.post("/v1/completions", json={"model": "gpt-9", "prompt": "a"})
        assert r.status_code == 404 and "gpt-9" in r.json()["error"]["message"]
        assert c.get("/v1/completions").status_code == 405
        assert c.post("/metrics").status_code == 405 and c.delete("/v2/x").status_code == 404
        assert c.get("/nope").status_code == 404
        r = c.post("/v1/completions", json={"prompt": "one two three four five six", "max_tokens": 16})
        assert c.get("/health").status_code == 200  # the connection survived every error
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["code"] == 400 and err["type"] == "BadRequestError"
    assert err["message"].startswith("This model's maximum context length is 20 tokens. However, you requested "
                                     "22 tokens (6 in the prompt, 16 in the completion).")


def test_keep_alive_pipelining_answers_in_order(sim):
    h = sim(output_len=2)
    body = json.dumps({"prompt": "hi", "max_tokens": 2}).encode()
    req = b"POST /v1/completions HTTP/1.1\r\nhost: x\r\ncontent-length: %d\r\nx-request-id: %s\r\n\r\n%s"
    with socket.create_connection(("127.0.0.1", h.port), timeout=5) as s:
        s.sendall(req % (len(body), b"p1", body) + req % (len(body), b"p2", body) + b"GET /health HTTP/1.1\r\n\r\n")
        data = b""
        while data.count(b"HTTP/1.1 200") < 3:
            data += s.recv(65536)
    assert data.index(b"x-request-id: p1") < data.index(b"x-request-id: p2")


def test_expect_100_continue_like_curl(sim):
    h = sim(output_len=1)
    body = json.dumps({"prompt": "x " * 600}).encode()
    with socket.create_connection(("127.0.0.1", h.port), timeout=5) as s:
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nhost: x\r\nexpect: 100-continue\r\ncontent-length: %d\r\n\r\n"
                  % len(body))
        assert s.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        s.sendall(body)
        data = s.recv(65536)
    assert data.startswith(b"HTTP/1.1 200 OK") and b'"prompt_tokens":600' in data


def test_queueing_beyond_max_num_seqs(sim):
    h = sim(max_num_seqs=1, ttft=0.3, output_len=1)

    async def scenario():
        async with httpx.AsyncClient(base_url=h.url, timeout=5) as c:
            t0 = time.perf_counter()
            first = asyncio.create_task(c.post("/v1/completions", json={"prompt": "a"}))
            await asyncio.sleep(0.05)
            second = asyncio.create_task(c.post("/v1/completions", json={"prompt": "b"}))
            await asyncio.sleep(0.1)
            during = (await c.get("/metrics")).text
            r1 = await first
            t1 = time.perf_counter() - t0
            r2 = await second
            t2 = time.perf_counter() - t0
            after = (await c.get("/metrics")).text
            return during, after, r1, r2, t1, t2

    during, after, r1, r2, t1, t2 = asyncio.run(scenario())
    assert r1.status_code == r2.status_code == 200
    assert metric(during, "vllm:num_requests_running") == 1 and metric(during, "vllm:num_requests_waiting") == 1
    assert metric(after, "vllm:num_requests_running") == 0 and metric(after, "vllm:num_requests_waiting") == 0
    assert 0.28 < t1 < 0.5 and t2 > 0.58  # the second waited for the first's slot, then had its own TTFT


def test_queue_full_answers_429(sim):
    h = sim(max_num_seqs=1, max_waiting=0, ttft=0.3, output_len=1)

    async def scenario():
        async with httpx.AsyncClient(base_url=h.url, timeout=5) as c:
            first = asyncio.create_task(c.post("/v1/completions", json={"prompt": "a"}))
            await asyncio.sleep(0.05)
            second = await c.post("/v1/completions", json={"prompt": "b"})
            return await first, second

    first, second = asyncio.run(scenario())
    assert first.status_code == 200
    assert second.status_code == 429 and second.json()["error"]["message"] == "waiting requests queue is full"


def test_kv_cache_prefix_hits_cached_tokens_and_usage(sim):
    h = sim(enable_kvcache=True, block_size=16, kv_cache_size=64, output_len=2, ttft=0.2)
    shared = "word " * 40  # 40 tokens of shared prefix
    async def scenario():
        async with httpx.AsyncClient(base_url=h.url, timeout=5) as c:
            r1 = (await c.post("/v1/completions", json={"prompt": shared + "alpha beta"})).json()
            task = asyncio.create_task(c.post("/v1/completions", json={"prompt": shared + "gamma delta"}))
            await asyncio.sleep(0.1)
            during = (await c.get("/metrics")).text
            r2 = (await task).json()
            after = (await c.get("/metrics")).text
            return r1, r2, during, after

    r1, r2, during, after = asyncio.run(scenario())
    assert r1["usage"]["prompt_tokens"] == 42 and r1["usage"]["prompt_tokens_details"]["cached_tokens"] == 0
    assert r2["usage"]["prompt_tokens_details"]["cached_tokens"] == 32  # two full shared blocks of 16
    assert metric(during, "vllm:kv_cache_usage_perc") == pytest.approx(2 / 64)  # pinned blocks only
    assert metric(after, "vllm:kv_cache_usage_perc") == 0.0  # idle cached blocks do not count
    assert metric(after, "vllm:prefix_cache_queries") == 84 and metric(after, "vllm:prefix_cache_hits") == 32


def test_kv_cache_overflow_answers_500(sim):
    h = sim(enable_kvcache=True, block_size=8, kv_cache_size=2)
    with httpx.Client(base_url=h.url, timeout=5) as c:
        r = c.post("/v1/completions", json={"prompt": "w " * 30, "max_tokens": 1})
        ok = c.post("/v1/completions", json={"prompt": "w " * 10, "max_tokens": 1})
        text = c.get("/metrics").text
    assert r.status_code == 500 and "sufficient capacity" in r.json()["error"]["message"]
    assert ok.status_code == 200 and metric(text, "vllm:num_requests_running") == 0  # no gauge leak


def test_seed_makes_output_deterministic(sim):
    outputs = []
    for _ in range(2):
        h = sim(seed=7)
        with httpx.Client(base_url=h.url, timeout=5) as c:
            outputs.append([c.post("/v1/completions", json={"prompt": "x", "max_tokens": 50}).json()["choices"][0]
                            for _ in range(3)])
    assert outputs[0] == outputs[1]
    assert len({o["text"] for o in outputs[0]}) > 1


def test_client_disconnect_frees_slot(sim):
    h = sim(max_num_seqs=1, ttft=0.01, itl=0.05, output_len=100)
    with httpx.Client(base_url=h.url, timeout=5) as c:
        with c.stream("POST", "/v1/completions", json={"prompt": "a", "stream": True}) as r:
            next(r.iter_raw())
        deadline = time.monotonic() + 2
        while metric(c.get("/metrics").text, "vllm:num_requests_running") != 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert metric(c.get("/metrics").text, "vllm:num_requests_running") == 0
        assert c.post("/v1/completions", json={"prompt": "b", "max_tokens": 1}).status_code == 200


def test_record_and_token_timing(sim, tmp_path):
    """TTFT 50 ms / ITL 10 ms land within a few ms, by the sim's own records and by the client's clock."""
    path = tmp_path / "rec.jsonl"
    h = sim(ttft=0.05, itl=0.01, output_len=8, record=str(path))
    client_ttft, client_gaps = [], []
    with httpx.Client(base_url=h.url, timeout=5) as c:
        for i in range(4):
            t0 = time.perf_counter()
            stamps = []
            with c.stream("POST", "/v1/chat/completions", headers={"x-request-id": f"t{i}"},
                          json={"messages": MSGS, "stream": True}) as r:
                for chunk in r.iter_raw():
                    if re.search(rb'"content":"[^"]', chunk):  # a token (the role frame has content "")
                        stamps.append(time.perf_counter())
            client_ttft.append(stamps[0] - t0)
            client_gaps += [b - a for a, b in itertools.pairwise(stamps)]
        c.post("/v1/completions", json={"prompt": "x", "max_tokens": 1}, headers={"x-llmd-fault": "status=503"})
    h.stop()
    recs = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["id"] for r in recs[:4]] == ["t0", "t1", "t2", "t3"]
    assert recs[4]["status"] == 503 and recs[4]["fault"] == "status" and recs[4]["first_token_ns"] is None
    ttfts = [(r["first_token_ns"] - r["recv_ns"]) / 1e6 for r in recs[:4]]
    gaps = [(b - a) / 1e6 for r in recs[:4] for a, b in itertools.pairwise(r["token_ns"])]
    assert all(r["n_tokens"] == 8 and len(r["token_ns"]) == 8 and r["path"] == "/v1/chat/completions"
               for r in recs[:4])
    assert all(r["last_token_ns"] == r["token_ns"][-1] for r in recs[:4])
    assert 49.5 < statistics.median(ttfts) < 54, ttfts
    assert 9.5 < statistics.median(gaps) < 12.5, gaps
    # the client's clock adds its own overhead (httpx, a shared CPU): looser bounds than the records
    assert 49 < statistics.median(client_ttft) * 1000 < 62
    assert 7 < statistics.median(client_gaps) * 1000 < 14
    # absolute deadlines: the last token is at TTFT + 7 ITL from the start, without accumulated drift
    spans = [(r["last_token_ns"] - r["recv_ns"]) / 1e6 for r in recs[:4]]
    assert 119.5 < statistics.median(spans) < 125, spans
