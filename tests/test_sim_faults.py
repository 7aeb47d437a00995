"""Every fault kind of the simulator, observed on the wire (docs/behaviours.md rows F40-F50)."""
# The IDs cited here (rule N, F##) are defined in docs/behaviours.md.

from __future__ import annotations

import json
import socket
import time

import httpx
import pytest

from llmd.sim.config import FaultSpec, SimConfig
from llmd.sim.server import run_in_thread

STREAM = {"prompt": "Why test?", "max_tokens": 6, "ignore_eos": True, "stream": True}
UNARY = {"prompt": "Why test?", "max_tokens": 6, "ignore_eos": True}


@pytest.fixture(scope="module")
def sim():
    handle = run_in_thread(SimConfig(port=0, stall_cap=0.4))
    yield handle
    handle.stop()


@pytest.fixture
def client(sim):
    with httpx.Client(base_url=sim.url, timeout=5) as c:
        yield c


def faulty(client, fault: str, body: dict, path: str = "/v1/completions") -> httpx.Response:
    return client.post(path, json=body, headers={"x-llmd-fault": fault})


def data_lines(raw: bytes) -> list[bytes]:
    return [block[6:] for block in raw.replace(b"\r\n", b"\n").split(b"\n\n") if block.startswith(b"data: ")]


def running(client) -> float:
    line = next(x for x in client.get("/metrics").text.splitlines() if x.startswith("vllm:num_requests_running{"))
    return float(line.rsplit(" ", 1)[1])


@pytest.mark.parametrize(("fault", "status", "ctype", "body"), [
    ("status=503", 503, "text/plain", b"no healthy upstream"),  # F40/F41: Envoy without endpoints
    ("status=500", 500, "text/plain", b"fault filter abort"),  # F44
    ("status=404", 404, "text/plain", b""),  # F43: no route
    ("html_200", 200, "text/html", b"<html><head><title>502 Bad Gateway"),  # F50: proxy page with 200
])
def test_status_like_faults(client, fault, status, ctype, body):
    r = faulty(client, fault, STREAM)
    assert r.status_code == status and r.headers["content-type"].startswith(ctype)
    assert r.content.startswith(body) and (body or r.content == b"")


def test_status_400_and_rate_limit_are_json_errors(client):
    r = faulty(client, "status=400", UNARY)
    assert r.status_code == 400 and r.json()["error"]["code"] == 400
    r = faulty(client, "rate_limit", UNARY)  # F42
    assert r.status_code == 429 and r.headers["retry-after"] == "2" and r.json()["error"]["type"] == "RateLimitError"
    assert faulty(client, "rate_limit=7", UNARY).headers["retry-after"] == "7"


def test_context_length_fault_and_bad_fault_header(client):
    r = faulty(client, "context_length", UNARY)  # F45
    assert r.status_code == 400 and "maximum context length is 1024 tokens" in r.json()["error"]["message"]
    r = faulty(client, "explode", UNARY)
    assert r.status_code == 400 and "unknown fault kind 'explode'" in r.json()["error"]["message"]


def test_no_choices(client):
    r = faulty(client, "no_choices", UNARY)
    assert r.status_code == 200 and "choices" not in r.json() and r.json()["usage"]["prompt_tokens"] == 3


def test_error_frame_inside_200_stream(client):
    r = faulty(client, "error_frame=2", STREAM)  # F47
    assert r.status_code == 200
    lines = data_lines(r.content)
    assert lines[-1] == b"[DONE]"
    frames = [json.loads(x) for x in lines[:-1]]
    assert [f["choices"][0]["text"] != "" for f in frames[:2]] == [True, True]
    assert frames[2]["error"]["code"] == 500 and len(frames) == 3
    assert all(f.get("choices", [{}])[0].get("finish_reason") is None for f in frames)
    assert faulty(client, "error_frame", UNARY).status_code == 500


def test_early_close_truncates_chunked_stream(client):
    got = b""
    with pytest.raises(httpx.RemoteProtocolError):  # F48: incomplete chunked read
        with client.stream("POST", "/v1/completions", json=STREAM, headers={"x-llmd-fault": "early_close=3"}) as r:
            assert r.status_code == 200
            for part in r.iter_raw():
                got += part
    lines = data_lines(got)
    assert len(lines) == 3 and b"[DONE]" not in got and b'"finish_reason":"' not in got
    with pytest.raises(httpx.RemoteProtocolError):
        faulty(client, "early_close", UNARY)


def test_stall_keeps_connection_open_until_client_leaves(sim, client):
    got = b""
    t0 = time.monotonic()
    with httpx.Client(base_url=sim.url, timeout=httpx.Timeout(5, read=0.15)) as short:
        with pytest.raises(httpx.ReadTimeout):  # F49: no bytes for longer than the read timeout
            with short.stream("POST", "/v1/completions", json=STREAM, headers={"x-llmd-fault": "stall=1"}) as r:
                for part in r.iter_raw():
                    got += part
    assert len(data_lines(got)) == 1 and time.monotonic() - t0 < 0.4
    deadline = time.monotonic() + 2
    while running(client) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert running(client) == 0  # the stalled request let go of its slot when the client left


def test_stall_gives_up_at_the_cap(client):
    t0 = time.monotonic()
    with pytest.raises(httpx.RemoteProtocolError):
        faulty(client, "stall=2", STREAM).read()
    assert 0.35 < time.monotonic() - t0 < 2  # stall_cap=0.4 s: the server closes the connection
    with pytest.raises(httpx.RemoteProtocolError):
        faulty(client, "stall", UNARY)


def test_malformed_frame_then_normal_end(client):
    lines = data_lines(faulty(client, "malformed_frame=2", STREAM).content)  # F46
    assert lines[-1] == b"[DONE]"
    bad = []
    for x in lines[:-1]:
        try:
            json.loads(x)
        except ValueError:
            bad.append(x)
    assert len(bad) == 1 and lines.index(bad[0]) == 2
    assert json.loads(lines[-2])["choices"][0]["finish_reason"] == "length"
    with pytest.raises(ValueError):
        faulty(client, "malformed_frame", UNARY).json()


def test_slow_ttft_multiplies_ttft():
    with run_in_thread(SimConfig(port=0, ttft=0.02, output_len=1)) as h, httpx.Client(base_url=h.url) as c:
        t0 = time.monotonic()
        c.post("/v1/completions", json={"prompt": "a"})
        normal = time.monotonic() - t0
        t0 = time.monotonic()
        c.post("/v1/completions", json={"prompt": "a"}, headers={"x-llmd-fault": "slow_ttft=5"})
        slow = time.monotonic() - t0
    assert normal < 0.06 and 0.1 <= slow < 0.2


def test_crlf_line_endings_are_valid_sse(client):
    raw = faulty(client, "crlf", STREAM).content
    assert raw.count(b"\r\n\r\n") == 8 and b"\n\n" not in raw.replace(b"\r\n\r\n", b"")
    lines = data_lines(raw)
    assert lines[-1] == b"[DONE]" and all(json.loads(x) for x in lines[:-1])


def read_chunks(port: int, body: dict, fault: str) -> list[bytes]:
    """Raw HTTP/1.1 read that keeps each chunk (transfer-encoding) of the response separate."""
    payload = json.dumps(body).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nhost: x\r\nx-llmd-fault: %s\r\ncontent-length: %d\r\n\r\n%s"
                  % (fault.encode(), len(payload), payload))
        data = b""
        while not data.endswith(b"\r\n0\r\n\r\n"):
            data += s.recv(65536)
    rest = data.split(b"\r\n\r\n", 1)[1]
    chunks = []
    while True:
        size_line, rest = rest.split(b"\r\n", 1)
        size = int(size_line, 16)
        if size == 0:
            return chunks
        chunks.append(rest[:size])
        rest = rest[size + 2:]


def test_split_frames_cross_chunk_boundaries_but_reassemble(sim):
    chunks = read_chunks(sim.port, STREAM, "split_frames")
    assert sum(1 for c in chunks if not c.endswith(b"\n\n")) >= 6  # frames cut in the middle
    lines = data_lines(b"".join(chunks))
    assert lines[-1] == b"[DONE]" and len([json.loads(x) for x in lines[:-1]]) == 7
    assert all(c.endswith(b"\n\n") for c in read_chunks(sim.port, STREAM, "crlf") if not c.endswith(b"\r\n\r\n"))


def test_configured_fault_rates_are_seeded_and_exclusive():
    cfg = SimConfig(port=0, seed=3, output_len=1,
                    faults=(FaultSpec("status", 503, 0.3), FaultSpec("rate_limit", 2, 0.2)))
    runs = []
    for _ in range(2):
        with run_in_thread(cfg) as h, httpx.Client(base_url=h.url) as c:
            runs.append([c.post("/v1/completions", json={"prompt": "a"}).status_code for _ in range(40)])
    assert runs[0] == runs[1]
    assert set(runs[0]) == {200, 429, 503}
    assert 4 < runs[0].count(503) < 20 and 2 < runs[0].count(429) < 16


def test_warmup_404_then_503_then_ready():
    with run_in_thread(SimConfig(port=0, warmup_404=1, warmup_503=2)) as h, httpx.Client(base_url=h.url) as c:
        codes = [c.get("/v1/models").status_code for _ in range(4)]
        assert c.get("/v1/models").json()["data"][0]["id"] == "random"
        third = c.get("/health")
    assert codes == [404, 503, 503, 200] and third.status_code == 200
