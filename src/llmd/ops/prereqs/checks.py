"""Doctor's prerequisite checks: the cluster version, the gateway control plane (running, inference extension
on), Prometheus Operator CRDs when monitoring is on, LWS when a multi-node profile needs it. Each failure
carries the exact `llmd prereqs install ...` command that fixes it."""

from __future__ import annotations

from llmd.kube.helm import parse_version
from llmd.kube.kubectl import Kubectl
from llmd.ops.preflight import CheckResult
from llmd.ops.prereqs.catalog import catalog
from llmd.ops.prereqs.fixes import install_command
from llmd.ops.prereqs.inspect import chart_state, crd_states, recorded

MIN_KUBERNETES = (1, 29)  # the routing sidecar runs as a native sidecar (initContainer restartPolicy: Always)


def check_kubernetes(server_version: str) -> CheckResult:
    ver = parse_version(server_version)
    if ver is None:
        return CheckResult("kubernetes", "warn", f"could not read the server version ({server_version or 'none'})",
                           ("check `kubectl version`: llm-d needs Kubernetes >= 1.29 (native sidecars)",))
    if ver < MIN_KUBERNETES:
        return CheckResult("kubernetes", "fail", f"Kubernetes {server_version} is older than 1.29: native sidecars "
                                                 "(initContainers with restartPolicy: Always) are missing, pods "
                                                 "stick in Init:0/1",
                           ("upgrade the cluster to Kubernetes >= 1.29 (1.33 recommended); no llmd command can",))
    return CheckResult("kubernetes", "ok", f"{server_version} (>= 1.29: native sidecars)")


def check_control_plane(kubectl: Kubectl, settings) -> CheckResult:
    comp = catalog().control_plane(settings.environment)
    if comp is None:
        return CheckResult("control plane", "skip", f"{settings.environment}: the platform runs the gateway "
                                                    "controller")
    fix = install_command(settings, kubectl.scope.context, monitoring=False)
    st = chart_state(kubectl, comp, with_record=False)
    if not st.installed:
        return CheckResult("control plane", "fail", f"{comp.title} not installed ({st.detail})", (fix,))
    if not st.ok:
        from llmd.ops.prereqs.install import manual_fix

        owned = recorded(kubectl, comp) is not None
        return CheckResult("control plane", "fail", f"{comp.title} {st.version}: {st.problem}",
                           (fix if owned else manual_fix(comp, st.version),))
    if not st.ready:
        return CheckResult("control plane", "fail", f"{comp.title} {st.version} is not running: {st.detail}",
                           (f"look at `kubectl get pods -n {comp.namespace}` and its events; `{fix}` waits for it",))
    ext = ", ".join(f"{k}={v}" for k, v in comp.env.items())
    return CheckResult("control plane", "ok", f"{comp.title} {st.version or ''} running ({st.detail})"
                       + (f", {ext}" if ext else ""))


def check_monitoring(kubectl: Kubectl, settings) -> CheckResult:
    if not settings.monitoring:
        return CheckResult("monitoring", "skip", "monitoring off (--monitoring creates ServiceMonitor/PodMonitor)")
    bundle = catalog().crds["prometheus-operator"]
    st = crd_states(kubectl, [bundle])[bundle.key]
    if st.ok:
        return CheckResult("monitoring", "ok", f"{bundle.title} present ({st.version or 'version unknown'})")
    why = st.problem if st.installed else "not installed"
    return CheckResult("monitoring", "fail", f"{bundle.title}: {why}; with --monitoring the charts fail with "
                                             "`no matches for kind \"ServiceMonitor\"`",
                       (install_command(settings, kubectl.scope.context, monitoring=True),
                        "or deploy with --no-monitoring"))


def check_lws(kubectl: Kubectl, settings) -> CheckResult:
    from llmd.ops.prereqs.status import needs_lws

    if not needs_lws(settings):
        return CheckResult("lws", "skip", "no multi-node profile (values.ms.multinode is false)")
    comp = catalog().charts["lws"]
    fix = install_command(settings, kubectl.scope.context, lws=True, monitoring=False)
    st = chart_state(kubectl, comp, with_record=False)
    if not st.installed:
        return CheckResult("lws", "fail", f"multinode needs LeaderWorkerSet: {comp.title} not installed "
                                          f"({st.detail})", (fix,))
    if not st.ready:
        return CheckResult("lws", "fail", f"{comp.title} {st.version} is not running: {st.detail}", (fix,))
    return CheckResult("lws", "ok", f"{comp.title} {st.version} running")
