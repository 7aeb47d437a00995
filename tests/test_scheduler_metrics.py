"""`llmd scheduler metrics` on recorded Prometheus text: the parser, the reductions, and the whole command through
fake port-forwards to real 127.0.0.1 HTTP servers (the EPP one insists on the metrics-reader bearer token)."""

from __future__ import annotations

import base64
import json
import math
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from llmd import prom
from llmd.ops.scheduler_metrics import epp_metrics, replica_metrics
from test_deploy_support import CTX, Fake, clock_fixture, lst, no_killpg_fixture, obj  # noqa: F401

RECORDED = Path(__file__).parent / "fixtures" / "metrics"
MODEL_SELECTOR = "llm-d.ai/guide=inference-scheduling,llm-d.ai/inference-serving=true"
TOKEN = "eyJhbGciOiJSUzI1NiJ9.metrics-reader-token"


def text(name: str) -> str:
    return (RECORDED / name).read_text()


def test_parser_labels_histograms_and_quantiles():
    m = prom.Metrics(text("epp.txt"))
    assert m.total("inference_objective_request_total") == 1234
    assert m.total("inference_objective_request_total", model_name="other") == 34
    hist = m.histogram("inference_extension_scheduler_e2e_duration_seconds")
    assert hist is not None and hist[2] == 1234 and hist[0][-1] == (math.inf, 1234)
    assert prom.quantile(0.5, hist) == pytest.approx(0.0001 + 0.0001 * (617 - 200) / 600)
    assert prom.quantile(0.99, hist) == pytest.approx(0.002 + 0.003 * (1221.66 - 1200) / 34)
    assert prom.Metrics('x{a="q\\"uote"} 1\nbad line\ny 2 1700000000\n').samples["x"][0].labels == {"a": 'q"uote'}
    assert prom.Metrics("y 2 1700000000\n").total("y") == 2  # a timestamp is not the value


def test_epp_reductions_on_recorded_text():
    e = epp_metrics(text("epp.txt"))
    assert (e.requests, e.request_errors, e.scheduled, e.schedule_failures) == (1234, 6, 1232, 2)
    assert e.scheduling_mean_ms == pytest.approx(0.3)
    assert e.scheduling_p99_ms == pytest.approx(3.9112, abs=1e-3)
    assert (e.ready_pods, e.pool_avg_queue, e.pool_avg_kv) == (2, 1.5, 0.42)
    assert e.prefix_indexer_hit_ratio == pytest.approx(0.65)


def test_vllm_and_sim_reductions_and_the_interval_hit_rate():
    v = replica_metrics("p", text("vllm.txt"))
    assert (v.waiting, v.running, v.kv_usage, v.hit_rate) == (3, 7, 0.625, 0.75)
    s = replica_metrics("p", text("sim.txt"))  # the simulator's counters have no _total suffix
    assert (s.waiting, s.running, s.kv_usage, s.hit_rate) == (0, 2, 0.125, 0.25)
    later = text("sim.txt").replace("hits{", "hits{x=\"1\",").replace(" 500", " 1400").replace(" 2000", " 3000")
    assert replica_metrics("p", later, s).hit_rate_interval == pytest.approx((1400 - 500) / (3000 - 2000))


# ---- the command ---------------------------------------------------------------------------------

class MetricsServer:
    def __init__(self, body: str, token: str | None = None) -> None:
        srv = self
        self.auth: list[tuple[str, str | None]] = []  # (path, authorization header)

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                srv.auth.append((self.path, self.headers.get("authorization")))
                ok = token is None or self.headers.get("authorization") == f"Bearer {token}"
                data = (body if ok and self.path == "/metrics" else "Unauthorized").encode()
                self.send_response(200 if ok and self.path == "/metrics" else (401 if not ok else 404))
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def servers():
    made: list[MetricsServer] = []

    def make(body: str, token: str | None = None) -> MetricsServer:
        made.append(MetricsServer(body, token))
        return made[-1]

    yield make
    for s in made:
        s.close()


def running_pod(name: str) -> dict:
    return obj("Pod", name, status={"phase": "Running"})


def register_forward(fake: Fake, target: str, remote: int, port: int) -> None:
    done = threading.Event()

    def live(process):
        process.stdout.seek(0)
        done.wait(30)

    fake.fp.register(fake.k("port-forward", "--address", "127.0.0.1", target, f":{remote}"),
                     stdout=[f"Forwarding from 127.0.0.1:{port} -> {remote}"], callback=live,
                     signal_callback=lambda _p, _s: done.set())


@pytest.fixture
def fake(fp, tmp_path, fake_tools_on_path, clock, no_killpg):
    return Fake(fp, tmp_path)


def cluster(fake: Fake, servers, *, secret: bool = True) -> tuple[MetricsServer, list[MetricsServer]]:
    fake.context()
    pods = ["ms-inference-scheduling-decode-abc-0", "ms-inference-scheduling-decode-abc-1"]
    fake.reg(fake.k("get", "pods", "--selector", MODEL_SELECTOR, "--output", "json"),
             lst(*(running_pod(p) for p in pods), obj("Pod", "pending-one", status={"phase": "Pending"})))
    fake.reg(fake.k("get", "secret", "gaie-inference-scheduling-sa-metrics-reader-secret", "--ignore-not-found",
                    "--output", "jsonpath={.data.token}"),
             base64.b64encode(TOKEN.encode()).decode() if secret else "")
    epp = servers(text("epp.txt"), token=TOKEN)
    if secret:
        register_forward(fake, "svc/gaie-inference-scheduling-epp", 9090, epp.port)
    reps = [servers(text("vllm.txt")), servers(text("sim.txt"))]
    for pod, srv in zip(pods, reps, strict=True):
        register_forward(fake, f"pod/{pod}", 8000, srv.port)
    return epp, reps


def test_metrics_table_on_recorded_text(cli, fake, servers):
    epp, _ = cluster(fake, servers)
    r = cli("scheduler", "metrics", "--context", CTX)
    assert r.exit_code == 0, r.stderr
    scrapes = [a for path, a in epp.auth if path == "/metrics"]  # the tunnel's readiness probe asks /v1/models
    assert scrapes == [f"Bearer {TOKEN}"]
    lines = r.stderr.splitlines()
    row0 = next(ln for ln in lines if "decode-abc-0" in ln)
    assert ["3", "7", "62.5%", "75.0%"] == row0.replace("│", " ").split()[1:5]
    row1 = next(ln for ln in lines if "decode-abc-1" in ln)
    assert ["0", "2", "12.5%", "25.0%"] == row1.replace("│", " ").split()[1:5]
    assert "pending-one" not in r.stderr  # only Running pods have metrics to read
    for needle in ("1232 / 2", "0.300 / 3.911 ms", "42.0%", "0.65"):
        assert needle in r.stderr, needle
    assert TOKEN not in r.stderr + r.stdout  # the token never prints


def test_metrics_json_watch_is_one_document_per_refresh(cli, fake, servers, clock):
    cluster(fake, servers)
    r = cli("scheduler", "metrics", "--context", CTX, "--json", "--watch", "--count", "2", "--interval", "2")
    assert r.exit_code == 0, r.stderr
    docs = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(docs) == 2 and clock.sleeps == [2.0]
    assert docs[0]["epp"]["requests"] == 1234 and docs[0]["replicas"][0]["hit_rate"] == 0.75
    assert docs[1]["replicas"][1]["hit_rate_interval"] is None  # the counters did not move between the two


def test_missing_metrics_reader_secret_still_shows_the_replicas(cli, fake, servers):
    cluster(fake, servers, secret=False)
    r = cli("scheduler", "metrics", "--context", CTX, "--json")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert "metrics-reader-secret not found" in doc["epp"]["error"] and "--monitoring" in doc["epp"]["error"]
    assert [rep["waiting"] for rep in doc["replicas"]] == [3, 0]


def test_the_token_is_kept_out_of_the_transcript(cli, fake, servers, tmp_path):
    cluster(fake, servers)
    r = cli("scheduler", "metrics", "--context", CTX)
    assert r.exit_code == 0, r.stderr
    logs = list((tmp_path / "state" / "runs").rglob("commands.log"))
    assert logs
    body = "".join(p.read_text() for p in logs)
    assert "jsonpath={.data.token}" in body and "(stdout not shown: it holds a secret)" in body
    assert base64.b64encode(TOKEN.encode()).decode() not in body and TOKEN not in body


def test_nothing_deployed_is_exit_6(cli, fake):
    fake.context()
    fake.reg(fake.k("get", "pods", "--selector", MODEL_SELECTOR, "--output", "json"), lst())
    r = cli("scheduler", "metrics", "--context", CTX)
    assert r.exit_code == 6 and "no running model-server pod" in r.stderr


def test_a_refused_token_is_reported_in_the_epp_table(cli, fake, servers):
    fake.context()
    fake.reg(fake.k("get", "pods", "--selector", MODEL_SELECTOR, "--output", "json"),
             lst(running_pod("ms-inference-scheduling-decode-abc-0")))
    fake.reg(fake.k("get", "secret", "gaie-inference-scheduling-sa-metrics-reader-secret", "--ignore-not-found",
                    "--output", "jsonpath={.data.token}"), base64.b64encode(b"stale-token").decode())
    epp = servers(text("epp.txt"), token=TOKEN)
    register_forward(fake, "svc/gaie-inference-scheduling-epp", 9090, epp.port)
    register_forward(fake, "pod/ms-inference-scheduling-decode-abc-0", 8000, servers(text("vllm.txt")).port)
    r = cli("scheduler", "metrics", "--context", CTX)
    assert r.exit_code == 0, r.stderr
    assert "HTTP 401: the metrics-reader token was refused" in r.stderr
    assert "stale-token" not in r.stderr
