"""Helpers for the deploy/status/cleanup tests (no tests here). Fixtures are imported by their
`*_fixture` names so test parameters do not shadow an import.

`Fake` registers, in pytest-subprocess's strict `fp`, the exact argv llmd is expected to run with the
scope injected, and canned kubectl/helm JSON answers. Anything unregistered fails the run. Objects are
built by small factories so each test states only what differs from a healthy cluster.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest

CTX = "kind-llmd"
SERVER = "https://127.0.0.1:6443"
NS = "llm-d-inference-scheduling"
POSTFIX = "inference-scheduling"
SSA = ["apply", "--server-side", "--field-manager=llmd", "--force-conflicts", "--filename"]
NOT_FOUND = 'Error from server (NotFound): {kind} "{name}" not found'
# what kubectl 1.33 prints when nothing listens on the API server's port
UNREACHABLE = "The connection to the server 10.9.9.9:6443 was refused - did you specify the right host or port?"
CRDS = ("gateways.gateway.networking.k8s.io", "httproutes.gateway.networking.k8s.io",
        "inferencepools.inference.networking.k8s.io")


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds


@pytest.fixture(name="clock")
def clock_fixture(monkeypatch) -> FakeClock:
    from llmd.ops import wait

    c = FakeClock()
    monkeypatch.setattr(wait, "CLOCK", c)
    return c


@pytest.fixture(name="no_killpg")
def no_killpg_fixture(monkeypatch) -> list[tuple[int, int]]:
    """FakePopen pids are small counters, not our children: record group signals instead of sending them."""
    sent: list[tuple[int, int]] = []
    monkeypatch.setattr(os, "killpg", lambda pid, sig: sent.append((pid, sig)))
    return sent


@pytest.fixture(name="fake")
def fake_fixture(fp, tmp_path, fake_tools_on_path, clock, no_killpg) -> Fake:
    """The strict fake cluster a CLI test starts from: kubectl/helm/helmfile on PATH, every call answered by
    pytest-subprocess as registered (anything else fails), the wait clock faked, no real process group signalled."""
    return Fake(fp, tmp_path)


@pytest.fixture(name="stdin_capture")
def stdin_capture_fixture(monkeypatch) -> list[bytes]:
    """What llmd wrote to each fake child's stdin (pytest-subprocess keeps it in a BytesIO we can't read
    after the runner closes it)."""
    from pytest_subprocess.fake_popen import FakePopen

    seen: list[bytes] = []

    class Recording(io.BytesIO):
        def close(self) -> None:
            seen.append(self.getvalue())
            super().close()

    original = FakePopen.configure

    def configure(self, **kwargs):
        original(self, **kwargs)
        if kwargs.get("stdin") == -1:  # subprocess.PIPE
            self.stdin = Recording()

    monkeypatch.setattr(FakePopen, "configure", configure)
    return seen


# ---- object factories -----------------------------------------------------------------------------

def lst(*items: dict) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": list(items)})


def obj(kind: str, name: str, **extra) -> dict:
    return {"kind": kind, "metadata": {"name": name, "namespace": NS, **extra.pop("metadata", {})}, **extra}


def deployment(name: str, ready: int, desired: int = 1, *, generation: int = 1, observed: int | None = None,
               updated: int | None = None, old: int = 0) -> dict:
    """A Deployment's status as the controller writes it: by default the current template (generation) is rolled
    out; `observed` < generation, `updated` < desired or `old` pods left describe a rollout still under way."""
    updated = desired if updated is None else updated
    status = {"observedGeneration": generation if observed is None else observed, "replicas": updated + old,
              "updatedReplicas": updated, "readyReplicas": ready, "availableReplicas": ready}
    return obj("Deployment", name, metadata={"generation": generation}, spec={"replicas": desired}, status=status)


def gateway(name: str, programmed: bool = True, message: str = "") -> dict:
    return obj("Gateway", name, status={"conditions": [
        {"type": "Programmed", "status": "True" if programmed else "False", "message": message}]})


def route(name: str, accepted: str = "True", resolved: str = "True", message: str = "") -> dict:
    return obj("HTTPRoute", name, status={"parents": [{"conditions": [
        {"type": "Accepted", "status": accepted, "reason": "Accepted" if accepted == "True" else "NotAllowed",
         "message": message},
        {"type": "ResolvedRefs", "status": resolved,
         "reason": "ResolvedRefs" if resolved == "True" else "InvalidKind", "message": message}]}]})


def pod(name: str, *, waiting: str | None = None, message: str = "", image: str = "img:1", container: str = "vllm",
        restarts: int = 0, last: dict | None = None, unschedulable: str | None = None) -> dict:
    cs: dict = {"name": container, "image": image, "restartCount": restarts, "ready": waiting is None,
                "state": {"waiting": {"reason": waiting, "message": message}} if waiting else {"running": {}}}
    if last:
        cs["lastState"] = {"terminated": last}
    status: dict = {"phase": "Pending" if waiting or unschedulable else "Running", "containerStatuses": [cs]}
    if unschedulable:
        status = {"phase": "Pending", "conditions": [
            {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": unschedulable}]}
    return obj("Pod", name, status=status)


def job(name: str, state: str = "complete", model: str = "meta-llama/Llama-3.1-8B-Instruct") -> dict:
    conds = {"complete": [{"type": "Complete", "status": "True"}],
             "failed": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                         "message": "Job has reached the specified backoff limit"}],
             "running": []}[state]
    return obj("Job", name, spec={"template": {"spec": {"containers": [{"name": "download", "env": [
        {"name": "MODEL", "value": model}]}]}}}, status={"conditions": conds})


def crd(name: str, version: str = "v1", established: bool = True) -> dict:
    return {"kind": "CustomResourceDefinition", "metadata": {"name": name},
            "spec": {"versions": [{"name": version, "served": True}]},
            "status": {"conditions": [{"type": "Established", "status": "True" if established else "False"}]}}


def istiod(version: str = "1.29.1", *, env: dict | None = None, available: int = 1) -> dict:
    """The istiod Deployment as the istio/istiod chart renders it (container `discovery`, image pilot:<tag>)."""
    env = {"ENABLE_GATEWAY_API_INFERENCE_EXTENSION": "true"} if env is None else env
    return {"kind": "Deployment", "metadata": {"name": "istiod", "namespace": "istio-system"},
            "spec": {"replicas": 1, "template": {"spec": {"containers": [{
                "name": "discovery", "image": f"docker.io/istio/pilot:{version}",
                "env": [{"name": k, "value": v} for k, v in env.items()]}]}}},
            "status": {"availableReplicas": available, "readyReplicas": available}}


def settings_for(*args: str):
    """The Settings a CLI run with these flags resolves to (for derived names)."""
    from llmd.settings import Settings, load_settings

    flags = {}
    it = iter(args)
    for a in it:
        if a.startswith("--") and a[2:].replace("-", "_") in {f for f in Settings.__dataclass_fields__}:
            flags[a[2:].replace("-", "_")] = next(it)
    return load_settings(flags, environ={})


# ---- the fake cluster ----------------------------------------------------------------------------

class Fake:
    def __init__(self, fp, tmp_path: Path, *, ns: str = NS, ctx: str = CTX, postfix: str = POSTFIX,
                 accelerator: str = "sim") -> None:
        self.fp = fp
        self.ns = ns
        self.ctx = ctx
        self.postfix = postfix
        from llmd.settings import Settings

        self.s = Settings(namespace=ns, release_postfix=postfix, accelerator=accelerator, kube_context=ctx)
        self.rendered = tmp_path / "state" / "rendered" / ns / postfix

    # argv builders (what llmd must run, scope included)
    def k(self, *args: str, namespaced: bool = True) -> list[str]:
        scope = ["--context", self.ctx] + (["--namespace", self.ns] if namespaced else [])
        return ["kubectl", *scope, "--request-timeout=10s", *args]

    def kn(self, namespace: str, *args: str) -> list[str]:
        """kubectl in another namespace (the prerequisites' namespaces: istio-system, lws-system...)."""
        return ["kubectl", "--context", self.ctx, "--namespace", namespace, "--request-timeout=10s", *args]

    def h(self, *args: str) -> list[str]:
        return ["helm", *args, "--kube-context", self.ctx, "--namespace", self.ns]

    def helmfile_sync(self) -> list[str]:
        return ["helmfile", "--file", str(self.rendered / "helmfile.yaml"), "--kube-context", self.ctx,
                "--namespace", self.ns, "--helm-binary", "helm", "sync"]

    def reg(self, argv: list[str], stdout: str = "", *, stderr: str = "", rc: int = 0, n: int = 1, **kw) -> None:
        self.fp.register(argv, stdout=stdout, stderr=stderr, returncode=rc, occurrences=n, **kw)

    def not_found(self, argv: list[str], kind: str = "thing", name: str = "x", n: int = 1) -> None:
        self.reg(argv, stderr=NOT_FOUND.format(kind=kind, name=name), rc=1, n=n)

    # building blocks
    def context(self, *, current: bool = False) -> None:
        if current:
            self.reg(["kubectl", "--request-timeout=10s", "config", "current-context"], self.ctx + "\n")
        self.reg(self.k("config", "view", "--minify", "--output", "json", namespaced=False),
                 json.dumps({"clusters": [{"name": "c", "cluster": {"server": SERVER}}]}))

    def tools(self) -> None:
        self.reg(["helm", "version", "--short"], "v3.15.3+g3bb50bb\n")
        self.reg(["helmfile", "--version"], "helmfile version 0.166.0\n")

    def reachable(self) -> None:
        self.reg(self.k("version", "--output", "json", namespaced=False),
                 json.dumps({"clientVersion": {"gitVersion": "v1.33.9"}, "serverVersion": {"gitVersion": "v1.33.1"}}))

    def crds(self, *items: dict) -> None:
        items = items or tuple(crd(n) for n in CRDS)
        self.reg(self.k("get", "customresourcedefinitions", *CRDS, "--ignore-not-found", "--output", "json",
                        namespaced=False), lst(*items))

    def gateway_class(self, present: bool = True, name: str = "istio") -> None:
        argv = self.k("get", "gatewayclasses.gateway.networking.k8s.io", name, "--output", "json", namespaced=False)
        if present:
            self.reg(argv, json.dumps({"kind": "GatewayClass", "metadata": {"name": name}}))
        else:
            self.not_found(argv, "gatewayclasses.gateway.networking.k8s.io", name)

    def control_plane(self, dep: dict | None = None, *, present: bool = True) -> None:
        """doctor's istiod read (the default -e istio)."""
        argv = self.kn("istio-system", "get", "deployments.apps", "istiod", "--output", "json")
        if present:
            self.reg(argv, json.dumps(dep or istiod()))
        else:
            self.not_found(argv, "deployments.apps", "istiod")

    def storage(self, default: bool = True, provisioner: str = "nfs.csi.k8s.io") -> None:
        ann = {"storageclass.kubernetes.io/is-default-class": "true"} if default else {}
        self.reg(self.k("get", "storageclasses.storage.k8s.io", "--output", "json", namespaced=False),
                 lst({"kind": "StorageClass", "metadata": {"name": "standard", "annotations": ann},
                      "provisioner": provisioner}))

    def nodes(self, gpus: int = 8) -> None:
        self.reg(self.k("get", "nodes", "--output", "json", namespaced=False),
                 lst({"kind": "Node", "metadata": {"name": "n1"}, "spec": {},
                      "status": {"allocatable": {"nvidia.com/gpu": str(gpus)}}}))

    def namespace(self, exists: bool = False, *, owned: bool = True, terminating: int = 0, n: int = 1) -> None:
        argv = self.k("get", "namespace", self.ns, "--output", "json", namespaced=False)
        if terminating:
            conds = [{"type": "NamespaceContentRemaining", "status": "True",
                      "message": "Some resources are remaining: pods. has 1 resource instances"}]
            term = {"kind": "Namespace", "metadata": {"name": self.ns},
                    "status": {"phase": "Terminating", "conditions": conds}}
            self.reg(argv, json.dumps(term), n=terminating)
        if exists:
            labels = {"app.kubernetes.io/managed-by": "llmd"} if owned else {}
            self.reg(argv, json.dumps({"kind": "Namespace", "metadata": {"name": self.ns, "labels": labels},
                                       "status": {"phase": "Active"}}), n=n)
        elif not terminating or exists is False:
            self.not_found(argv, "namespaces", self.ns, n=n)

    def permissions(self, count: int, denied: tuple[int, ...] = ()) -> None:
        """The answer to llmd's List of SelfSubjectAccessReviews: `count` reviews, those at `denied` refused."""
        items = [{"kind": "SelfSubjectAccessReview", "status": {"allowed": i not in denied}} for i in range(count)]
        self.reg(self.k("create", "--filename", "-", "--output", "json", namespaced=False),
                 json.dumps({"kind": "List", "items": items}))

    def releases(self, statuses: dict[str, str] | None = None, n: int = 1) -> None:
        rows = [{"name": name, "namespace": self.ns, "revision": "2" if st != "pending-install" else "1",
                 "status": st, "chart": "c-1"} for name, st in (statuses or {}).items()]
        self.reg(self.h("list", "--all", "--output", "json"), json.dumps(rows), n=n)

    def decode(self, selector: dict[str, str] | None = None) -> list[str]:
        """The live decode Deployment deploy compares before a sync (None: not there). Returns the get argv."""
        argv = self.k("get", "deployments.apps", self.s.decode_deployment, "--output", "json")
        if selector is None:
            self.not_found(argv, "deployments.apps", self.s.decode_deployment)
        else:
            self.reg(argv, json.dumps({"kind": "Deployment", "metadata": {"name": self.s.decode_deployment},
                                       "spec": {"selector": {"matchLabels": selector}}}))
        return argv

    def all_deployed(self) -> dict[str, str]:
        return dict.fromkeys(self.s.releases, "deployed")

    def apply_stdin(self, n: int = 1) -> None:
        self.reg(self.k(*SSA, "-"), "applied (server-side)\n", n=n)

    def apply_file(self, rel: str) -> None:
        self.reg(self.k(*SSA, str(self.rendered / rel)), "applied (server-side)\n")

    def state(self, digest: str | None) -> None:
        argv = self.k("get", "configmap", f"llmd-{self.postfix}-state", "--output", "json")
        if digest is None:
            self.not_found(argv, "configmaps", f"llmd-{self.postfix}-state")
        else:
            self.reg(argv, json.dumps({"kind": "ConfigMap", "metadata": {
                "name": f"llmd-{self.postfix}-state", "annotations": {"llmd.io/bundle-digest": digest}}}))

    def watch_argv(self) -> list[str]:
        kinds = "deployments.apps,pods,gateways.gateway.networking.k8s.io,httproutes.gateway.networking.k8s.io"
        return self.k("get", kinds, "--output", "json")

    def ready_items(self, *pods: dict, decode_ready: int | None = None) -> list[dict]:
        s = self.s
        return [deployment(s.epp_name, 1), deployment(s.gateway_service, 1), gateway(s.gateway_name),
                deployment(s.decode_deployment, s.replicas if decode_ready is None else decode_ready, s.replicas),
                route(s.httproute_name), *pods]

    CHART_KINDS = "deployments.apps,gateways.gateway.networking.k8s.io,inferencepools.inference.networking.k8s.io"

    def chart_objects(self, *, without: tuple[str, ...] = ()) -> None:
        """What the charts created, as an unchanged redeploy reads it before skipping the sync (minus `without`)."""
        s = self.s
        items = [deployment(s.epp_name, 1), deployment(s.gateway_service, 1), gateway(s.gateway_name),
                 deployment(s.decode_deployment, s.replicas, s.replicas), obj("InferencePool", s.pool_name)]
        self.reg(self.k("get", self.CHART_KINDS, "--output", "json"),
                 lst(*[i for i in items if i["metadata"]["name"] not in without]))

    def watch(self, *snapshots: list[dict]) -> None:
        for items in snapshots:
            self.reg(self.watch_argv(), lst(*items))

    def preflight(self, *, ns_exists: bool = False, gpu: bool = False, pvc: bool = False) -> None:
        self.tools()
        self.context()
        self.reachable()
        self.crds()
        self.gateway_class()
        if pvc:
            self.storage()
        if gpu:
            self.nodes()
        self.namespace(ns_exists)
        self.permissions(10 + (2 if pvc else 0) + (0 if ns_exists else 1))

    def happy_deploy(self, *, first: bool = True, digest: str | None = None) -> None:
        """A sim deploy on an empty (first=True) or already deployed cluster, ending ready."""
        self.preflight(ns_exists=not first)
        self.releases({} if first else self.all_deployed())
        if first:
            self.apply_stdin()  # namespace
        self.state(None if first else digest)
        if not first and digest is not None:
            self.chart_objects()
        if first:
            self.reg(self.helmfile_sync(), "Upgrading release=infra-inference-scheduling, chart=x\n")
            self.apply_stdin()  # state ConfigMap
        self.apply_file("manifests/httproute.yaml")
        self.watch(self.ready_items())
        self.releases(self.all_deployed())


def rendered_digest(*cli_args: str) -> str:
    from llmd.render import render_bundle

    return render_bundle(settings_for(*cli_args)).digest()


def tool_calls(fp) -> list[list[str]]:
    return [list(map(str, c)) for c in fp.calls]
