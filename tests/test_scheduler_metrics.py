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
    def __init__(self, body: str, token: str | tuple[str, ...] | None = None) -> None:
        srv = self
        self.auth: list[tuple[str, str | None]] = []  # (path, authorization header)
        tokens = (token,) if isinstance(token, str) else token

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                srv.auth.append((self.path, self.headers.get("authorization")))
                ok = tokens is None or self.headers.get("authorization") in {f"Bearer {t}" for t in tokens}
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

    def make(body: str, token: str | tuple[str, ...] | None = None) -> MetricsServer:
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


RBAC = "gaie-inference-scheduling-llm-d-inference-scheduling-epp"  # the chart's metrics ClusterRole(Binding)
MINTED = ("eyJhbGciOiJSUzI1NiJ9.minted-epp-sa-token-1", "eyJhbGciOiJSUzI1NiJ9.minted-epp-sa-token-2")


def rbac_argv(fake: Fake) -> list[str]:
    return fake.k("get", "clusterrolebindings.rbac.authorization.k8s.io", RBAC, "--ignore-not-found", "--output",
                  "name", namespaced=False)


def mint_argv(fake: Fake) -> list[str]:
    return fake.k("create", "token", "gaie-inference-scheduling-epp", "--duration", "10m")


def cluster(fake: Fake, servers, *, secret: bool = True, rbac: str = "present", mint: tuple[str, ...] = MINTED[:1],
            accepted: tuple[str, ...] = (TOKEN, *MINTED),
            secret_name: str = "gaie-inference-scheduling-sa-metrics-reader-secret",
            ) -> tuple[MetricsServer, list[MetricsServer]]:
    """Two running model servers and the EPP. Without the Secret: the metrics ClusterRoleBinding is `rbac`
    (present | absent | forbidden) and `kubectl create token` prints each of `mint` in turn (none: it fails)."""
    fake.context()
    pods = ["ms-inference-scheduling-decode-abc-0", "ms-inference-scheduling-decode-abc-1"]
    fake.reg(fake.k("get", "pods", "--selector", MODEL_SELECTOR, "--output", "json"),
             lst(*(running_pod(p) for p in pods), obj("Pod", "pending-one", status={"phase": "Pending"})))
    fake.reg(fake.k("get", "secret", secret_name, "--ignore-not-found", "--output", "jsonpath={.data.token}"),
             base64.b64encode(TOKEN.encode()).decode() if secret else "")
    epp = servers(text("epp.txt"), token=accepted)
    forward = secret
    if not secret:
        if rbac == "forbidden":
            fake.reg(rbac_argv(fake), stderr='Error from server (Forbidden): clusterrolebindings.rbac.authorization.'
                                             'k8s.io "x" is forbidden: User "dev" cannot get resource', rc=1)
        else:
            fake.reg(rbac_argv(fake), f"clusterrolebinding.rbac.authorization.k8s.io/{RBAC}\n"
                     if rbac == "present" else "")
        if rbac != "absent":
            for token in mint:
                fake.reg(mint_argv(fake), token + "\n")
            if not mint:
                fake.reg(mint_argv(fake), stderr='error: failed to create token: serviceaccounts '
                                                 '"gaie-inference-scheduling-epp" is forbidden', rc=1)
            forward = bool(mint)
    if forward:
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


def test_on_gke_the_charts_own_metrics_reader_secret_is_read(cli, fake, servers):
    """GKE with --monitoring: no `-sa-` Secret; the chart's Managed Prometheus reader has its own."""
    epp, _ = cluster(fake, servers, secret_name="gaie-inference-scheduling-metrics-reader-secret")
    r = cli("scheduler", "metrics", "--context", CTX, "-e", "gke", "--json")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["epp"]["auth"] == "secret"
    assert [a for path, a in epp.auth if path == "/metrics"] == [f"Bearer {TOKEN}"]


def test_without_the_secret_a_token_of_the_epp_serviceaccount_is_minted(cli, fake, fp, servers, tmp_path):
    """The chart's metrics RBAC is there (--monitoring) but its Secret is not: removed by hand, or its token never
    filled in by the token controller."""
    epp, _ = cluster(fake, servers, secret=False)
    r = cli("scheduler", "metrics", "--context", CTX, "--json")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["epp"]["error"] is None and doc["epp"]["auth"] == "minted" and doc["epp"]["requests"] == 1234
    assert [a for path, a in epp.auth if path == "/metrics"] == [f"Bearer {MINTED[0]}"]
    assert [rep["waiting"] for rep in doc["replicas"]] == [3, 0]
    body = "".join(p.read_text() for p in (tmp_path / "state" / "runs").rglob("commands.log"))
    assert "create token gaie-inference-scheduling-epp --duration 10m" in body
    assert MINTED[0] not in body + r.stderr + r.stdout
    assert not any(MINTED[0] in part for call in fp.calls for part in map(str, call))  # never in argv


def test_a_watch_mints_a_new_token_before_the_old_one_expires(cli, fake, fp, servers, clock):
    epp, _ = cluster(fake, servers, secret=False, mint=MINTED)
    r = cli("scheduler", "metrics", "--context", CTX, "--json", "--watch", "--count", "3", "--interval", "300")
    assert r.exit_code == 0, r.stderr
    assert [json.loads(line)["epp"]["requests"] for line in r.stdout.splitlines()] == [1234] * 3
    # 0 s and 300 s: the first token (10 minutes); 600 s is past the 8-minute renewal: a new one
    assert [a for path, a in epp.auth if path == "/metrics"] == [f"Bearer {MINTED[0]}"] * 2 + [f"Bearer {MINTED[1]}"]
    assert [list(map(str, c)) for c in fp.calls].count(mint_argv(fake)) == 2


def test_default_deploy_without_monitoring_names_the_fix_and_still_shows_the_replicas(cli, fake, fp, servers):
    """No Secret and no metrics ClusterRoleBinding: the EPP can verify no token at all (its ServiceAccount may not
    create TokenReviews), so nothing is minted and no tunnel opened; the EPP row says what to change."""
    cluster(fake, servers, secret=False, rbac="absent")
    r = cli("scheduler", "metrics", "--context", CTX, "--json")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    err = doc["epp"]["error"]
    assert "accepts no token" in err and f"ClusterRole {RBAC}" in err and "--monitoring" in err
    assert "-e gke --monitoring" in err
    calls = [list(map(str, c)) for c in fp.calls]
    assert mint_argv(fake) not in calls and not any("svc/gaie-inference-scheduling-epp" in c for c in calls)
    assert [rep["waiting"] for rep in doc["replicas"]] == [3, 0]


def test_unreadable_rbac_still_tries_a_token_and_a_refused_mint_is_reported(cli, fake, servers):
    cluster(fake, servers, secret=False, rbac="forbidden", mint=())
    r = cli("scheduler", "metrics", "--context", CTX, "--json")
    assert r.exit_code == 0, r.stderr
    err = json.loads(r.stdout)["epp"]["error"]
    assert "metrics-reader-secret not found" in err and "`kubectl create token gaie-inference-scheduling-epp`" in err
    assert "is forbidden" in err


def test_a_minted_token_the_epp_refuses_names_the_missing_clusterrole(cli, fake, servers):
    cluster(fake, servers, secret=False, rbac="forbidden", accepted=(TOKEN,))
    r = cli("scheduler", "metrics", "--context", CTX, "--json")
    assert r.exit_code == 0, r.stderr
    err = json.loads(r.stdout)["epp"]["error"]
    assert err.startswith("HTTP 401: the EPP refused a token of its ServiceAccount gaie-inference-scheduling-epp")
    assert f"ClusterRole {RBAC}" in err and "--monitoring" in err


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
