"""`llmd sim` as users run it: a real process printing URLs, stopping by itself or on a signal."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest


def finish(p: subprocess.Popen) -> str:
    """Kill if still running, close the pipes, return stderr."""
    if p.poll() is None:
        p.kill()
    return p.communicate(timeout=5)[1]


def start(*args: str) -> tuple[subprocess.Popen, list[str]]:
    p = subprocess.Popen([sys.executable, "-m", "llmd", "sim", "--port", "0", *args],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    n = int(args[args.index("--replicas") + 1]) if "--replicas" in args else 1
    urls = [p.stdout.readline().strip() for _ in range(n)]
    return p, urls


def test_duration_prints_url_serves_and_exits_by_itself():
    t0 = time.monotonic()
    p, (url,) = start("--duration", "2", "--time-to-first-token", "60ms", "--output-len", "3")  # upstream's name
    try:
        assert url.startswith("http://127.0.0.1:")
        t1 = time.monotonic()
        r = httpx.post(url + "/v1/completions", json={"prompt": "hi", "stream": True}, timeout=5)
        assert r.status_code == 200 and r.text.rstrip().endswith("data: [DONE]")
        assert time.monotonic() - t1 >= 0.06
        assert p.wait(timeout=6) == 0
    finally:
        err = finish(p)
    assert 1.9 < time.monotonic() - t0 < 6
    assert "listening" in err


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 0), (signal.SIGTERM, 143)])
def test_signals_stop_cleanly(sig, code):
    p, (url,) = start()
    try:
        assert httpx.get(url + "/health", timeout=5).status_code == 200
        p.send_signal(sig)
        assert p.wait(timeout=5) == code
    finally:
        finish(p)
    with pytest.raises(httpx.ConnectError):
        httpx.get(url + "/health", timeout=1)


def test_replicas_share_one_record_file(tmp_path):
    rec = tmp_path / "r.jsonl"
    p, urls = start("--replicas", "2", "--record", str(rec), "--output-len", "2")
    try:
        assert len(set(urls)) == 2
        for i, url in enumerate(urls):
            httpx.post(url + "/v1/chat/completions", headers={"x-request-id": f"r{i}"},
                       json={"messages": [{"role": "user", "content": "x"}]}, timeout=5)
        p.send_signal(signal.SIGINT)
        assert p.wait(timeout=5) == 0
    finally:
        finish(p)
    recs = [json.loads(line) for line in rec.read_text().splitlines()]
    assert sorted(r["id"] for r in recs) == ["r0", "r1"]
    assert {f"http://127.0.0.1:{r['port']}" for r in recs} == set(urls)
    assert all(r["status"] == 200 and r["n_tokens"] == 2 and r["first_token_ns"] >= r["recv_ns"] for r in recs)
    assert all(r["token_ns"] == [r["first_token_ns"]] * 2 for r in recs)  # zero latency: one write


@pytest.mark.parametrize(("args", "needle"), [
    (["--ttft", "5x"], "--ttft: invalid duration '5x'"),
    (["--max-num-seqs", "0"], "max-num-seqs 0 must be >= 1"),
    (["--fault", "nope"], "unknown fault kind 'nope'"),
    (["--fault", "stall:0.8", "--fault", "crlf:0.5"], "sum to <= 1"),
    (["--port", "70000"], "port 70000 must be 0..65535"),
    (["--replicas", "0"], "--replicas 0 must be >= 1"),
    (["--block-size", "12"], "block-size 12"),
    (["--max-num-seqs", "two"], "Invalid value for '--max-num-seqs'"),
    (["--duration", "soon"], "--duration: invalid duration 'soon'"),
])
def test_bad_flags_exit_2(cli, args, needle):
    res = cli("sim", *args)
    assert res.exit_code == 2 and needle in res.stderr and res.stdout == ""


def test_busy_port_exit_2(cli):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        res = cli("sim", "--port", str(port), "--duration", "0.1")
    assert res.exit_code == 2 and f"cannot listen on 127.0.0.1:{port}" in res.stderr and res.stdout == ""
