"""A real Kubernetes control plane on 127.0.0.1 for the e2e suite: etcd, kube-apiserver, kube-controller-manager,
kube-scheduler and kwok (fake nodes whose pods become Running/Ready), built by e2e/build.py.

Reusable outside llmd's own tests (issue 11's prereqs e2e uses it): `LocalCluster(bin_dir, work_dir).start()`
gives a kubeconfig with an admin user; `add_nodes`, `install_crds`, `namespace` are separate helpers a test
can call or skip. `stop()` stops every process it started (SIGINT, SIGTERM, SIGKILL to each process group)
and checks that no port is still listening.

The processes are daemons with chatty logs, so they write to files in `work_dir/logs` instead of pipes
(llmd.proc.Runner pipes output); they are still stopped with llmd.proc.stop_process.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from llmd.proc import stop_process

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_BIN = ROOT / ".e2e" / "bin"
CRD_MODULE_DIR = ROOT / "e2e" / "go" / "crds"
START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 30.0
FAKE_NODE_ANNOTATION = "kwok.x-k8s.io/node"
SERVICE_CIDR = "10.96.0.0/16"


_PRCTL = ctypes.CDLL(None, use_errno=True).prctl if sys.platform == "linux" else None


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL when the test process dies, however it dies (Linux prctl), so a killed
    pytest never leaves a control plane running. Resolved before the fork: the child only makes the call."""
    if _PRCTL is not None:
        _PRCTL(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_pki(d: Path) -> None:
    """A CA, the API server's serving cert (127.0.0.1/localhost), an admin client cert (system:masters) and the
    service-account signing key: what kubeadm would make, with openssl."""
    d.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
             "-subj", "/CN=llmd-e2e-ca", cwd=d)
    (d / "server.ext").write_text("subjectAltName=IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,"
                                  "DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth\n")
    (d / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    for name, subj, ext in (("server", "/CN=kube-apiserver", "server.ext"),
                            ("admin", "/O=system:masters/CN=e2e-admin", "client.ext")):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                 "-subj", subj, cwd=d)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                 "-out", f"{name}.crt", "-days", "2", "-extfile", ext, cwd=d)
    _openssl("genrsa", "-out", "sa.key", "2048", cwd=d)
    for key in d.glob("*.key"):
        key.chmod(0o600)


def kubeconfig(server: str, ca: bytes, user: str, creds: dict[str, str], context: str = "llmd-e2e") -> dict:
    return {
        "apiVersion": "v1", "kind": "Config", "current-context": context,
        "clusters": [{"name": "llmd-e2e",
                      "cluster": {"server": server, "certificate-authority-data": base64.b64encode(ca).decode()}}],
        "users": [{"name": user, "user": creds}],
        "contexts": [{"name": context, "context": {"cluster": "llmd-e2e", "user": user}}],
    }


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen
    log: Path
    ports: tuple[int, ...] = ()


@dataclass
class LocalCluster:
    bin_dir: Path
    work_dir: Path
    procs: list[Proc] = field(default_factory=list)
    ports: dict[str, int] = field(default_factory=dict)
    port_forward_target: int | None = None  # every pod port 80 forwards here (kwok ClusterPortForward)
    _argv: dict[str, list[str]] = field(default_factory=dict)  # for restarting a component as it was

    # ---- paths

    @property
    def pki(self) -> Path:
        return self.work_dir / "pki"

    @property
    def kubeconfig_path(self) -> Path:
        return self.work_dir / "admin.kubeconfig"

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.ports['apiserver']}"

    def binary(self, name: str) -> str:
        path = self.bin_dir / name
        if not os.access(path, os.X_OK):
            raise FileNotFoundError(f"{path} missing: run `python3 e2e/build.py` (or `make e2e`)")
        return str(path)

    # ---- lifecycle

    def start(self) -> LocalCluster:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        (self.work_dir / "logs").mkdir(parents=True, exist_ok=True)
        make_pki(self.pki)
        for name in ("etcd", "etcd_peer", "apiserver", "kwok"):
            self.ports[name] = free_port()
        ca = (self.pki / "ca.crt").read_bytes()
        admin = kubeconfig(self.server, ca, "e2e-admin", {
            "client-certificate-data": base64.b64encode((self.pki / "admin.crt").read_bytes()).decode(),
            "client-key-data": base64.b64encode((self.pki / "admin.key").read_bytes()).decode()})
        self.kubeconfig_path.write_text(yaml.safe_dump(admin))
        self.kubeconfig_path.chmod(0o600)

        etcd_url = f"http://127.0.0.1:{self.ports['etcd']}"
        peer_url = f"http://127.0.0.1:{self.ports['etcd_peer']}"
        self._spawn("etcd", [
            self.binary("etcd"), "--name=e2e", f"--data-dir={self.work_dir / 'etcd'}",
            f"--listen-client-urls={etcd_url}", f"--advertise-client-urls={etcd_url}",
            f"--listen-peer-urls={peer_url}", f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=e2e={peer_url}", "--unsafe-no-fsync", "--quota-backend-bytes=1073741824",
            "--listen-metrics-urls=", "--log-level=warn"], (self.ports["etcd"], self.ports["etcd_peer"]))
        self._wait(lambda: self._http_ok(f"{etcd_url}/health"), "etcd /health")

        pki = self.pki
        self._spawn("kube-apiserver", [
            self.binary("kube-apiserver"), f"--etcd-servers={etcd_url}", "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1", f"--secure-port={self.ports['apiserver']}",
            f"--tls-cert-file={pki / 'server.crt'}", f"--tls-private-key-file={pki / 'server.key'}",
            f"--client-ca-file={pki / 'ca.crt'}", f"--service-account-key-file={pki / 'sa.key'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-cluster-ip-range={SERVICE_CIDR}", "--authorization-mode=RBAC", "--allow-privileged=true",
            "--enable-priority-and-fairness=false", "--kubelet-preferred-address-types=InternalIP",
            "--profiling=false", "--v=0"], (self.ports["apiserver"],))
        self._wait(self.ready, "kube-apiserver /readyz", timeout=START_TIMEOUT_S)

        kc = str(self.kubeconfig_path)
        self._spawn("kube-controller-manager", [
            self.binary("kube-controller-manager"), f"--kubeconfig={kc}", "--leader-elect=false",
            "--bind-address=127.0.0.1", "--secure-port=0",
            f"--service-account-private-key-file={pki / 'sa.key'}", f"--root-ca-file={pki / 'ca.crt'}",
            "--use-service-account-credentials=false", "--controllers=*,-nodeipam,-cloud-node-lifecycle",
            "--concurrent-deployment-syncs=10", "--concurrent-replicaset-syncs=10",
            # kwok renews the nodes, but not during an API-server outage (a fault test): without a long grace the
            # node controller would mark every fake node, and so every pod, NotReady for good afterwards
            "--node-monitor-grace-period=10m", "--v=0"])
        self._spawn("kube-scheduler", [
            self.binary("kube-scheduler"), f"--kubeconfig={kc}", "--leader-elect=false",
            "--bind-address=127.0.0.1", "--secure-port=0", "--v=0"])
        kwok_config = self.work_dir / "kwok.yaml"
        forwards = []
        if self.port_forward_target:
            forwards = [{"ports": [80], "target": {"port": self.port_forward_target, "address": "127.0.0.1"}}]
        kwok_config.write_text(yaml.safe_dump_all([
            {"apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "KwokConfiguration", "options": {}},
            {"apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "ClusterPortForward",
             "metadata": {"name": "e2e-gateway"}, "spec": {"forwards": forwards}},
        ]))
        self._spawn("kwok", [
            self.binary("kwok"), f"--kubeconfig={kc}", f"--config={kwok_config}", "--manage-all-nodes=false",
            f"--manage-nodes-with-annotation-selector={FAKE_NODE_ANNOTATION}=fake",
            "--node-ip=127.0.0.1", f"--node-port={self.ports['kwok']}",
            f"--server-address=127.0.0.1:{self.ports['kwok']}",
            f"--tls-cert-file={pki / 'server.crt'}", f"--tls-private-key-file={pki / 'server.key'}"],
            (self.ports["kwok"],))
        self._wait(lambda: self.get("/api/v1/namespaces/default/serviceaccounts/default") is not None,
                   "the default ServiceAccount (controller-manager up)")

    def _spawn(self, name: str, argv: list[str], ports: tuple[int, ...] = ()) -> None:
        self._argv.setdefault(name, list(argv))
        log = self.work_dir / "logs" / f"{name}.log"
        fh = open(log, "ab")
        try:
            p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=fh, stderr=subprocess.STDOUT,
                                 start_new_session=True, cwd=self.work_dir,
                                 preexec_fn=_die_with_parent)  # noqa: PLW1509 - async-signal-safe: one prctl call
        finally:
            fh.close()
        self.procs.append(Proc(name, p, log, ports))

    def _wait(self, ok, what: str, timeout: float | None = None) -> None:
        timeout = START_TIMEOUT_S if timeout is None else timeout
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            for pr in self.procs:
                if pr.popen.poll() is not None:
                    raise RuntimeError(f"{pr.name} exited ({pr.popen.returncode}) while waiting for {what}:\n"
                                       + self.log_tail(pr.name))
            try:
                if ok():
                    return
            except (httpx.HTTPError, OSError) as exc:
                last = exc
            time.sleep(0.2)
        raise TimeoutError(f"{what} not ready after {timeout:.0f}s" + (f" (last error: {last})" if last else ""))

    def log_tail(self, name: str, lines: int = 30) -> str:
        path = self.work_dir / "logs" / f"{name}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """Reverse start order; each group gets SIGINT, SIGTERM, SIGKILL. Raises if a port stays open."""
        started = time.monotonic()
        for pr in reversed(self.procs):
            stop_process(pr.popen, grace_int=3.0, grace_term=2.0)
        self.procs.clear()
        left = [p for p in self.ports.values() if port_open(p)]
        while left and time.monotonic() - started < timeout:
            time.sleep(0.2)
            left = [p for p in left if port_open(p)]
        if left:
            raise RuntimeError(f"ports still listening after stopping the cluster: {left}")

    def stop_component(self, name: str) -> None:
        """Stop one component (the API server for a mid-deploy outage test)."""
        for pr in list(self.procs):
            if pr.name == name:
                stop_process(pr.popen, grace_int=2.0, grace_term=2.0)
                self.procs.remove(pr)

    def restart_apiserver(self) -> None:
        """Start kube-apiserver again with the argv it had (same port, same etcd): state survives."""
        argv = self._argv.get("kube-apiserver")
        if argv is None:
            raise RuntimeError("kube-apiserver was never started")
        self._spawn("kube-apiserver", argv, (self.ports["apiserver"],))
        self._wait(self.ready, "kube-apiserver /readyz after restart")

    # ---- API access (admin client cert)

    def ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.pki / "ca.crt"))
        ctx.load_cert_chain(str(self.pki / "admin.crt"), str(self.pki / "admin.key"))
        return ctx

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.server, verify=self.ssl_context(), timeout=10.0)

    def _http_ok(self, url: str) -> bool:
        return httpx.get(url, timeout=2.0).status_code == 200

    def ready(self) -> bool:
        with self.client() as c:
            return c.get("/readyz").status_code == 200

    def get(self, path: str) -> dict | None:
        with self.client() as c:
            r = c.get(path)
        if r.status_code == 404:
            return None
        r.raise_for_status()
        return r.json()

    def env(self) -> dict[str, str]:
        """Environment for a child (llmd, kubectl) talking to this cluster as the admin."""
        return {"KUBECONFIG": str(self.kubeconfig_path)}

    def kubectl(self, kubectl: str, *args: str, stdin: str | None = None, check: bool = True,
                kubeconfig_path: Path | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run([kubectl, f"--kubeconfig={kubeconfig_path or self.kubeconfig_path}", *args],
                              input=stdin, capture_output=True, text=True, check=check, timeout=timeout)

    def apply(self, kubectl: str, docs: Iterable[dict[str, Any]] | str) -> None:
        text = docs if isinstance(docs, str) else yaml.safe_dump_all(list(docs))
        self.kubectl(kubectl, "apply", "--server-side", "--force-conflicts", "--field-manager=e2e", "-f", "-",
                     stdin=text)

    # ---- content helpers (each optional)

    def add_nodes(self, kubectl: str, nodes: Iterable[dict[str, Any]]) -> None:
        """Fake nodes kwok manages (annotation), created with their status (capacity) in one apply."""
        docs = list(nodes)
        self.kubectl(kubectl, "create", "-f", "-", stdin=yaml.safe_dump_all(docs))
        names = [d["metadata"]["name"] for d in docs]
        self._wait(lambda: all(_node_ready(self.get(f"/api/v1/nodes/{n}")) for n in names),
                   f"nodes {', '.join(names)} Ready (kwok)")

    def install_crds(self, kubectl: str, go: str = "go") -> list[str]:
        """Gateway API (standard channel) and GAIE v1.4.0 CRDs, read from the Go module cache (never committed)."""
        files = crd_files(go)
        for f in files:
            self.kubectl(kubectl, "apply", "--server-side", "--field-manager=e2e", "-f", str(f), timeout=120)
        names = []
        for f in files:
            for doc in yaml.safe_load_all(f.read_text()):
                if doc and doc.get("kind") == "CustomResourceDefinition":
                    names.append(doc["metadata"]["name"])
        self.kubectl(kubectl, "wait", "--for=condition=Established", "--timeout=60s",
                     *[f"crd/{n}" for n in names])
        return names

    @contextlib.contextmanager
    def namespace(self, kubectl: str, name: str) -> Iterator[str]:
        """A namespace for one test, deleted (and waited for) afterwards."""
        try:
            yield name
        finally:
            self.kubectl(kubectl, "delete", "namespace", name, "--ignore-not-found", "--wait=true",
                         "--timeout=90s", check=False, timeout=120)



def _node_ready(node: dict | None) -> bool:
    conds = ((node or {}).get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds)


def module_dir(go: str, module: str) -> Path:
    """Where the module cache holds `module` (the version pinned in e2e/go/crds/go.mod, checked by its go.sum)."""
    out = subprocess.run([go, "mod", "download", "-json", module], cwd=CRD_MODULE_DIR, capture_output=True,
                         text=True, check=True, timeout=300)
    return Path(json.loads(out.stdout)["Dir"])


def crd_files(go: str = "go") -> list[Path]:
    """The CRD manifests each module's own kustomization lists (what `kubectl apply -k` would install)."""
    files: list[Path] = []
    for module, sub in (("sigs.k8s.io/gateway-api", "config/crd"),
                        ("sigs.k8s.io/gateway-api-inference-extension", "config/crd")):
        base = module_dir(go, module) / sub
        kust = yaml.safe_load((base / "kustomization.yaml").read_text())
        files += [base / r for r in kust["resources"]]
    return files


def gpu_node(name: str, *, gpus: int = 4, product: str = "NVIDIA-L40S", cpu: str = "64",
             memory: str = "512Gi") -> dict[str, Any]:
    """A node as the NVIDIA GPU Operator labels it (GPU Feature Discovery + device plugin capacity)."""
    labels = {
        "nvidia.com/gpu.present": "true", "nvidia.com/gpu.product": product, "nvidia.com/gpu.count": str(gpus),
        "nvidia.com/gpu.memory": "46068", "nvidia.com/gpu.family": "ada-lovelace",
        "nvidia.com/cuda.driver.major": "570",
        "nvidia.com/gpu.deploy.device-plugin": "true", "feature.node.kubernetes.io/pci-10de.present": "true",
    }
    return fake_node(name, labels, {"cpu": cpu, "memory": memory, "pods": "110", "nvidia.com/gpu": str(gpus)})


def cpu_node(name: str, *, cpu: str = "16", memory: str = "64Gi") -> dict[str, Any]:
    return fake_node(name, {}, {"cpu": cpu, "memory": memory, "pods": "110"})


def fake_node(name: str, labels: dict[str, str], capacity: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "annotations": {FAKE_NODE_ANNOTATION: "fake"},
                     "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                                "kubernetes.io/arch": "amd64", "type": "kwok", **labels}},
        "spec": {},
        "status": {"capacity": capacity, "allocatable": capacity,
                   "nodeInfo": {"architecture": "amd64", "operatingSystem": "linux", "kubeletVersion": "fake"}},
    }
