"""Fast checks before anything is changed: tools, cluster, CRDs, gateway class, storage, GPUs, namespace.

Each `check_*` function returns a `CheckResult` (ok/warn/fail/skip with the fix) and raises
`ClusterError` when the cluster cannot be asked. `llmd.ops.deploy_preflight.preflight()` runs them for
`llmd deploy` and turns failures into errors; `llmd.ops.doctor` runs the same functions and reports every
result. Reading kubectl's JSON (CRD state, quantities, multi-document output) is llmd.ops.kube_json.

Every missing prerequisite is collected and reported together (exit 3) with the exact commands that
install it. An unreachable cluster fails within the preflight budget (exit 4): kubectl's
--request-timeout bounds each call and the runner's wall-clock timeout bounds the process.
"""
# The IDs cited here (rule N, F##) are defined in docs/behaviours.md.

from __future__ import annotations

import json
from dataclasses import dataclass, field

from llmd.errors import ClusterError, ExitCode, PrereqError
from llmd.kube.helm import Helm, helm_version, helmfile_version, parse_version
from llmd.kube.kubectl import Kubectl, classify_failure, kubectl_client_version, raise_cluster_error
from llmd.ops import wait
from llmd.ops.kube_json import crd_problems, json_objects, quantity_bytes  # re-exported (prereqs)
from llmd.ops.target import llmd_command
from llmd.presets import facts
from llmd.proc import INSTALL_HINTS, MAKE_TOOLS, TOOL_ENV, Runner

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
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
# On GKE the inferencepool chart renders a GKE Managed Prometheus PodMonitoring for --monitoring (and llmd turns
# the vLLM PodMonitor off); elsewhere the Prometheus Operator CRDs are checked by llmd.ops.prereqs.checks.
GKE_MONITORING_CRD = "podmonitorings.monitoring.googleapis.com"
INSTALL_GMP = ("enable GKE Managed Prometheus (`gcloud container clusters update <cluster> "
               "--enable-managed-prometheus`), or deploy with --no-monitoring")
DEFAULT_SC_ANNOTATIONS = ("storageclass.kubernetes.io/is-default-class",
                          "storageclass.beta.kubernetes.io/is-default-class")


@dataclass(frozen=True)
class CheckResult:
    """One check's verdict. `deploy` turns a `fail` into its error; `llmd doctor` lists them all."""

    name: str
    status: str  # ok | warn | fail | skip
    message: str
    fixes: tuple[str, ...] = ()  # what to run or do about a fail or warn
    exit_code: int = ExitCode.PREREQ  # what a fail means: 3 missing prerequisite, 4 cluster access

    @property
    def failed(self) -> bool:
        return self.status == "fail"

    @property
    def hint(self) -> str:
        return "\n".join(self.fixes)

    def to_dict(self) -> dict:
        return {"name": self.name, "status": self.status, "message": self.message, "fixes": list(self.fixes)}


@dataclass
class PreflightReport:
    checks: list[CheckResult] = field(default_factory=list)
    namespace_exists: bool = False
    namespace_owned: bool = False  # carries app.kubernetes.io/managed-by=llmd
    accelerators: int | None = None  # allocatable GPUs/TPUs counted by the gpus check (None: not counted)

    def add(self, result: CheckResult) -> CheckResult:
        self.checks.append(result)
        return result

    def to_dict(self) -> dict:
        return {"checks": [c.to_dict() for c in self.checks], "namespace_exists": self.namespace_exists,
                "namespace_owned": self.namespace_owned}


# ---- the checks: each returns a CheckResult; cluster access problems raise ClusterError (exit 4) ----------

TOOL_VERSIONS = {"kubectl": kubectl_client_version, "helm": helm_version, "helmfile": helmfile_version}


def reach_line(target) -> str:
    return (f"waiting for the API server {target.server or '(address unknown)'} of context {target.context} "
            f"(gives up after {REACH_TIMEOUT_S:g} s)")


def check_version(name: str, text: str) -> CheckResult:
    minimum = ".".join(map(str, MIN_VERSIONS[name]))
    ver = parse_version(text)
    if ver is None:
        return CheckResult(name, "fail", f"{name}: could not read its version ({text or 'no output'})",
                           (f"reinstall {name} >= {minimum} (tested versions: {MAKE_TOOLS})",))
    if ver < MIN_VERSIONS[name]:
        return CheckResult(name, "fail", f"{name} {text} is older than {minimum}",
                           (f"upgrade {name} to >= {minimum} (tested versions: {MAKE_TOOLS})",))
    return CheckResult(name, "ok", f"{text} (>= {minimum})")


def check_tool(runner: Runner, name: str) -> CheckResult:
    """On PATH (or LLMD_<TOOL>) and at least the minimum version; the version query is local."""
    if runner.missing_tools([name]):
        where = f"{runner.tool(name)} (from {TOOL_ENV[name]})" if runner.tool(name) != name else "on PATH"
        return CheckResult(name, "fail", f"{name} not found {where}", (INSTALL_HINTS[name],))
    return check_version(name, TOOL_VERSIONS[name](runner))


def check_tools(runner: Runner, report: PreflightReport) -> None:
    """Deploy's first step: every missing tool at once (exit 3), then helm/helmfile against the minimums
    (kubectl's version arrives with the reachability probe, one process fewer)."""
    if runner.dry_run:  # a preview needs no tools: say what is missing, start nothing
        missing = runner.missing_tools(list(TOOLS))
        report.add(CheckResult("tools", "warn" if missing else "skip",
                               f"missing: {', '.join(missing)}" if missing else "dry-run: versions not checked"))
        return
    runner.require_tools(list(TOOLS))
    results = [check_tool(runner, name) for name in ("helm", "helmfile")]
    too_old = [r.message for r in results if r.failed]
    if too_old:
        raise PrereqError("incompatible tool version(s): " + "; ".join(too_old),
                          hint=f"upgrade them (tested versions: {MAKE_TOOLS})")
    report.add(CheckResult("tools", "ok", ", ".join(f"{r.name} {r.message}" for r in results)))


def check_reachable(kubectl: Kubectl, target, say=None) -> CheckResult:
    """`kubectl version` talks to /version: proves the API server answers, and reports both versions.
    `say` gets one line naming what is awaited: a silent server costs the whole budget."""
    return reach(kubectl, target, say)[0]


def reach(kubectl: Kubectl, target, say=None) -> tuple[CheckResult, str]:
    """check_reachable's verdict and the server's gitVersion ("" when unknown), for the version check."""
    if say is not None and not kubectl.runner.dry_run:
        say(reach_line(target))
    res = kubectl.run("version", "--output", "json", namespaced=False, check=False, timeout=REACH_TIMEOUT_S,
                      fail_code=ExitCode.CLUSTER)  # a blackholed server times out: that is exit 4, not a bug
    if res.dry_run:
        return CheckResult("cluster", "skip", "dry-run"), ""
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
    if parse_version(client) is not None:
        version = check_version("kubectl", client)
        if version.failed:
            return CheckResult("cluster", "fail", version.message, version.fixes), server
    return CheckResult("cluster", "ok", f"{target.describe()}: server {server}, kubectl {client}"), server


def check_crds(kubectl: Kubectl) -> CheckResult:
    """The fixes are the install commands for what is missing, each once."""
    data = _get_crds(kubectl)
    if data is None:
        return CheckResult("crds", "skip", "dry-run")
    found = {item["metadata"]["name"]: item for item in data.get("items", [])}
    bad = crd_problems(found, {name: version for name, (version, _) in REQUIRED_CRDS.items()})
    problems = [why.replace("does not serve v1", "does not serve v1 (an older release is installed)")
                for _, why in bad]
    fixes = list(dict.fromkeys(REQUIRED_CRDS[name][1] for name, _ in bad))
    if problems:
        return CheckResult("crds", "fail", "; ".join(problems), tuple(fixes))
    return CheckResult("crds", "ok", "Gateway API and InferencePool v1 present")


def _get_crds(kubectl: Kubectl) -> dict | None:
    res = kubectl.run("get", "customresourcedefinitions", *REQUIRED_CRDS, "--ignore-not-found", "--output", "json",
                      namespaced=False, check=False, fail_code=ExitCode.CLUSTER)
    if res.dry_run:
        return None
    if not res.ok:
        raise_cluster_error(res, classify_failure(res), kubectl.scope)
    text = res.stdout.strip()
    if not text:  # --ignore-not-found prints nothing when none exists
        return {"items": []}
    data = json.loads(text)
    return data if data.get("kind") == "List" or "items" in data else {"items": [data]}


def check_monitoring_crds(kubectl: Kubectl, settings) -> CheckResult:
    """--monitoring renders monitoring objects whose kinds must exist, or the sync fails half-way (llm-d/llm-d#800):
    the Prometheus Operator's (checked where doctor checks them), or on GKE Managed Prometheus' PodMonitoring."""
    if not settings.monitoring:
        return CheckResult("monitoring", "skip", "monitoring off (--monitoring creates ServiceMonitor/PodMonitor)")
    from llmd.ops.prereqs.catalog import catalog

    if catalog().monitoring_bundle(settings.environment) is not None:
        from llmd.ops.prereqs.checks import check_monitoring

        return check_monitoring(kubectl, settings)
    if kubectl.runner.dry_run:
        return CheckResult("monitoring", "skip", "dry-run")
    from llmd.ops.prereqs.inspect import gmp_state

    if not gmp_state(kubectl).ok:
        return CheckResult("monitoring", "fail", f"--monitoring on GKE needs the {GKE_MONITORING_CRD} CRD "
                                                 "(GKE Managed Prometheus), which is missing", (INSTALL_GMP,))
    return CheckResult("monitoring", "ok", f"{GKE_MONITORING_CRD} present (GKE Managed Prometheus)")


def check_gateway_class(kubectl: Kubectl, settings) -> CheckResult:
    env = facts.environment(settings.environment)
    cls, install = env.gateway_class, env.install
    data = kubectl.get_json("gatewayclasses.gateway.networking.k8s.io", cls, namespaced=False)
    if kubectl.runner.dry_run:
        return CheckResult("gateway class", "skip", "dry-run")
    if data is None:
        return CheckResult("gateway class", "fail", f"GatewayClass {cls!r} not found: the {settings.environment} "
                                                    "control plane is not installed", (install,))
    return CheckResult("gateway class", "ok", f"GatewayClass {cls} present")


def check_storage(kubectl: Kubectl, settings, *, needs_pvc: bool) -> CheckResult:
    if not needs_pvc:
        return CheckResult("storage", "skip", "no model-cache PVC in this deployment")
    data = kubectl.get_json("storageclasses.storage.k8s.io", namespaced=False)
    if data is None:
        return CheckResult("storage", "skip", "dry-run")
    classes = {i["metadata"]["name"]: i for i in data.get("items", [])}
    have = ", ".join(sorted(classes))
    if settings.storage_class:
        if settings.storage_class in classes:
            return _rwx_check(settings.storage_class, classes[settings.storage_class], "StorageClass")
        return CheckResult("storage", "fail", f"StorageClass {settings.storage_class!r} not found (have: "
                                              f"{have or 'none'})",
                           (f"pass --storage-class with one of: {have or '(none: install a provisioner)'}",))
    defaults = [n for n, i in classes.items()
                if any((i["metadata"].get("annotations") or {}).get(a) == "true" for a in DEFAULT_SC_ANNOTATIONS)]
    if defaults:
        return _rwx_check(defaults[0], classes[defaults[0]], "default StorageClass")
    return CheckResult("storage", "fail", "no default StorageClass and no --storage-class",
                       (f"pass --storage-class <name> ({have or 'no StorageClass exists'}), "
                        "or use --model-cache emptydir",))


# Provisioners of block volumes: ReadWriteOnce only, so the ReadWriteMany model cache (shared by every
# replica, as upstream's example PVC) would stay Pending on them.
RWO_ONLY_PROVISIONERS = frozenset({
    "ebs.csi.aws.com", "kubernetes.io/aws-ebs", "pd.csi.storage.gke.io", "kubernetes.io/gce-pd",
    "disk.csi.azure.com", "kubernetes.io/azure-disk", "rancher.io/local-path", "kubernetes.io/no-provisioner",
    "openebs.io/local", "cinder.csi.openstack.org", "csi.vsphere.vmware.com", "dobs.csi.digitalocean.com",
})


def _rwx_check(name: str, sc: dict, what: str) -> CheckResult:
    provisioner = sc.get("provisioner", "")
    if provisioner in RWO_ONLY_PROVISIONERS:
        return CheckResult("storage", "warn",
                           f"{what} {name} ({provisioner}) provides only ReadWriteOnce volumes; the model cache "
                           "PVC is ReadWriteMany (shared by every replica) and would stay Pending",
                           ("pass --storage-class with a ReadWriteMany class (NFS, Filestore, EFS, CephFS), "
                            "or use --model-cache emptydir",))
    return CheckResult("storage", "ok", f"{what} {name}")


def check_gpus(kubectl: Kubectl, settings, report: PreflightReport | None = None) -> CheckResult:
    """Allocatable accelerators vs replicas × TP. A shortfall only warns: autoscalers may add nodes. With
    --gpu-product only nodes carrying that nvidia.com/gpu.product label count (the pods can land nowhere else)."""
    if not settings.uses_gpu:
        return CheckResult("gpus", "skip", f"accelerator {settings.accelerator} needs no GPU")
    resource = facts.accelerator(settings.accelerator).gpu_resource
    data = kubectl.get_json("nodes", namespaced=False)
    if data is None:
        return CheckResult("gpus", "skip", "dry-run")
    product = getattr(settings, "gpu_product", None)
    have = 0
    other: dict[str, int] = {}  # GPUs on nodes of another product (for the hint)
    for node in data.get("items", []):
        if (node.get("spec") or {}).get("unschedulable"):
            continue
        try:
            count = int(str(((node.get("status") or {}).get("allocatable") or {}).get(resource, "0")))
        except ValueError:
            continue
        label = ((node.get("metadata") or {}).get("labels") or {}).get(GPU_PRODUCT_LABEL)
        if product and label != product:
            if count:
                other[label or "(no label)"] = other.get(label or "(no label)", 0) + count
            continue
        have += count
    if report is not None:
        report.accelerators = have
    need = settings.replicas * settings.tensor_parallel
    where = f" on nodes labelled {GPU_PRODUCT_LABEL}={product}" if product else ""
    if have >= need:
        return CheckResult("gpus", "ok", f"{have} {resource} allocatable{where}, {need} needed")
    fixes = ["add nodes with free GPUs, or lower --replicas / --tensor-parallel"]
    if other:
        fixes.insert(0, f"other GPU nodes have {', '.join(f'{n} x {p}' for p, n in sorted(other.items()))}: "
                        "pass the --gpu-product they carry, or drop --gpu-product to schedule on any GPU node")
    return CheckResult("gpus", "warn", f"only {have} {resource} allocatable{where}, {need} needed "
                                       f"({settings.replicas} replicas × TP {settings.tensor_parallel}); "
                                       "pods will stay Pending unless nodes are added", tuple(fixes))


def check_model_size(settings, *, needs_pvc: bool) -> CheckResult:
    """The model cache PVC must hold the model: warn when the model's download size is known to exceed it."""
    from llmd import presets

    if not needs_pvc:
        return CheckResult("model size", "skip", "no model-cache PVC in this deployment")
    known = presets.load("defaults")["model_download"]["known_sizes_gi"]
    size = known.get(settings.model)
    if size is None:
        return CheckResult("model size", "skip", f"download size of {settings.model} not known to llmd")
    need = float(size) * 2**30
    have = quantity_bytes(settings.pvc_size)
    if need > have:
        suggest = f"{int(-(-float(size) * 1.2 // 1))}Gi"
        return CheckResult("model size", "warn", f"{settings.model} is about {size} GiB, more than --pvc-size "
                                                 f"{settings.pvc_size}: the download Job would fill the cache and fail",
                           (f"pass --pvc-size {suggest} (or larger)",))
    return CheckResult("model size", "ok", f"{settings.model} (about {size} GiB) fits --pvc-size {settings.pvc_size}")


@dataclass(frozen=True)
class NamespaceState:
    exists: bool = False
    owned: bool = False  # carries app.kubernetes.io/managed-by=llmd
    terminating: str | None = None  # the conditions that hold a Terminating namespace


def check_namespace(kubectl: Kubectl, settings, *, terminating_wait_s: float = 0.0
                    ) -> tuple[CheckResult, NamespaceState]:
    """A Terminating namespace cannot take new objects: wait (bounded) for it to go. Still Terminating
    after the wait: a `warn` and `state.terminating` set (deploy makes that exit 5)."""
    deadline = wait.CLOCK.now() + terminating_wait_s
    while True:
        ns = kubectl.get_json("namespace", settings.namespace, namespaced=False)
        if kubectl.runner.dry_run:
            return CheckResult("namespace", "skip", "dry-run"), NamespaceState()
        if ns is None:
            return CheckResult("namespace", "ok", f"{settings.namespace} will be created"), NamespaceState()
        if (ns.get("status") or {}).get("phase") != "Terminating":
            labels = ns["metadata"].get("labels") or {}
            owned = labels.get("app.kubernetes.io/managed-by") == "llmd"
            owner = "created by llmd" if owned else "not created by llmd; it will not be labelled"
            return (CheckResult("namespace", "ok", f"{settings.namespace} exists ({owner})"),
                    NamespaceState(exists=True, owned=owned))
        if wait.CLOCK.now() >= deadline:
            conds = "; ".join(f"{c.get('type')}: {c.get('message')}" for c in (ns.get("status") or {}).get(
                "conditions") or [] if c.get("status") == "True") or "no conditions reported"
            return (CheckResult("namespace", "warn", f"{settings.namespace} is Terminating ({conds})",
                                (f"wait for it to go (`kubectl get namespace {settings.namespace} -o yaml`) "
                                 "or deploy to another --namespace",)),
                    NamespaceState(exists=True, terminating=conds))
        wait.CLOCK.sleep(wait.POLL_S)


# (API group, resource) the deploy creates in the namespace: our own objects and what the three charts render.
NAMESPACED_PERMISSIONS = (
    ("", "secrets"), ("", "configmaps"), ("", "services"), ("", "serviceaccounts"), ("", "persistentvolumeclaims"),
    ("apps", "deployments"), ("batch", "jobs"), ("rbac.authorization.k8s.io", "roles"),
    ("rbac.authorization.k8s.io", "rolebindings"), ("gateway.networking.k8s.io", "gateways"),
    ("gateway.networking.k8s.io", "httproutes"), ("inference.networking.k8s.io", "inferencepools"),
)


def check_permissions(kubectl: Kubectl, settings, *, needs_pvc: bool, namespace_exists: bool) -> CheckResult:
    """Rule 17 / F19: one SelfSubjectAccessReview per permission, sent as one List on stdin (one call, no
    partial deploy on a missing right). A fail names every missing permission (exit 4)."""
    wanted = [(g, r, settings.namespace) for g, r in NAMESPACED_PERMISSIONS
              if needs_pvc or r not in ("persistentvolumeclaims", "jobs")]
    if not namespace_exists:
        wanted.insert(0, ("", "namespaces", None))
    reviews = [{"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                "spec": {"resourceAttributes": {"verb": "create", "group": g, "resource": r,
                                                **({"namespace": ns} if ns else {})}}} for g, r, ns in wanted]
    body = json.dumps({"apiVersion": "v1", "kind": "List", "items": reviews}).encode()
    res = kubectl.run("create", "--filename", "-", "--output", "json", namespaced=False, stdin=body, check=False,
                      fail_code=ExitCode.CLUSTER, title=f"RBAC check: {len(reviews)} SelfSubjectAccessReviews")
    if res.dry_run:
        return CheckResult("permissions", "skip", "dry-run")
    if not res.ok:
        raise_cluster_error(res, classify_failure(res), kubectl.scope)
    answers = json_objects(res.stdout)
    if len(answers) != len(wanted):
        raise ClusterError(f"the API server answered {len(answers)} of {len(wanted)} access reviews",
                           details=res.tail(5))
    missing = [f"create {r}{'.' + g if g else ''}" + (f" in {ns}" if ns else " (cluster)")
               for (g, r, ns), a in zip(wanted, answers, strict=True) if not (a.get("status") or {}).get("allowed")]
    if missing:
        return CheckResult("permissions", "fail", "missing permissions (RBAC): " + ", ".join(missing),
                           (f"ask a cluster admin to grant them in namespace {settings.namespace}, or use "
                            "another --context; nothing was changed",), exit_code=ExitCode.CLUSTER)
    return CheckResult("permissions", "ok", f"{len(wanted)} create permissions granted")


def recover_hint(settings, context: str | None) -> str:
    return (f"run `{llmd_command(settings, context, 'deploy', '--recover')}` with the rest of your deploy flags: "
            "it uninstalls a release stuck at revision 1 and rolls any other back to its last deployed revision "
            f"(or by hand: `helm rollback <release> <revision> -n {settings.namespace}`)")


def check_releases(helm: Helm, settings) -> CheckResult:
    """Rule 16: a release left pending-* by an interrupted run blocks the next deploy until recovered."""
    releases = {k: v for k, v in helm.releases().items() if k in settings.releases}
    if not releases:
        return CheckResult("releases", "ok", "none installed")
    states = ", ".join(f"{r.name} {r.status} (revision {r.revision})" for r in releases.values())
    if any(r.pending for r in releases.values()):
        return CheckResult("releases", "fail", f"left pending by an interrupted run: {states}",
                           (recover_hint(settings, helm.scope.context),))
    if any(r.status != "deployed" for r in releases.values()):
        return CheckResult("releases", "warn", states, ("`llmd deploy` upgrades them again",))
    return CheckResult("releases", "ok", states)
