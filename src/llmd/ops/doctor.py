"""`llmd doctor`: everything `llmd deploy` needs, checked without changing anything.

The checks are data: `CHECKS` is an ordered tuple of small functions, each returning a `CheckResult`.
They call the same `llmd.ops.preflight` functions as deploy's preflight, so the two cannot disagree.
Unlike deploy, a failure never stops the run. When the context cannot be used or the API server does
not answer, every later cluster-side check is `skip` with that reason, so a blackholed server costs
one reachability budget (REACH_TIMEOUT_S) and no more.

Exit code: 4 when a check could not reach or was refused by the cluster (unreachable, unauthenticated,
RBAC), else 3 when any check failed, else 0 (warnings included).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from llmd.errors import CommandTimeout, ExitCode, LlmdError
from llmd.kube.helm import Helm
from llmd.kube.kubectl import Kubectl
from llmd.ops import preflight as pf
from llmd.ops.preflight import CheckResult
from llmd.ops.target import Target, pin_target
from llmd.proc import Runner
from llmd.settings import Settings


@dataclass
class Ctx:
    """What one doctor run shares between checks."""

    settings: Settings
    runner: Runner
    results: dict[str, CheckResult] = field(default_factory=dict)
    kubectl: Kubectl | None = None  # set by the context check
    helm: Helm | None = None
    target: Target | None = None
    namespace: pf.NamespaceState | None = None  # set by the namespace check (the RBAC check needs it)
    blocked: str | None = None  # why the remaining cluster-side checks cannot run
    server_version: str = ""  # set by the cluster check
    say: Callable[[str], None] | None = None  # a line naming what a slow check waits for (no spinner to show it)

    @property
    def cluster(self) -> Kubectl:
        """kubectl for a cluster-side check: those run only after the context check set it."""
        assert self.kubectl is not None, "cluster-side checks run after the context check"
        return self.kubectl

    def passed(self, name: str) -> bool:
        r = self.results.get(name)
        return r is not None and r.status in ("ok", "warn")


def _skip(name: str, why: str) -> CheckResult:
    return CheckResult(name, "skip", why)


# ---- local checks ---------------------------------------------------------------------------------------

def _tool(name: str) -> Callable[[Ctx], CheckResult]:
    def check(ctx: Ctx) -> CheckResult:
        return pf.check_tool(ctx.runner, name)

    check.__name__ = f"check_{name}"
    return check


def check_hf_token(ctx: Ctx) -> CheckResult:
    """Present (env or file, already validated by load_settings); without one only public models work."""
    s = ctx.settings
    if s.hf_token:
        return CheckResult("hf token", "ok", f"from {s.sources.get('hf_token', 'the environment')}")
    if s.accelerator == "sim" and not s.epp_tokenizes:
        return _skip("hf token", "accelerator sim downloads no model weights")
    fix = f"export HF_TOKEN=<token> or pass --hf-token-file <file> (a token with access to {s.model})"
    if s.no_hf_token:
        return CheckResult("hf token", "warn", f"none (--no-hf-token): {s.model} must be public, a gated "
                                               "model's download fails with 401/403", (fix,))
    return CheckResult("hf token", "fail", f"no Hugging Face token for {s.model} (deploy exits 2 without one)",
                       (fix + "; --no-hf-token for public models",))


# ---- cluster-side checks --------------------------------------------------------------------------------

def check_context(ctx: Ctx) -> CheckResult:
    """Resolve and pin the context from the kubeconfig (local, no API call)."""
    if ctx.runner.missing_tools(["kubectl"]):
        return _skip("context", "kubectl not found")
    scope, ctx.target = pin_target(ctx.settings, ctx.runner)
    ctx.kubectl = Kubectl(ctx.runner, scope)
    ctx.helm = Helm(ctx.runner, scope)
    how = "as given" if ctx.settings.kube_context else "current context"
    return CheckResult("context", "ok", f"{ctx.target.context} ({how}), server {ctx.target.server or 'unknown'}")


def check_cluster(ctx: Ctx) -> CheckResult:
    result, ctx.server_version = pf.reach(ctx.cluster, ctx.target, ctx.say)
    return result


def check_kubernetes(ctx: Ctx) -> CheckResult:
    from llmd.ops.prereqs.checks import check_kubernetes as check

    return check(ctx.server_version)


def _prereq_fix(ctx: Ctx, result: CheckResult) -> CheckResult:
    """A missing CRD or control plane: `llmd prereqs install` first, the by-hand commands after it."""
    if not result.failed:
        return result
    from llmd.ops.prereqs.fixes import install_command

    fix = install_command(ctx.settings, ctx.kubectl.scope.context if ctx.kubectl else None, monitoring=False)
    return CheckResult(result.name, result.status, result.message, (fix, *result.fixes), result.exit_code)


def check_crds(ctx: Ctx) -> CheckResult:
    return _prereq_fix(ctx, pf.check_crds(ctx.cluster))


def check_gateway_class(ctx: Ctx) -> CheckResult:
    if not ctx.passed("crds"):
        return _skip("gateway class", "needs the Gateway API and InferencePool CRDs first")
    return _prereq_fix(ctx, pf.check_gateway_class(ctx.cluster, ctx.settings))


def check_control_plane(ctx: Ctx) -> CheckResult:
    from llmd.ops.prereqs.checks import check_control_plane as check

    return check(ctx.cluster, ctx.settings)


def check_monitoring(ctx: Ctx) -> CheckResult:
    return pf.check_monitoring_crds(ctx.cluster, ctx.settings)  # GKE: PodMonitoring; else the Prometheus Operator


def check_lws(ctx: Ctx) -> CheckResult:
    from llmd.ops.prereqs.checks import check_lws as check

    return check(ctx.cluster, ctx.settings)


def check_storage(ctx: Ctx) -> CheckResult:
    from llmd.render.values import uses_model_cache  # the rule that decides whether the bundle has a PVC

    return pf.check_storage(ctx.cluster, ctx.settings, needs_pvc=uses_model_cache(ctx.settings))


def check_gpus(ctx: Ctx) -> CheckResult:
    return pf.check_gpus(ctx.cluster, ctx.settings)


def check_model_size(ctx: Ctx) -> CheckResult:
    from llmd.render.values import uses_model_cache

    return pf.check_model_size(ctx.settings, needs_pvc=uses_model_cache(ctx.settings))


def check_namespace(ctx: Ctx) -> CheckResult:
    result, ctx.namespace = pf.check_namespace(ctx.cluster, ctx.settings, terminating_wait_s=0)
    if ctx.namespace.terminating is not None:  # deploy waits for it; doctor only says so
        return CheckResult(result.name, "warn", result.message + "; deploy waits up to 120s for it to go",
                           result.fixes)
    return result


def check_permissions(ctx: Ctx) -> CheckResult:
    from llmd.render.values import uses_model_cache

    if ctx.namespace is None:
        return _skip("permissions", "namespace state unknown (see the namespace check)")
    return pf.check_permissions(ctx.cluster, ctx.settings, needs_pvc=uses_model_cache(ctx.settings),
                                namespace_exists=ctx.namespace.exists)


def check_releases(ctx: Ctx) -> CheckResult:
    if ctx.runner.missing_tools(["helm"]):
        return _skip("releases", "helm not found")
    assert ctx.helm is not None, "set by the context check with kubectl"
    return pf.check_releases(ctx.helm, ctx.settings)


@dataclass(frozen=True)
class Check:
    name: str
    run: Callable[[Ctx], CheckResult]
    cluster: bool = False  # needs a usable context and a reachable API server
    gate: bool = False  # when it cannot reach the cluster, the remaining cluster-side checks are skipped


CHECKS: tuple[Check, ...] = (
    Check("kubectl", _tool("kubectl")),
    Check("helm", _tool("helm")),
    Check("helmfile", _tool("helmfile")),
    Check("hf token", check_hf_token),
    Check("context", check_context, cluster=True, gate=True),
    Check("cluster", check_cluster, cluster=True, gate=True),
    Check("kubernetes", check_kubernetes, cluster=True),
    Check("crds", check_crds, cluster=True),
    Check("gateway class", check_gateway_class, cluster=True),
    Check("control plane", check_control_plane, cluster=True),
    Check("monitoring", check_monitoring, cluster=True),
    Check("lws", check_lws, cluster=True),
    Check("storage", check_storage, cluster=True),
    Check("gpus", check_gpus, cluster=True),
    Check("model size", check_model_size),
    Check("namespace", check_namespace, cluster=True),
    Check("permissions", check_permissions, cluster=True),
    Check("releases", check_releases, cluster=True),
)


@dataclass
class DoctorReport:
    checks: list[CheckResult]
    target: Target | None
    elapsed_s: float = 0.0

    @property
    def exit_code(self) -> int:
        failed = [c for c in self.checks if c.failed]
        if any(c.exit_code == ExitCode.CLUSTER for c in failed):
            return int(ExitCode.CLUSTER)
        return int(ExitCode.PREREQ) if failed else 0

    @property
    def status(self) -> str:
        states = {c.status for c in self.checks}
        return "fail" if "fail" in states else "warn" if "warn" in states else "ok"

    def to_dict(self) -> dict:
        return {"status": self.status, "exit_code": self.exit_code,
                "target": self.target.to_dict() if self.target else None,
                "checks": [c.to_dict() for c in self.checks], "elapsed_s": round(self.elapsed_s, 1)}


def _failure(name: str, err: LlmdError) -> CheckResult:
    detail = (err.details or "").strip().splitlines()
    message = err.message + (f" ({detail[-1]})" if detail and detail[-1] not in err.message else "")
    code = ExitCode.CLUSTER if err.exit_code == ExitCode.CLUSTER else ExitCode.PREREQ
    return CheckResult(name, "fail", message, tuple(err.hint.splitlines()) if err.hint else (), exit_code=code)


def run_checks(settings, runner: Runner, *, on_check: Callable[[str], None] | None = None,
               say: Callable[[str], None] | None = None, checks: tuple[Check, ...] = CHECKS) -> DoctorReport:
    """Run every check in order; `on_check(name)` is called before each (for a progress display), `say` gets
    the line naming what the cluster check waits for (the other verbs print it too)."""
    ctx = Ctx(settings, runner, say=say)
    t0 = time.monotonic()
    for check in checks:
        if check.cluster and ctx.blocked:
            result = _skip(check.name, ctx.blocked)
        else:
            if on_check is not None:
                on_check(check.name)
            try:
                result = check.run(ctx)
            except LlmdError as err:
                result = _failure(check.name, err)
                if isinstance(err, CommandTimeout):  # the server stopped answering: do not wait on it again
                    ctx.blocked = f"the API server did not answer the {check.name} check"
            cut_off = result.status == "skip" or (result.failed and result.exit_code == ExitCode.CLUSTER)
            if check.gate and cut_off and not ctx.blocked:  # e.g. an old kubectl still reached the server
                ctx.blocked = f"the {check.name} check failed" if result.failed else result.message
        ctx.results[check.name] = result
    return DoctorReport(list(ctx.results.values()), ctx.target, time.monotonic() - t0)
