"""Load engine over real sockets on 127.0.0.1: client failure classes (F41/F42/F46-F49), loops, bounds, warm-up."""
# The IDs cited here (rule N, F##) are defined in docs/behaviours.md.

from __future__ import annotations

import asyncio
import gc
import itertools
import socket
import time
from time import perf_counter_ns

import pytest

import test_loadgen_server
from llmd.loadgen import workloads
from llmd.loadgen.client import Client, Target, Timeouts
from llmd.loadgen.engine import Progress, Stage, run_stage

pytestmark = pytest.mark.timeout(30)
stream_server = test_loadgen_server.stream_server  # fixture


class EP:  # a llmd.loadgen.endpoint.Endpoint whose URL and generation a test moves
    def __init__(self, url: str, via_port_forward: bool = False) -> None:
        self.url, self.via_port_forward, self.generation = url, via_port_forward, 0
        self.headers: dict[str, str] = {}


def body(api: str = "chat", n: int = 4) -> bytes:
    wl = workloads.synthetic(api=api, model="m", input_tokens=8, output_tokens=n, pool=2)
    return wl.body(0).render("nonce")


def one(url: str, fault: str = "", *, read_s: float = 5.0, total_s: float = 10.0, api: str = "chat"):
    async def go():
        path = "/v1/chat/completions" if api == "chat" else "/v1/completions"
        client = Client(Target(url, path), Timeouts(connect_s=2, read_s=read_s, total_s=total_s))
        hdr = f"x-test: {fault}\r\n".encode() if fault else b""
        try:
            return await client.request(body(api), "rid-1", headers=hdr), client
        finally:
            client.close()
    return asyncio.run(go())


def test_success_timestamps_and_usage(stream_server):
    srv = stream_server(ttft_s=0.05, itl_s=0.01, tokens=5)
    res, _ = one(srv.url)
    assert res.ok and res.failure is None and res.status == 200
    assert res.content_events == 5 and res.usage["completion_tokens"] == 5
    ttft_ms = (res.first_ns - res.sent_ns) / 1e6
    assert 45 <= ttft_ms < 150
    assert len(res.event_ns) == 5 and res.last_ns >= res.first_ns + 35e6  # 4 gaps of ~10 ms
    assert srv.requests[0]["id"] == "rid-1"
    sent = srv.bodies[0]
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}


def test_completions_api(stream_server):
    srv = stream_server(tokens=3)
    res, _ = one(srv.url, api="completions")
    assert res.ok and res.content_events == 3
    assert "/v1/completions" in srv.requests[0]["path"] and "prompt" in srv.bodies[0]


@pytest.mark.parametrize(("fault", "failure", "status"), [
    ("status=503", "http_5xx", 503),          # F41
    ("status=404", "http_4xx", 404),
    ("rate_limit", "http_4xx", 429),          # F42
    ("malformed", "malformed_stream", 200),   # F46 invalid JSON
    ("html", "malformed_stream", 200),        # F50 proxy page with 200
    ("no_choices", "malformed_stream", 200),
    ("error_frame", "stream_error", 200),     # F47
    ("early_close", "truncated", 200),        # F48
    ("no_done", "truncated", 200),
])
def test_failure_classes(stream_server, fault, failure, status):
    srv = stream_server(tokens=4)
    res, _ = one(srv.url, fault)
    assert not res.ok
    assert res.failure == failure, res.error
    assert res.status == status
    assert res.error
    if fault == "rate_limit":
        assert res.retry_after == "2"
    if fault == "error_frame":
        assert "engine died" in res.error
    if fault == "html":
        assert "text/html" in res.error


def test_a_200_that_is_not_an_event_stream_keeps_the_start_of_its_body(stream_server):
    """A proxy's HTML page (or a JSON answer to a streaming request) under status 200: the error names what came."""
    srv = stream_server(tokens=4)
    res, _ = one(srv.url, "html")
    assert res.failure == "malformed_stream"
    assert "body starts b'<html><body>502 Bad Gateway</body></html>'" in res.error


@pytest.mark.parametrize("fault", ["crlf", "split", "close", "no_usage"])
def test_stream_variants_that_succeed(stream_server, fault):
    srv = stream_server(tokens=4)
    res, _ = one(srv.url, fault)
    assert res.ok, res.error
    assert res.content_events == 4


def test_stall_detected_and_reported(stream_server):  # F49
    srv = stream_server(tokens=4)
    t0 = time.monotonic()
    res, _ = one(srv.url, "stall", read_s=0.3, total_s=10)
    assert res.failure == "stalled" and "0.3" in res.error
    assert time.monotonic() - t0 < 3


def test_total_deadline(stream_server):
    srv = stream_server(tokens=50, itl_s=0.02)
    res, _ = one(srv.url, read_s=5, total_s=0.3)
    assert res.failure == "timeout" and "total deadline" in res.error


def test_slow_ttft_is_timeout_not_stall(stream_server):
    srv = stream_server(tokens=2)
    res, _ = one(srv.url, "slow", read_s=0.1, total_s=5)
    assert res.failure == "timeout" and "no first token" in res.error


def test_connect_error_on_closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    res, _ = one(f"http://127.0.0.1:{port}")
    assert res.failure == "connect_error" and str(port) in res.error


def test_keep_alive_reuses_connections(stream_server):
    srv = stream_server(tokens=2)

    async def go():
        client = Client(Target(srv.url, "/v1/chat/completions"), Timeouts())
        for i in range(5):
            assert (await client.request(body(), f"r{i}")).ok
        client.close()
        return client.opened
    assert asyncio.run(go()) == 1
    assert srv.connections == 1


def test_target_paths():
    assert Target("http://h:81", "/v1/completions").path == "/v1/completions"
    assert Target("http://h/v1", "/v1/chat/completions").path == "/v1/chat/completions"
    t = Target("https://gw.example/prefix/", "/v1/completions")
    assert (t.port, t.tls, t.path) == (443, True, "/prefix/v1/completions")
    with pytest.raises(ValueError):
        Target("ftp://x", "/v1/completions")


def stage_run(url, stage, *, tokens_wl=4, stop=None, endpoint=None, t0_ns=None):
    wl = workloads.synthetic(api="chat", model="m", input_tokens=8, output_tokens=tokens_wl, pool=8)

    async def go():
        ev = stop or asyncio.Event()
        return await run_stage(endpoint or EP(url), "/v1/chat/completions", Timeouts(read_s=0.5, total_s=5), wl,
                               stage, run_id="t", seed=1, t0_ns=t0_ns or perf_counter_ns(), progress=Progress(),
                               stop=ev)
    return asyncio.run(go())


def test_closed_loop_request_bound_and_concurrency(stream_server):
    srv = stream_server(ttft_s=0.02, tokens=3)
    run = stage_run(srv.url, Stage("c4", "closed", concurrency=4, requests=20))
    assert len(run.records) == 20 and all(r["ok"] for r in run.records)
    assert run.client_connections == 4
    assert len({r["id"] for r in run.records}) == 20
    # server saw the same ids and every prompt is unique (nonce first)
    assert {r["id"] for r in srv.requests} == {r["id"] for r in run.records}
    prompts = [b["messages"][-1]["content"] for b in srv.bodies]
    assert len(set(prompts)) == 20


def test_closed_loop_duration_bound(stream_server):
    srv = stream_server(ttft_s=0.01, tokens=2)
    t0 = time.monotonic()
    t0_ns = perf_counter_ns()
    run = stage_run(srv.url, Stage("c2", "closed", concurrency=2, duration_s=0.5), t0_ns=t0_ns)
    took = time.monotonic() - t0
    assert 0.45 < took < 2.0
    assert len(run.records) > 10
    # the 0.5 s deadline runs on the stage clock, which may start after the run's t0 (a GC pass in a full suite):
    # no request is claimed later than 0.1 s past it
    deadline_s = (run.measure_start_ns - t0_ns) / 1e9 + 0.5
    assert max(r["scheduled_s"] for r in run.records) < deadline_s + 0.1


def test_warmup_requests_marked_and_not_counted(stream_server):
    srv = stream_server(ttft_s=0.02, tokens=2)
    run = stage_run(srv.url, Stage("c2", "closed", concurrency=2, requests=6, warmup_s=0.2))
    warm = [r for r in run.records if r["warmup"]]
    measured = [r for r in run.records if not r["warmup"]]
    assert warm and len(measured) == 6
    # warm-up ends 200 ms after the stage's own start (which may lag the run's t0 by a GC pass): every
    # warm-up request was claimed before every measured one
    assert run.measure_start_ns - run.start_ns == 200_000_000
    assert max(r["scheduled_s"] for r in warm) < min(r["scheduled_s"] for r in measured)


def test_open_loop_constant_rate(stream_server):
    srv = stream_server(ttft_s=0.005, tokens=2)
    run = stage_run(srv.url, Stage("r50", "open", rate=50, duration_s=0.6))
    n = len(run.records)
    assert 27 <= n <= 32  # 0.6 s at 50/s
    starts = sorted(r["scheduled_s"] for r in run.records)
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert all(abs(g - 0.02) < 0.002 for g in gaps)  # scheduled times are exact; lateness is queue delay


def test_open_loop_poisson_seeded_and_queue_delay_under_cap(stream_server):
    srv = stream_server(ttft_s=0.1, tokens=2)
    stage = Stage("r40", "open", rate=40, arrival="poisson", requests=12, max_inflight=2)
    run = stage_run(srv.url, stage)
    assert len(run.records) == 12 and all(r["ok"] for r in run.records)
    # only 2 in flight at ~100 ms each: later arrivals wait for a slot, which is client queue delay, not TTFT
    assert max(r["queue_ms"] for r in run.records) > 100
    assert max(r["ttft_ms"] for r in run.records) < 250
    again = stage_run(srv.url, stage)
    assert [r["scheduled_s"] for r in run.records][:3] != [] and len(again.records) == 12


def test_failures_release_slots(stream_server):  # F49: stalled requests give their slot back
    srv = stream_server(tokens=3, fault="stall")
    t0 = time.monotonic()
    run = stage_run(srv.url, Stage("c2", "closed", concurrency=2, requests=4))
    assert [r["failure"] for r in run.records] == ["stalled"] * 4
    assert time.monotonic() - t0 < 3  # 2 rounds of 0.5 s stall timeouts, not a hang


def test_stop_drains_then_cancels(stream_server):
    srv = stream_server(tokens=3, fault="stall")  # never completes by itself

    async def go():
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(0.1, stop.set)
        wl = workloads.synthetic(api="chat", model="m", input_tokens=8, output_tokens=3, pool=2)
        return await run_stage(EP(srv.url), "/v1/chat/completions", Timeouts(read_s=30, total_s=60), wl,
                               Stage("c3", "closed", concurrency=3, duration_s=30), run_id="t", seed=0,
                               t0_ns=perf_counter_ns(), progress=Progress(), stop=stop)
    t0 = time.monotonic()
    run = asyncio.run(go())
    assert run.interrupted and run.cancelled == 3 and run.records == []
    assert 2.0 <= time.monotonic() - t0 < 4  # the 2 s drain, then cancellation


def test_tunnel_lost_classification():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    run = stage_run(f"http://127.0.0.1:{port}", Stage("c1", "closed", concurrency=1, requests=2),
                    endpoint=EP(f"http://127.0.0.1:{port}", via_port_forward=True))
    assert [r["failure"] for r in run.records] == ["tunnel_lost", "tunnel_lost"]


def test_tunnel_restart_mid_request_counts_as_tunnel_lost(stream_server):  # F37
    import threading

    old = stream_server(ttft_s=0.3, tokens=3, fault="early_close")
    new = stream_server(tokens=2)
    ep = EP(old.url, via_port_forward=True)

    def restart():
        # the tunnel restarts while the first request is in flight (the old server answers after 0.3 s): keyed on
        # its arrival, not on a wall-clock delay, because the engine's pre-stage GC pass can take longer than that
        # delay in a full test session
        deadline = time.monotonic() + 5
        while not old.requests and time.monotonic() < deadline:
            time.sleep(0.002)
        ep.url, ep.generation = new.url, 1

    restarter = threading.Thread(target=restart, daemon=True)
    restarter.start()
    run = stage_run(old.url, Stage("c1", "closed", concurrency=1, requests=2), endpoint=ep)
    restarter.join(5)
    assert [r["failure"] for r in run.records] == ["tunnel_lost", None]
    assert len(old.requests) == 1 and len(new.requests) == 1  # the next request went to the new local port


def test_open_loop_first_arrival_not_late_by_stage_setup(stream_server):
    # the engine collects garbage before a stage; that pause must not count as the first arrival's queue delay
    srv = stream_server(ttft_s=0.005, tokens=2)
    heap = [[i] for i in range(400_000)]  # live objects that make gc.collect() take tens of ms
    t0 = time.perf_counter()
    gc.collect()
    pause_ms = (time.perf_counter() - t0) * 1000
    run = stage_run(srv.url, Stage("r20", "open", rate=20, requests=2))
    del heap
    first = min(run.records, key=lambda r: r["scheduled_s"])
    assert pause_ms > 10, "the heap is too small to show the bug on this machine"
    assert first["queue_ms"] < pause_ms / 2, (first["queue_ms"], pause_ms)


def test_aligned_start_marks_nothing_as_warmup(stream_server):
    # worker processes start a stage at a shared future instant; uvloop's millisecond timers wake a sleep up to
    # 1 ms early, and requests claimed in that sliver were recorded as warm-up (excluded) with no --warmup at all
    from llmd.loadgen.loop import run as loop_run

    srv = stream_server(tokens=2)
    wl = workloads.synthetic(api="chat", model="m", input_tokens=8, output_tokens=2, pool=8)

    async def go():
        start = perf_counter_ns() + 20_370_000
        return await run_stage(EP(srv.url), "/v1/chat/completions", Timeouts(read_s=2, total_s=5), wl,
                               Stage("c2", "closed", concurrency=2, requests=2), run_id="t", seed=1,
                               t0_ns=perf_counter_ns(), progress=Progress(), stop=asyncio.Event(), start_ns=start)
    for _ in range(5):
        run = loop_run(go())
        assert [r["warmup"] for r in run.records] == [False, False]
