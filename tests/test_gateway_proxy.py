"""The gateway as a proxy, in-process on 127.0.0.1: streaming pass-through, keep-alive reuse, admin routes, failure
classes, and a dead replica dropped from the pool within one scrape."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import httpx
import pytest

from llmd.gateway import scrape
from llmd.gateway.proxy import Gateway, start
from llmd.render.epp import epp_config
from llmd.sim.config import SimConfig
from llmd.sim.server import run_in_thread

pytestmark = pytest.mark.timeout(30)


class ThreadedGateway:
    def __init__(self, replicas: list[str], profile: str = "default", interval: float = 0.05) -> None:
        self.loop = asyncio.new_event_loop()
        self.gw = Gateway(replicas, epp_config(profile), profile=profile, scrape_interval=interval, seed=1)
        ready = threading.Event()

        def main() -> None:
            asyncio.set_event_loop(self.loop)
            self.server = self.loop.run_until_complete(start(self.gw))
            ready.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=main, daemon=True)
        self.thread.start()
        assert ready.wait(10)
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    def stop(self) -> None:
        async def halt() -> None:
            self.server.close()
            await self.gw.close()
            self.loop.stop()

        asyncio.run_coroutine_threadsafe(halt(), self.loop)
        self.thread.join(5)


@pytest.fixture
def pool():
    sims = [run_in_thread(SimConfig(port=0, itl=0.002, enable_kvcache=True, seed=i, output_len=8)) for i in range(2)]
    gw = ThreadedGateway([s.url for s in sims])
    yield sims, gw
    gw.stop()
    for s in sims:
        s.stop()


def chat(url: str, content: str, stream: bool = True, **extra) -> httpx.Response:
    body = {"model": "random", "messages": [{"role": "user", "content": content}], "max_tokens": 8,
            "stream": stream, **extra}
    return httpx.post(url + "/v1/chat/completions", json=body, timeout=10)


def test_metrics_gauge_parsing():
    text = (b'# HELP x\nvllm:num_requests_waiting{model_name="m"} 3\nvllm:num_requests_running{model_name="m"} 2.0\n'
            b'vllm:kv_cache_usage_perc{model_name="m"} 0.25\n'
            b'vllm:cache_config_info{block_size="16",num_gpu_blocks="512"} 1\n')
    ep = scrape.Endpoint("a", "http://a")
    scrape.apply_metrics(ep, text)
    assert (ep.waiting, ep.running, ep.kv_usage, ep.block_size, ep.num_gpu_blocks) == (3, 2, 0.25, 16, 512)
    assert scrape.gauge(b"plain 7\n", b"plain") == 7.0
    assert scrape.gauge(b"other 1\n", b"plain") is None


def test_streams_through_and_reuses_upstream_connections(pool):
    _, gw = pool
    prompt = "the shared system prompt " * 40
    seen = set()
    with httpx.Client(timeout=10) as c:
        for i in range(6):
            body = {"model": "random", "messages": [{"role": "system", "content": prompt},
                                                    {"role": "user", "content": f"q{i}"}],
                    "max_tokens": 8, "stream": True, "stream_options": {"include_usage": True}}
            with c.stream("POST", gw.url + "/v1/chat/completions", json=body) as r:
                assert r.status_code == 200
                lines = [ln for ln in r.iter_lines() if ln.startswith("data:")]
                seen.add(r.headers["x-llmd-endpoint"])
            assert lines[-1] == "data: [DONE]" and len(lines) >= 9
        unary = c.post(gw.url + "/v1/completions", json={"model": "random", "prompt": "hi", "max_tokens": 3})
        assert unary.status_code == 200 and unary.json()["choices"]
        assert c.get(gw.url + "/v1/models").json()["data"][0]["id"] == "random"
    assert len(seen) == 1  # the prefix scorer learned where the shared prompt went
    assert sum(len(v) for v in gw.gw.idle.values()) <= 2  # keep-alive: connections reused, not one per request
    state = httpx.get(gw.url + "/llmd/gateway").json()
    assert state["profile"] == "default" and state["failures"] == {}
    assert sum(e["picks"] for e in state["endpoints"]) == 7  # scheduled: 6 chats + 1 completion, not /v1/models
    assert state["scheduling"]["recent"] == 7 and state["scheduling"]["mean_ms"] > 0


def test_bad_requests_and_scheduler_swap(pool):
    _, gw = pool
    r = httpx.post(gw.url + "/v1/chat/completions", content=b"{not json", timeout=5)
    assert r.status_code == 400
    r = httpx.post(gw.url + "/v1/chat/completions", json={"messages": []}, timeout=5)
    assert r.status_code == 400 and "model" in r.json()["error"]["message"]
    r = httpx.put(gw.url + "/llmd/scheduler", json={"profile": "random", "config": epp_config("random")}, timeout=5)
    assert r.status_code == 200 and r.json()["profile"] == "random" and "random-picker" in r.json()["scheduler"]
    bad = epp_config("random")
    bad["plugins"][0]["type"] = "kv-cache-scorer"
    r = httpx.put(gw.url + "/llmd/scheduler", json={"profile": "x", "config": bad}, timeout=5)
    assert r.status_code == 400 and "kv-cache-utilization-scorer" in r.text
    assert httpx.get(gw.url + "/llmd/gateway").json()["profile"] == "random"  # the old one stays


def test_dead_replica_leaves_the_pool_within_one_scrape(pool):
    sims, gw = pool
    assert chat(gw.url, "warm up").status_code == 200
    sims[0].stop()
    time.sleep(0.2)  # a few 50 ms scrapes
    state = httpx.get(gw.url + "/llmd/gateway").json()
    dead = sims[0].url.removeprefix("http://")
    assert [e["ready"] for e in state["endpoints"] if e["name"] == dead] == [False]
    for i in range(10):
        r = chat(gw.url, f"after {i}")
        assert r.status_code == 200 and r.headers["x-llmd-endpoint"] != dead
    sims[1].stop()
    time.sleep(0.2)
    r = chat(gw.url, "nobody left")
    assert r.status_code == 503 and "no ready endpoint" in r.text
    assert json.loads(httpx.get(gw.url + "/llmd/gateway").text)["failures"]["no_endpoint"] == 1


def test_replica_dying_mid_stream_cuts_the_client_and_counts_the_failure(pool):
    sims, gw = pool
    # a stalled stream on whichever replica is picked, then that replica goes away under it
    with httpx.Client(timeout=10) as c, c.stream("POST", gw.url + "/v1/chat/completions", json={
            "model": "random", "messages": [{"role": "user", "content": "x"}], "max_tokens": 8, "stream": True},
            headers={"x-llmd-fault": "stall=2"}) as r:
        assert r.status_code == 200
        name = r.headers["x-llmd-endpoint"]
        victim = next(s for s in sims if s.url.endswith(name.split(":")[1]))
        victim.stop()
        with pytest.raises(httpx.RemoteProtocolError):
            for _ in r.iter_lines():
                pass
    state = httpx.get(gw.url + "/llmd/gateway").json()
    assert state["failures"] == {"upstream_reset": 1}


def test_precise_prefix_profile_follows_the_replicas_kv_events(pool):
    _, gw = pool
    r = httpx.put(gw.url + "/llmd/scheduler",
                  json={"profile": "precise-prefix", "config": epp_config("precise-prefix", "random")}, timeout=5)
    assert r.status_code == 200, r.text
    prompt = "a long shared system prompt with many words in it " * 10
    first = chat(gw.url, prompt + "first").headers["x-llmd-endpoint"]
    time.sleep(0.2)  # the next scrapes carry the replica's BlockStored events
    assert all(s.kv_seq > 0 for s in gw.gw.scrapers if s.ep.name == first)
    seen = {chat(gw.url, prompt + f"q{i}").headers["x-llmd-endpoint"] for i in range(5)}
    assert seen == {first}


class BrokenReplica:
    """A replica on 127.0.0.1 whose /metrics is fine and whose generation answers break HTTP/1.1 framing."""

    METRICS = b'vllm:num_requests_waiting{model_name="m"} 0\n'

    def __init__(self, answer: bytes) -> None:
        import socket

        self.answer = answer
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._conn, args=(conn,), daemon=True).start()

    def _conn(self, conn) -> None:
        conn.settimeout(5)
        buf = b""
        with conn:
            try:
                while True:
                    while b"\r\n\r\n" not in buf:
                        data = conn.recv(65536)
                        if not data:
                            return
                        buf += data
                    head, _, buf = buf.partition(b"\r\n\r\n")
                    length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                                   if line.lower().startswith(b"content-length:")), 0)
                    while len(buf) < length:
                        buf += conn.recv(65536)
                    buf = buf[length:]
                    if head.startswith(b"GET /metrics"):
                        conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s"
                                     % (len(self.METRICS), self.METRICS))
                    else:
                        conn.sendall(self.answer)
            except OSError:
                return

    def stop(self) -> None:
        self.sock.close()


@pytest.mark.parametrize(("answer", "cut"), [
    # headers went out, then the chunk framing broke: the client connection is cut (nothing can delimit the rest)
    (b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
     b"6\r\ndata: \r\nzz\r\n", True),
    # broken before any byte went out: a 502 that says why
    (b"HTTP/1.1 200 OK\r\ncontent-length: ten\r\n\r\n", False),
])
def test_a_replica_breaking_http_framing_gets_a_502_or_a_cut_never_a_hang(answer, cut):
    replica = BrokenReplica(answer)
    gw = ThreadedGateway([replica.url])
    try:
        deadline = time.monotonic() + 5
        while not httpx.get(gw.url + "/llmd/gateway").json()["endpoints"][0]["ready"]:
            assert time.monotonic() < deadline, "the replica's /metrics was never scraped"
            time.sleep(0.05)
        for _ in range(2):  # and again: the broken upstream connection was dropped, not pooled
            if cut:
                with pytest.raises(httpx.RemoteProtocolError):
                    chat(gw.url, "x")
            else:
                r = chat(gw.url, "x")
                assert r.status_code == 502 and "invalid Content-Length" in r.text, r.text
        assert httpx.get(gw.url + "/llmd/gateway").json()["failures"] == {"upstream_framing": 2}
    finally:
        gw.stop()
        replica.stop()
