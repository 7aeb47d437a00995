"""Fast checks before anything is changed: tools, cluster, CRDs, gateway class, storage, GPUs, namespace.

Every missing prerequisite is collected and reported together (exit 3) with the exact commands that
install it. An unreachable cluster fails within the preflight budget (exit 4): kubectl's
--request-timeout bounds each call and the runner's wall-clock timeout bounds the process.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from llmd.errors import ClusterError, DeployError, ExitCode, PrereqError
from llmd.kube.helm import helm_version, helmfile_version, parse_version
from llmd.kube.kubectl import Kubectl, classify_failure, raise_cluster_error
from llmd.ops import wait
from llmd.proc import Runner

TOOLS = ("kubectl", "helm", "helmfile")
MIN_VERSIONS = {"kubectl": (1, 28), "helm": (3, 12), "helmfile": (0, 166)}
REACH_TIMEOUT_S = 12.0  # the whole reachability probe; kubectl's own --request-timeout is 10s

GATEWAY_API_VERSION = "v1.5.1"
GAIE_VERSION = "v1.4.0"
INSTALL_GATEWAY_API = f'kubectl apply -k "https://github.com/kubernetes-sigs/gateway-api/config/crd/?ref={GATEWAY_API_VERSION}"'
INSTALL_GAIE = ('kubectl apply -k "https://github.com/kubernetes-sigs/gateway-api-inference-extension/config/crd/'
                f'?ref={GAIE_VERSION}"')
# CRD name -> (API version that must be served, install command)
REQUIRED_CRDS = {
    "gateways.gateway.networking.k8s.io": ("v1", INSTALL_GATEWAY_API),
    "httproutes.gateway.networking.k8s.io": ("v1", INSTALL_GATEWAY_API),
    "inferencepools.inference.networking.k8s.io": ("v1", INSTALL_GAIE),
}
# environment -> (GatewayClass the infra chart uses, how to install its control plane)
GATEWAY_CLASSES = {
    "istio": ("istio", "install Istio 1.29.1 (istio/base + istio/istiod from https://istio-release.storage."
                       "googleapis.com/charts) into istio-system with pilot.env.ENABLE_GATEWAY_API_INFERENCE_"
                       "EXTENSION=true, e.g. llm-d v0.6.0 guides/prereq/gateway-provider: "
                       "`helmfile apply -f istio.helmfile.yaml`"),
    "agentgateway": ("agentgateway", "install agentgateway v1.0.0 (oci://cr.agentgateway.dev/charts/agentgateway-"
                                     "crds and .../agentgateway with inferenceExtension.enabled=true) into "
                                     "agentgateway-system: `helmfile apply -f agentgateway.helmfile.yaml`"),
    "kgateway": ("agentgateway", "install kgateway's agentgateway v2.2.1 (oci://ghcr.io/kgateway-dev/charts/"
                                 "agentgateway-crds and .../agentgateway): `helmfile apply -f kgateway.helmfile.yaml`"),
    "gke": ("gke-l7-regional-external-managed",
            "enable the GKE Gateway controller (`gcloud container clusters update <cluster> --gateway-api=standard`)"),
}
GPU_RESOURCES = {"amd": "amd.com/gpu", "tpu-v6e": "google.com/tpu"}  # everything else with a GPU: nvidia
DEFAULT_SC_ANNOTATIONS = ("storageclass.kubernetes.io/is-default-class",
                          "storageclass.beta.kubernetes.io/is-default-class")


@dataclass
class Check:
    name: str
    status: str  # ok | warn | fail | skipped
    message: str

    def to_dict(self) -> dict:
        return {"name": self.name, "status": self.status, "message": self.message}


@dataclass
class PreflightReport:
    checks: list[Check] = field(default_factory=list)
    namespace_exists: bool = False
    namespace_owned: bool = False  # carries app.kubernetes.io/managed-by=llmd

    def add(self, name: str, status: str, message: str) -> Check:
        c = Check(name, status, message)
        self.checks.append(c)
        return c

    def to_dict(self) -> dict:
        return {"checks": [c.to_dict() for c in self.checks], "namespace_exists": self.namespace_exists,
                "namespace_owned": self.namespace_owned}


def check_tools(runner: Runner, report: PreflightReport) -> None:
    """All missing tools at once (exit 3), then client versions against the minimums."""
    if runner.dry_run:  # a preview needs no tools: say what is missing, start nothing
        missing = runner.missing_tools(list(TOOLS))
        report.add("tools", "warn" if missing else "skipped",
                   f"missing: {', '.join(missing)}" if missing else "dry-run: versions not checked")
        return
    runner.require_tools(list(TOOLS))
    found = {"helm": helm_version(runner), "helmfile": helmfile_version(runner)}
    too_old = []
    for name, text in found.items():
        ver = parse_version(text)
        if ver is None:
            too_old.append(f"{name}: could not read its version ({text or 'no output'})")
        elif ver < MIN_VERSIONS[name]:
            too_old.append(f"{name} {text} is older than {'.'.join(map(str, MIN_VERSIONS[name]))}")
    if too_old:
        raise PrereqError("incompatible tool version(s): " + "; ".join(too_old),
                          hint="upgrade them (`make tools` installs tested versions)")
    report.add("tools", "ok", ", ".join(f"{k} {v}" for k, v in found.items()))


def check_reachable(kubectl: Kubectl, target, report: PreflightReport) -> None:
    """`kubectl version` talks to /version: proves the API server answers, and reports both versions."""

    res = kubectl.run("version", "--output", "json", namespaced=False, check=False, timeout=REACH_TIMEOUT_S,
                      fail_code=ExitCode.CLUSTER)  # a blackholed server times out: that is exit 4, not a bug
    if res.dry_run:
        report.add("cluster", "skipped", "dry-run")
        return
    if not res.ok:
        kind = classify_failure(res)
        if kind in ("unauthorized", "forbidden"):
            raise_cluster_error(res, kind, kubectl.scope)
        raise ClusterError(f"cluster unreachable: {target.describe()}",
                           hint="check the API server address, VPN and credentials (`kubectl cluster-info`), "
                                "or pass another --context", details=res.tail(5))
    try:
        info = json.loads(res.stdout or "{}")
    except json.JSONDecodeError:
        info = {}
    client = (info.get("clientVersion") or {}).get("gitVersion", "?")
    server = (info.get("serverVersion") or {}).get("gitVersion", "?")
    ver = parse_version(client)
    if ver is not None and ver < MIN_VERSIONS["kubectl"]:
        raise PrereqError(f"kubectl {client} is older than 1.28", hint="upgrade kubectl (`make tools`)")
    report.add("cluster", "ok", f"{target.describe()}: server {server}, kubectl {client}")


def _established(crd: dict) -> bool:
    conds = (crd.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Established" and c.get("status") == "True" for c in conds)


def _served(crd: dict, version: str) -> bool:
    return any(v.get("name") == version and v.get("served") for v in (crd.get("spec") or {}).get("versions") or [])


def check_crds(kubectl: Kubectl, report: PreflightReport) -> list[str]:
    """Returns the install commands for what is missing (empty when all is there)."""
    data = _get_crds(kubectl)
    if data is None:
        report.add("crds", "skipped", "dry-run")
        return []
    found = {item["metadata"]["name"]: item for item in data.get("items", [])}
    fixes: list[str] = []
    problems: list[str] = []
    for name, (version, install) in REQUIRED_CRDS.items():
        crd = found.get(name)
        if crd is None:
            problems.append(f"{name} missing")
        elif not _served(crd, version):
            problems.append(f"{name} does not serve {version} (an older release is installed)")
        elif not _established(crd):
            problems.append(f"{name} is not Established")
        else:
            continue
        if install not in fixes:
            fixes.append(install)
    report.add("crds", "fail" if problems else "ok", "; ".join(problems) or "Gateway API and InferencePool v1 present")
    return fixes


def _get_crds(kubectl: Kubectl) -> dict | None:
    res = kubectl.run("get", "customresourcedefinitions", *REQUIRED_CRDS, "--ignore-not-found", "--output", "json",
                      namespaced=False, check=False)
    if res.dry_run:
        return None
    if not res.ok:
        raise_cluster_error(res, classify_failure(res), kubectl.scope)
    text = res.stdout.strip()
    if not text:  # --ignore-not-found prints nothing when none exists
        return {"items": []}
    data = json.loads(text)
    return data if data.get("kind") == "List" or "items" in data else {"items": [data]}


def check_gateway_class(kubectl: Kubectl, settings, report: PreflightReport) -> list[str]:
    cls, install = GATEWAY_CLASSES[settings.environment]
    data = kubectl.get_json("gatewayclasses.gateway.networking.k8s.io", cls, namespaced=False)
    if kubectl.runner.dry_run:
        report.add("gateway class", "skipped", "dry-run")
        return []
    if data is None:
        report.add("gateway class", "fail", f"GatewayClass {cls!r} not found: the {settings.environment} control "
                                            "plane is not installed")
        return [install]
    report.add("gateway class", "ok", f"GatewayClass {cls} present")
    return []


def check_storage(kubectl: Kubectl, settings, report: PreflightReport, *, needs_pvc: bool) -> list[str]:
    if not needs_pvc:
        report.add("storage", "skipped", "no model-cache PVC in this deployment")
        return []
    data = kubectl.get_json("storageclasses.storage.k8s.io", namespaced=False)
    if data is None:
        report.add("storage", "skipped", "dry-run")
        return []
    classes = {i["metadata"]["name"]: i for i in data.get("items", [])}
    if settings.storage_class:
        if settings.storage_class in classes:
            report.add("storage", "ok", f"StorageClass {settings.storage_class}")
            return []
        report.add("storage", "fail", f"StorageClass {settings.storage_class!r} not found (have: "
                                      f"{', '.join(sorted(classes)) or 'none'})")
        return [f"pass --storage-class with one of: {', '.join(sorted(classes)) or '(none: install a provisioner)'}"]
    defaults = [n for n, i in classes.items()
                if any((i["metadata"].get("annotations") or {}).get(a) == "true" for a in DEFAULT_SC_ANNOTATIONS)]
    if defaults:
        report.add("storage", "ok", f"default StorageClass {defaults[0]}")
        return []
    report.add("storage", "fail", "no default StorageClass and no --storage-class")
    return ["pass --storage-class <name> (" + (", ".join(sorted(classes)) or "no StorageClass exists") + "), "
            "or use --model-cache emptydir"]


def check_gpus(kubectl: Kubectl, settings, report: PreflightReport) -> None:
    """Allocatable accelerators vs replicas × TP. A shortfall only warns: autoscalers may add nodes."""
    if not settings.uses_gpu:
        report.add("gpus", "skipped", f"accelerator {settings.accelerator} needs no GPU")
        return
    resource = GPU_RESOURCES.get(settings.accelerator, "nvidia.com/gpu")
    data = kubectl.get_json("nodes", namespaced=False)
    if data is None:
        report.add("gpus", "skipped", "dry-run")
        return
    have = 0
    for node in data.get("items", []):
        if (node.get("spec") or {}).get("unschedulable"):
            continue
        try:
            have += int(str(((node.get("status") or {}).get("allocatable") or {}).get(resource, "0")))
        except ValueError:
            continue
    need = settings.replicas * settings.tensor_parallel
    if have >= need:
        report.add("gpus", "ok", f"{have} {resource} allocatable, {need} needed")
    else:
        report.add("gpus", "warn", f"only {have} {resource} allocatable, {need} needed "
                                   f"({settings.replicas} replicas × TP {settings.tensor_parallel}); "
                                   "pods will stay Pending unless nodes are added")


def check_namespace(kubectl: Kubectl, settings, report: PreflightReport, *, terminating_wait_s: float) -> None:
    """A Terminating namespace cannot take new objects: wait (bounded) for it to go, else exit 5."""
    deadline = wait.CLOCK.now() + terminating_wait_s
    while True:
        ns = kubectl.get_json("namespace", settings.namespace, namespaced=False)
        if kubectl.runner.dry_run:
            report.add("namespace", "skipped", "dry-run")
            return
        if ns is None:
            report.add("namespace", "ok", f"{settings.namespace} will be created")
            return
        if (ns.get("status") or {}).get("phase") != "Terminating":
            labels = ns["metadata"].get("labels") or {}
            report.namespace_exists = True
            report.namespace_owned = labels.get("app.kubernetes.io/managed-by") == "llmd"
            owner = "created by llmd" if report.namespace_owned else "not created by llmd; it will not be labelled"
            report.add("namespace", "ok", f"{settings.namespace} exists ({owner})")
            return
        if wait.CLOCK.now() >= deadline:
            conds = "; ".join(f"{c.get('type')}: {c.get('message')}" for c in (ns.get("status") or {}).get(
                "conditions") or [] if c.get("status") == "True") or "no conditions reported"
            raise DeployError(f"namespace {settings.namespace} is still Terminating after {terminating_wait_s:.0f}s",
                              hint=f"wait for it to go (`kubectl get namespace {settings.namespace} -o yaml`) "
                                   "or deploy to another --namespace", details=conds)
        wait.CLOCK.sleep(wait.POLL_S)


# (API group, resource) the deploy creates in the namespace: our own objects and what the three charts render.
NAMESPACED_PERMISSIONS = (
    ("", "secrets"), ("", "configmaps"), ("", "services"), ("", "serviceaccounts"), ("", "persistentvolumeclaims"),
    ("apps", "deployments"), ("batch", "jobs"), ("rbac.authorization.k8s.io", "roles"),
    ("rbac.authorization.k8s.io", "rolebindings"), ("gateway.networking.k8s.io", "gateways"),
    ("gateway.networking.k8s.io", "httproutes"), ("inference.networking.k8s.io", "inferencepools"),
)


def json_objects(text: str) -> list[dict]:
    """Objects from kubectl output that is one object, a List, or (`create -o json` with several inputs)
    several JSON documents one after another."""
    decoder = json.JSONDecoder()
    out: list[dict] = []
    pos, text = 0, text or ""
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            return out
        try:
            doc, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            raise ClusterError(f"kubectl returned invalid JSON: {exc}") from None
        out += (doc.get("items") or []) if doc.get("kind") == "List" else [doc]


def check_permissions(kubectl: Kubectl, settings, report: PreflightReport, *, needs_pvc: bool) -> None:
    """Rule 17 / F19: one SelfSubjectAccessReview per permission, sent as one List on stdin (one call, no
    partial deploy on a missing right). Exit 4 naming every missing permission."""
    wanted = [(g, r, settings.namespace) for g, r in NAMESPACED_PERMISSIONS
              if needs_pvc or r not in ("persistentvolumeclaims", "jobs")]
    if not report.namespace_exists:
        wanted.insert(0, ("", "namespaces", None))
    reviews = [{"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                "spec": {"resourceAttributes": {"verb": "create", "group": g, "resource": r,
                                                **({"namespace": ns} if ns else {})}}} for g, r, ns in wanted]
    body = json.dumps({"apiVersion": "v1", "kind": "List", "items": reviews}).encode()
    res = kubectl.run("create", "--filename", "-", "--output", "json", namespaced=False, stdin=body, check=False,
                      fail_code=ExitCode.CLUSTER)
    if res.dry_run:
        report.add("permissions", "skipped", "dry-run")
        return
    if not res.ok:
        raise_cluster_error(res, classify_failure(res), kubectl.scope)
    answers = json_objects(res.stdout)
    if len(answers) != len(wanted):
        raise ClusterError(f"the API server answered {len(answers)} of {len(wanted)} access reviews",
                           details=res.tail(5))
    missing = [f"create {r}{'.' + g if g else ''}" + (f" in {ns}" if ns else " (cluster)")
               for (g, r, ns), a in zip(wanted, answers, strict=True) if not (a.get("status") or {}).get("allowed")]
    if missing:
        raise ClusterError("missing permissions (RBAC): " + ", ".join(missing),
                           hint=f"ask a cluster admin to grant them in namespace {settings.namespace}, or use "
                                "another --context; nothing was changed")
    report.add("permissions", "ok", f"{len(wanted)} create permissions granted")


def preflight(settings, runner: Runner, kubectl: Kubectl, target, report: PreflightReport, *, needs_pvc: bool,
              terminating_wait_s: float = 120.0) -> PreflightReport:
    """The cluster checks; `check_tools` ran first, before the context was pinned. `needs_pvc` comes from the
    rendered bundle (it has a model-cache PVC or not)."""
    check_reachable(kubectl, target, report)
    fixes = check_crds(kubectl, report)
    fixes += check_gateway_class(kubectl, settings, report) if not fixes else []  # class needs the Gateway CRDs
    fixes += check_storage(kubectl, settings, report, needs_pvc=needs_pvc)
    if fixes:
        failed = [c for c in report.checks if c.status == "fail"]
        raise PrereqError("missing cluster prerequisite(s): " + "; ".join(c.message for c in failed),
                          hint="install them, then re-run:\n" + "\n".join(f"  {f}" for f in fixes))
    check_gpus(kubectl, settings, report)
    check_namespace(kubectl, settings, report, terminating_wait_s=terminating_wait_s)
    check_permissions(kubectl, settings, report, needs_pvc=needs_pvc)
    return report

