"""Fixtures of the e2e suite (`make e2e`, marker `e2e`; `make test` deselects it).

Session scope: one local control plane (tests/e2e/cluster.py) with fake GPU and CPU nodes, a default StorageClass
with pre-made volumes, the gateway stand-in controller, and one `llmd sim` that kwok's port-forward rule sends
every gateway pod's port 80 to. The Gateway API / InferencePool CRDs are a separate fixture (`crds`) so a test can
first see a cluster without them. Each test gets its own namespace (`ns`), removed afterwards.

Reusable: `LocalCluster`, `install_crds`, `gpu_node`/`cpu_node` and `GatewayController` take no llmd settings.
"""

from __future__ import annotations

import sys
from pathlib import Path

# tests/e2e is a package (so this conftest does not replace tests/conftest.py as the module `conftest`); its
# modules import each other by bare name, as issue 11's test does.
sys.path.insert(0, str(Path(__file__).resolve().parent))

import itertools
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator

import pytest
from cluster import DEFAULT_BIN, ROOT, LocalCluster, _die_with_parent, cpu_node, free_port, gpu_node, port_open
from e2e_support import HF_TOKEN, Run
from gateway_controller import GatewayController, gateway_classes, istio_crds

CHARTS = Path(__file__).parent / "charts"
TOOLS = Path(os.environ.get("LLMD_TEST_TOOLS", ROOT / ".tools" / "bin"))
LLMD = ROOT / ".venv" / "bin" / "llmd"
# Every model name a test deploys: the one session simulator answers to all of them.
MODELS = ("random", "meta-llama/Llama-3.1-8B-Instruct", "Qwen/Qwen3-0.6B", "Qwen/Qwen3-8B")
STORAGE_CLASS = "e2e-rwx"
PV_COUNT = 12


def pytest_configure(config):
    # SIGTERM (a CI timeout, `kill`) becomes KeyboardInterrupt: pytest then runs the fixtures' teardown, which stops
    # the cluster and the simulator (they also die with this process: PR_SET_PDEATHSIG in cluster.py).
    expr = config.option.markexpr or ""
    if "e2e" not in expr or "not e2e" in expr:
        return  # `make test`: the unit suite keeps pytest's own signal handling

    def _term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _term)


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects
def pytest_collection_modifyitems(items):
    for item in items:
        if Path(str(item.fspath)).is_relative_to(Path(__file__).parent):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def tools() -> dict[str, str]:
    paths = {name: str(TOOLS / name) for name in ("kubectl", "helm", "helmfile")}
    missing = [p for p in paths.values() if not os.access(p, os.X_OK)]
    if missing:
        pytest.fail(f"missing {missing}: run `make tools` (make e2e does)")
    return paths


@pytest.fixture(scope="session")
def sim(tmp_path_factory) -> Iterator[int]:
    """One local OpenAI-compatible simulator for every test; kwok forwards gateway port 80 here."""
    port = free_port()
    log = tmp_path_factory.mktemp("sim") / "sim.log"
    argv = [str(LLMD), "sim", "--port", str(port), "--model", MODELS[0], "--ttft", "5ms", "--itl", "1ms",
            "--max-num-seqs", "32", "--max-model-len", "8192"]
    for m in MODELS:
        argv += ["--served-model-name", m]
    with open(log, "ab") as fh:
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=fh, stderr=subprocess.STDOUT,
                             start_new_session=True, preexec_fn=_die_with_parent)  # noqa: PLW1509 - one prctl
    try:
        deadline = time.monotonic() + 30
        while not port_open(port):
            if p.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"llmd sim did not start: {log.read_text()[-2000:]}")
            time.sleep(0.1)
        yield port
    finally:
        from llmd.proc import stop_process

        stop_process(p, grace_int=3, grace_term=2)


def storage(n: int) -> list[dict]:
    """A default RWX StorageClass (no provisioner runs: the controller-manager binds claims to these PVs)."""
    docs: list[dict] = [{
        "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": {"name": STORAGE_CLASS, "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
        "provisioner": "nfs.csi.k8s.io", "volumeBindingMode": "Immediate", "reclaimPolicy": "Retain"}]
    for i in range(n):
        docs.append({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": f"e2e-pv-{i}"},
                     "spec": {"capacity": {"storage": "500Gi"}, "accessModes": ["ReadWriteMany"],
                              "storageClassName": STORAGE_CLASS, "persistentVolumeReclaimPolicy": "Retain",
                              "nfs": {"server": "127.0.0.1", "path": f"/exports/e2e-{i}"}}})
    return docs


@pytest.fixture(scope="session")
def cluster(tmp_path_factory, tools, sim) -> Iterator[LocalCluster]:
    if not (DEFAULT_BIN / ".lock-sha256").exists():
        pytest.fail("e2e binaries missing: run `make e2e` (it builds them with e2e/build.py)")
    c = LocalCluster(DEFAULT_BIN, tmp_path_factory.mktemp("cluster"), port_forward_target=sim)
    c.start()
    controller = GatewayController(c.client)
    try:
        k = tools["kubectl"]
        # two GPU Operator nodes (8 x L40S) and a CPU node: enough for the default 4 replicas
        c.add_nodes(k, [gpu_node("gpu-0"), gpu_node("gpu-1"), cpu_node("cpu-0")])
        c.apply(k, storage(PV_COUNT))
        c.apply(k, istio_crds())
        controller.start()
        yield c
    finally:
        controller.stop()
        pids = [p.popen.pid for p in c.procs]
        c.stop()
        alive = [pid for pid in pids if _alive(pid)]
        assert not alive, f"cluster processes left running: {alive}"
    assert not controller.errors, "gateway controller errors:\n" + "\n".join(controller.errors)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture(scope="session")
def crds(cluster, tools) -> list[str]:
    names = cluster.install_crds(tools["kubectl"])
    cluster.apply(tools["kubectl"], gateway_classes())
    return names


_counter = itertools.count()


@pytest.fixture
def ns(cluster, tools, request) -> Iterator[str]:
    name = re.sub(r"[^a-z0-9-]", "-", f"e2e-{next(_counter)}-{request.node.name.lower()}")[:40].rstrip("-")
    with cluster.namespace(tools["kubectl"], name):
        yield name


@pytest.fixture
def llmd(cluster, tools, tmp_path):
    """Runs the real `llmd` CLI against the cluster; the charts come from the stand-ins (air-gap setting)."""
    env = {**os.environ, **cluster.env(), "LLMD_KUBECTL": tools["kubectl"], "LLMD_HELM": tools["helm"],
           "LLMD_HELMFILE": tools["helmfile"], "LLMD_STATE_DIR": str(tmp_path / "state"),
           "HF_TOKEN": HF_TOKEN, "HOME": str(tmp_path / "home"),
           "HELM_CACHE_HOME": str(tmp_path / "helm-cache"), "HELM_CONFIG_HOME": str(tmp_path / "helm-config"),
           "HELM_DATA_HOME": str(tmp_path / "helm-data"),
           "LLMD_CHART_SOURCE_INFRA": str(CHARTS / "llm-d-infra"),
           "LLMD_CHART_SOURCE_GAIE": str(CHARTS / "inferencepool"),
           "LLMD_CHART_SOURCE_MS": str(CHARTS / "llm-d-modelservice"),
           "NO_COLOR": "1", "COLUMNS": "200"}
    for var in ("LLMD_CONFIG", "KUBECONFIG_EXTRA", "LLMD_NAMESPACE", "NAMESPACE"):
        env.pop(var, None)

    def run(*args: str, timeout: float = 240, extra_env: dict[str, str] | None = None) -> Run:
        argv = [str(LLMD), *args]
        p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env={**env, **(extra_env or {})},
                           stdin=subprocess.DEVNULL, check=False)
        r = Run(argv, p.returncode, p.stdout, p.stderr)
        assert HF_TOKEN not in p.stdout + p.stderr, "the HF token leaked into llmd's output"
        return r

    def spawn(*args: str, extra_env: dict[str, str] | None = None) -> subprocess.Popen:
        return subprocess.Popen([str(LLMD), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env={**env, **(extra_env or {})}, stdin=subprocess.DEVNULL, start_new_session=True)

    run.spawn = spawn  # type: ignore[attr-defined]
    run.env = env  # type: ignore[attr-defined]
    return run
