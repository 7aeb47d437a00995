"""`llmd bench compare` on the Kubernetes platform: between the runs it is `scheduler apply` (a gaie-only helmfile
sync and the EPP roll) for each profile, before that profile's load. The cluster is the strict fake process boundary
of test_scheduler_apply.py (pytest-subprocess); the port-forwarded gateway is a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
import threading
import time

import pytest

from smoke_faults import FaultServer
from test_deploy_support import (  # noqa: F401  (*_fixture: fixtures used by name)
    CTX,
    Fake,
    clock_fixture,
    no_killpg_fixture,
    tool_calls,
)
from test_scheduler_apply import MODEL_PODS, SIM, Cluster, gaie_config, pod

pytestmark = pytest.mark.timeout(60)
MODEL = "meta-llama/Llama-3.1-8B-Instruct"
SVC = "infra-inference-scheduling-inference-gateway-istio"
LOAD = ("/v1/chat/completions", "/v1/completions")


@pytest.fixture
def uname_cached() -> None:
    """The perf report's platform.platform() runs `uname -p` once per process: before the strict fake is on."""
    import platform

    platform.platform()


@pytest.fixture
def fake(uname_cached, fp, tmp_path, fake_tools_on_path, clock, no_killpg):
    return Fake(fp, tmp_path)


@pytest.fixture
def gateway():
    server = FaultServer(MODEL)
    yield server
    server.close()


def port_forward(fake: Fake, port: int) -> None:
    """One `kubectl port-forward` to the gateway Service that forwards until llmd stops it."""
    done = threading.Event()

    fake.context()
    fake.reachable()  # the endpoint pins the context and probes the API server, as `llmd test` does

    def live(process):
        process.stdout.seek(0)
        done.wait(30)

    fake.reg(fake.k("get", "service", SVC, "--output", "json"), json.dumps({"metadata": {"name": SVC}}))
    fake.reg(fake.k("port-forward", "--address", "127.0.0.1", f"svc/{SVC}", ":80"),
             stdout=[f"Forwarding from 127.0.0.1:{port} -> 80"], callback=live,
             signal_callback=lambda _p, _sig: done.set())


def profile_applied(fake: Fake, cluster: Cluster, before: tuple[str, str], after: tuple[str, str], n: int,
                    syncs: list[float]) -> None:
    """What `scheduler apply` runs for one profile: running config read, pods recorded, the gaie-only sync (its
    time kept), the roll waited for, the new config read back, model-server UIDs compared, the state recorded."""
    cluster.up_to_sync(before, pod(f"gaie-inference-scheduling-epp-{n}", f"epp{n}"),
                       "Upgrading release=gaie-inference-scheduling\n",
                       callback=lambda _p: syncs.append(time.monotonic()))
    cluster.rolled(after, pod(f"gaie-inference-scheduling-epp-{n + 1}", f"epp{n + 1}"))
    fake.apply_stdin()


def test_compare_applies_each_profile_with_a_gaie_only_sync_before_its_load(cli, fake, fp, gateway, tmp_path):
    cluster = Cluster(fake)
    default, random = gaie_config("--scheduler", "default"), gaie_config("--scheduler", "random")
    syncs: list[float] = []
    profile_applied(fake, cluster, default, random, 1, syncs)  # the stack runs default; random comes first
    port_forward(fake, gateway.port)
    profile_applied(fake, cluster, random, default, 2, syncs)
    port_forward(fake, gateway.port)
    out = tmp_path / "compare.json"
    r = cli("bench", "compare", "--context", CTX, *SIM, "--scheduler", "random,default", "--requests", "3",
            "--concurrency", "1", "--warmup", "0.2s", "--no-chart", "--report-file", str(out), "--json")
    assert r.exit_code == 0, r.stderr

    calls = tool_calls(fp)
    # every sync is gaie-only (no full `helmfile sync`, no model-server release), one per profile
    assert [c for c in calls if c[0] == "helmfile" and "sync" in c] == [cluster.sync_argv()] * 2
    assert len(syncs) == 2
    load = [h["t"] for h in gateway.requests if h["path"] in LOAD]
    first, second = [t for t in load if syncs[0] < t < syncs[1]], [t for t in load if t > syncs[1]]
    assert len(first) + len(second) == len(load), "no load before the first profile was applied"
    assert len(first) >= 3 and len(second) >= 3  # each profile's warm-up and --requests after its own sync

    doc = json.loads(r.stdout)
    assert doc["platform"] == "kubernetes" and doc["profiles"] == ["random", "default"]
    assert list(doc["entries"]) == ["random", "default"]
    for name, (before, after) in {"random": (default, random), "default": (random, default)}.items():
        entry = doc["entries"][name]
        applied = entry["applied"]
        assert applied["status"] == "applied" and applied["platform"] == "kubernetes" and applied["profile"] == name
        assert (applied["before_file"], applied["after_file"]) == (before[0], after[0])
        assert applied["model_pods_kept"] == [p["metadata"]["name"] for p in MODEL_PODS]
        assert entry["complete"] is True and entry["errors"] == 0
    assert json.loads(out.read_text())["entries"].keys() == {"random", "default"}
