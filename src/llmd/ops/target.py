"""Pin the kube context once (rule 4) and say where we are about to act.

Both calls are local (`kubectl config …` reads the kubeconfig, it does not contact the cluster), so
this is cheap and cannot hang. After `pin_target` every kubectl/helm/helmfile call carries the
pinned `--context`, whatever another process does to the kubeconfig meanwhile.
"""
# The IDs cited here (rule N, F##) are defined in docs/behaviours.md.

from __future__ import annotations

import json
import os
import shlex
from dataclasses import dataclass
from pathlib import Path

from llmd.errors import ClusterError
from llmd.kube.kubectl import Kubectl, Scope
from llmd.proc import Runner
from llmd.settings import Settings


@dataclass(frozen=True)
class Target:
    namespace: str
    context: str | None  # None only in dry-run without --context ("the current context")
    server: str | None
    platform: str = "kubernetes"  # "local": server is the state directory of the local stack

    def describe(self) -> str:
        if self.platform == "local":
            return f"the local platform ({self.server})"
        ctx = self.context or "(current context)"
        return f"namespace {self.namespace} on context {ctx}" + (f" ({self.server})" if self.server else "")

    def to_dict(self) -> dict:
        return {"namespace": self.namespace, "context": self.context, "server": self.server,
                "platform": self.platform}


def llmd_command(settings, context: str | None, verb: str, *extra: str) -> str:
    """A follow-up `llmd <verb>` that reaches this same stack: namespace and context always, plus every
    stack-selecting setting that is not the default (a printed `llmd cleanup` without the postfix would
    target another stack). `test` also needs the model: it asks the gateway for that served model."""
    default = Settings()
    parts = ["llmd", verb, *extra, "-n", settings.namespace]
    if settings.platform != default.platform:
        parts += ["--platform", settings.platform]
    if context:
        parts += ["--context", context]
    if settings.kubeconfig:
        parts += ["--kubeconfig", settings.kubeconfig]
    if settings.release_postfix != default.release_postfix:
        parts += ["--release-postfix", settings.release_postfix]
    if settings.environment != default.environment:
        parts += ["-e", settings.environment]
    if verb == "test" and settings.model != default.model:
        parts += ["--model", settings.model]
    return shlex.join(parts)


def _check_kubeconfig(path: str | None) -> None:
    if not path or os.pathsep in path:  # a KUBECONFIG list: kubectl merges it and skips missing entries
        return
    p = Path(path).expanduser()
    if not p.is_file():
        raise ClusterError(f"kubeconfig {path} does not exist or is not a file",
                           hint="pass --kubeconfig with an existing file, or unset KUBECONFIG")


def pin_target(settings, runner: Runner) -> tuple[Scope, Target]:
    """Resolve the context once and return the Scope every later call uses, plus the API server URL."""
    _check_kubeconfig(settings.kubeconfig)
    scope = Scope.from_settings(settings)
    if runner.dry_run:  # no subprocess in dry-run: show what we would use
        return scope, Target(settings.namespace, settings.kube_context, None)
    kubectl = Kubectl(runner, scope)
    context = settings.kube_context
    if context is None:
        res = kubectl.run("config", "current-context", namespaced=False, check=False, timeout=15)
        context = res.stdout.strip()
        if not res.ok or not context:
            where = f"kubeconfig {settings.kubeconfig}" if settings.kubeconfig else "your kubeconfig"
            raise ClusterError(f"no current context in {where}: {res.tail(2) or 'empty'}",
                               hint="pass --context <name> (see `kubectl config get-contexts`)")
        scope = Scope(settings.namespace, context, settings.kubeconfig)
        kubectl = Kubectl(runner, scope)
    res = kubectl.run("config", "view", "--minify", "--output", "json", namespaced=False, check=False, timeout=15)
    if not res.ok:
        raise ClusterError(f"context {context!r} is not usable: {res.tail(3)}",
                           hint="list contexts with `kubectl config get-contexts` and pass --context")
    server = None
    try:
        clusters = json.loads(res.stdout or "{}").get("clusters") or []
        server = (clusters[0].get("cluster") or {}).get("server") if clusters else None
    except (json.JSONDecodeError, AttributeError):
        server = None
    return scope, Target(settings.namespace, context, server)
