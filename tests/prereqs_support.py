"""Helpers for the `llmd prereqs` tests (no tests here): CRD files for --crd-dir, recorded cluster answers for the
prerequisites, and the exact argv `llmd prereqs` runs, registered in the strict pytest-subprocess `fp`."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from test_deploy_support import CTX, Fake, crd, istiod, lst

GW = "gateway.networking.k8s.io"
GAIE = "inference.networking.k8s.io"
GAIE_X = "inference.networking.x-k8s.io"
PROM = "monitoring.coreos.com"
ANNOTATIONS = {GW: "gateway.networking.k8s.io/bundle-version", GAIE: "inference.networking.k8s.io/bundle-version",
               GAIE_X: "inference.networking.k8s.io/bundle-version", PROM: "operator.prometheus.io/version"}
# what the upstream releases define (a subset is enough: the markers plus one more each)
GATEWAY_API = [("gatewayclasses", "GatewayClass", "Cluster"), ("gateways", "Gateway", "Namespaced"),
               ("httproutes", "HTTPRoute", "Namespaced"), ("grpcroutes", "GRPCRoute", "Namespaced")]
INFERENCE = [(GAIE, "inferencepools", "InferencePool", "v1"), (GAIE_X, "inferencepools", "InferencePool", "v1alpha2"),
             (GAIE_X, "inferenceobjectives", "InferenceObjective", "v1alpha2")]
MARKERS = ["gatewayclasses.gateway.networking.k8s.io", "gateways.gateway.networking.k8s.io",
           "httproutes.gateway.networking.k8s.io", "inferencepools.inference.networking.k8s.io"]
PROM_MARKERS = ["servicemonitors.monitoring.coreos.com", "podmonitors.monitoring.coreos.com"]
SSA_STDIN = ["apply", "--server-side", "--field-manager=llmd", "--force-conflicts", "--filename", "-"]
OURS = {"app.kubernetes.io/managed-by": "llmd"}


def crd_doc(group: str, plural: str, kind: str, version: str = "v1", *, release: str | None = None,
            labels: dict | None = None, scope: str = "Namespaced", established: bool = True) -> dict:
    """A CustomResourceDefinition as an upstream release file (and, with status, as the API server returns it)."""
    doc = crd(f"{plural}.{group}", version=version, established=established)
    doc["apiVersion"] = "apiextensions.k8s.io/v1"
    doc["metadata"]["annotations"] = {ANNOTATIONS[group]: release} if release else {}
    if labels:
        doc["metadata"]["labels"] = labels
    doc["spec"].update({"group": group, "scope": scope, "names": {"plural": plural, "kind": kind}})
    return doc


def gateway_api_docs(release: str = "v1.5.1", **kw) -> list[dict]:
    return [crd_doc(GW, p, k, release=release, scope=s, **kw) for p, k, s in GATEWAY_API]


def inference_docs(release: str = "v1.4.0", **kw) -> list[dict]:
    return [crd_doc(g, p, k, v, release=release, **kw) for g, p, k, v in INFERENCE]


def prom_docs(release: str = "0.85.0", **kw) -> list[dict]:
    return [crd_doc(PROM, p, k, release=release, **kw) for p, k in (("servicemonitors", "ServiceMonitor"),
                                                                     ("podmonitors", "PodMonitor"))]


def write_crd_dir(root: Path, *, monitoring: bool = False) -> Path:
    """Files laid out as the upstream releases ship them (one multi-document YAML each)."""
    root.mkdir(parents=True, exist_ok=True)
    files = {"standard-install.yaml": gateway_api_docs(), "manifests.yaml": inference_docs()}
    if monitoring:
        files["stripped-down-crds.yaml"] = prom_docs()
    for name, docs in files.items():
        for d in docs:
            d.pop("status")
        (root / name).write_text(yaml.safe_dump_all(docs))
    return root


def names(docs: list[dict]) -> list[str]:
    return [d["metadata"]["name"] for d in docs]


class PFake(Fake):
    """`Fake` plus the prerequisites' reads and writes."""

    def cp_argv(self, ns: str = "istio-system", name: str | None = "istiod") -> list[str]:
        return self.kn(ns, "get", "deployments.apps", *([name] if name else []), "--output", "json")

    def record_argv(self, ns: str = "istio-system") -> list[str]:
        return self.kn(ns, "get", "configmaps", "llmd-prereqs", "--output", "json")

    def markers(self, *present: dict, monitoring: bool = False) -> None:
        wanted = MARKERS + (PROM_MARKERS if monitoring else [])
        self.reg(self.k("get", "customresourcedefinitions", *wanted, "--ignore-not-found", "--output", "json",
                        namespaced=False), lst(*present) if present else "")

    def istiod(self, dep: dict | None = None, *, present: bool = True, record: dict | None = None) -> None:
        if present:
            self.reg(self.cp_argv(), json.dumps(dep or istiod()))
        else:
            self.not_found(self.cp_argv(), "deployments.apps", "istiod")
        self.record(record)

    def record(self, data: dict | None, ns: str = "istio-system", component: str = "istio") -> None:
        if data is None:
            self.not_found(self.record_argv(ns), "configmaps", "llmd-prereqs")
        else:
            self.reg(self.record_argv(ns), json.dumps({"kind": "ConfigMap", "metadata": {
                "name": "llmd-prereqs", "namespace": ns, "labels": {**OURS, "llmd.ai/prereq": component}},
                "data": data}))

    def existing(self, crd_names: list[str], *present: dict) -> None:
        self.reg(self.k("get", "customresourcedefinitions", *crd_names, "--ignore-not-found", "--output", "json",
                        namespaced=False), lst(*present) if present else "")

    def ssa(self, n: int = 1) -> None:
        self.reg(self.k(*SSA_STDIN, namespaced=False), "serverside-applied\n", n=n)

    def established(self, crd_names: list[str], rc: int = 0) -> None:
        self.reg(self.k("wait", "--for=condition=Established", "--timeout=60s",
                        *(f"customresourcedefinitions/{n}" for n in crd_names), namespaced=False),
                 "condition met\n" if rc == 0 else "", stderr="" if rc == 0 else "timed out waiting", rc=rc)

    def ns_get(self, ns: str, exists: bool) -> None:
        argv = self.k("get", "namespace", ns, "--output", "json", namespaced=False)
        if exists:
            self.reg(argv, json.dumps({"kind": "Namespace", "metadata": {"name": ns}}))
        else:
            self.not_found(argv, "namespaces", ns)

    def prereqs_sync(self, path: Path, *, rc: int = 0) -> None:
        self.reg(["helmfile", "--file", str(path), "--kube-context", CTX, "--helm-binary", "helm", "sync"],
                 "Upgrading release=istiod\n", stderr="" if rc == 0 else "Error: UPGRADE FAILED: boom", rc=rc)

    def gatewayclass(self, name: str = "istio", present: bool = True) -> None:
        self.gateway_class(present, name)

    def doctor_ok(self, *, ns_exists: bool = True, gateway_class: str = "istio") -> None:
        """The doctor run that ends `prereqs install` on a healthy sim setup (on GKE, `gateway_class`
        gke-l7-...: no control plane of llmd's to read)."""
        self.reg(["kubectl", "version", "--client", "--output", "json"],
                 json.dumps({"clientVersion": {"gitVersion": "v1.33.9"}}))
        self.tools()
        self.context()
        self.reachable()
        self.crds()
        self.gateway_class(name=gateway_class)
        if gateway_class == "istio":
            self.control_plane()
        self.namespace(ns_exists)
        self.permissions(10 + (0 if ns_exists else 1))
        self.releases({})
