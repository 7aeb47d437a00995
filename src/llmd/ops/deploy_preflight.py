"""Deploy's preflight: the checks of llmd.ops.preflight in order, the first failing group raised as its error
(`llmd doctor` runs the same checks without stopping)."""

from __future__ import annotations

from llmd.errors import ClusterError, DeployError, PrereqError
from llmd.kube.kubectl import Kubectl
from llmd.ops.preflight import (
    PreflightReport,
    check_crds,
    check_gateway_class,
    check_gpus,
    check_model_size,
    check_monitoring_crds,
    check_namespace,
    check_permissions,
    check_reachable,
    check_storage,
)
from llmd.proc import Runner


def preflight(settings, runner: Runner, kubectl: Kubectl, target, report: PreflightReport, *, needs_pvc: bool,
              terminating_wait_s: float = 120.0, say=None) -> PreflightReport:
    """The cluster checks; `check_tools` ran first, before the context was pinned. `needs_pvc` comes from the
    rendered bundle (it has a model-cache PVC or not)."""
    reach = report.add(check_reachable(kubectl, target, say))
    if reach.failed:
        raise PrereqError(reach.message, hint=reach.hint)
    crds = report.add(check_crds(kubectl))
    results = [crds]
    if not crds.failed:  # the class needs the Gateway CRDs
        results.append(report.add(check_gateway_class(kubectl, settings)))
    results.append(report.add(check_storage(kubectl, settings, needs_pvc=needs_pvc)))
    results.append(report.add(check_monitoring_crds(kubectl, settings)))
    failed = [r for r in results if r.failed]
    if failed:
        fixes = [f for r in failed for f in r.fixes]
        if any(r.name in ("crds", "gateway class") for r in failed):  # what `llmd prereqs install` installs
            from llmd.ops.prereqs.fixes import install_command

            fixes.insert(0, f"{install_command(settings, kubectl.scope.context, monitoring=False)}   (or by hand:)")
        raise PrereqError("missing cluster prerequisite(s): " + "; ".join(r.message for r in failed),
                          hint="install them, then re-run:\n" + "\n".join(f"  {f}" for f in fixes))
    report.add(check_gpus(kubectl, settings, report))
    report.add(check_model_size(settings, needs_pvc=needs_pvc))
    ns, state = check_namespace(kubectl, settings, terminating_wait_s=terminating_wait_s)
    if state.terminating is not None:
        raise DeployError(f"namespace {settings.namespace} is still Terminating after {terminating_wait_s:.0f}s",
                          hint=ns.hint, details=state.terminating)
    report.add(ns)
    report.namespace_exists, report.namespace_owned = state.exists, state.owned
    perms = report.add(check_permissions(kubectl, settings, needs_pvc=needs_pvc, namespace_exists=state.exists))
    if perms.failed:
        raise ClusterError(perms.message, hint=perms.hint)
    return report
