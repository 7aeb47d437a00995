"""kubectl with the scope (context, kubeconfig, namespace) injected into every call.

The context is pinned once (rule 4): every argv carries --context when one is known, so a
context switched by another process mid-run changes nothing.
"""
# The IDs cited here (rule N, F##) are defined in docs/behaviours.md.

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from llmd.errors import ClusterError, ExitCode
from llmd.proc import Cmd, CmdResult, Runner

NOT_FOUND_MARKERS = ("NotFound", "not found", "the server doesn't have a resource type")
UNREACHABLE_MARKERS = ("connection refused", "was refused", "no such host", "i/o timeout",
                       "Unable to connect to the server", "dial tcp", "TLS handshake timeout",
                       "context deadline exceeded", "no route to host")
AUTH_MARKERS = ("Unauthorized", "You must be logged in", "provide credentials", "exec plugin",
                "getting credentials", "token has expired")
FORBIDDEN_MARKERS = ("Forbidden", "forbidden")


@dataclass(frozen=True)
class Scope:
    namespace: str
    context: str | None = None
    kubeconfig: str | None = None

    @classmethod
    def from_settings(cls, settings) -> Scope:
        return cls(namespace=settings.namespace, context=settings.kube_context, kubeconfig=settings.kubeconfig)

    @property
    def kubeconfig_flag_value(self) -> str | None:
        """--kubeconfig takes one file; a KUBECONFIG list (a:b) reaches children through the environment."""
        return self.kubeconfig if self.kubeconfig and os.pathsep not in self.kubeconfig else None

    def env(self, *, always: bool = False) -> dict[str, str]:
        """The environment a child needs for this kubeconfig: KUBECONFIG for a list (no flag can carry it), or
        `always` for a tool without a --kubeconfig flag (helmfile). Else the flag carries it and nothing is set."""
        if self.kubeconfig and (always or self.kubeconfig_flag_value is None):
            return {"KUBECONFIG": self.kubeconfig}
        return {}

    def kubectl_flags(self, *, namespaced: bool = True) -> tuple[str, ...]:
        return self._flags("--context", namespaced)

    def helm_flags(self, *, namespaced: bool = True) -> tuple[str, ...]:
        return self._flags("--kube-context", namespaced)  # helm's spelling; --kubeconfig/--namespace are shared

    def _flags(self, context_flag: str, namespaced: bool) -> tuple[str, ...]:
        flags: list[str] = []
        kubeconfig = self.kubeconfig_flag_value
        if kubeconfig:
            flags += ["--kubeconfig", kubeconfig]
        if self.context:
            flags += [context_flag, self.context]
        if namespaced:
            flags += ["--namespace", self.namespace]
        return tuple(flags)


def classify_failure(result: CmdResult) -> str:
    """'not_found' | 'unreachable' | 'unauthorized' | 'forbidden' | 'other' from a failed kubectl call."""
    text = result.stderr + result.stdout
    if any(m in text for m in UNREACHABLE_MARKERS) or result.timed_out:
        return "unreachable"
    if any(m in text for m in AUTH_MARKERS):
        return "unauthorized"
    if any(m in text for m in FORBIDDEN_MARKERS):
        return "forbidden"
    if any(m in text for m in NOT_FOUND_MARKERS):
        return "not_found"
    return "other"


class Kubectl:
    def __init__(self, runner: Runner, scope: Scope, *, request_timeout: str = "10s") -> None:
        self.runner = runner
        self.scope = scope
        self.request_timeout = request_timeout

    def cmd(self, *args: str, mutates: bool = False, stdin: bytes | None = None, namespaced: bool = True,
            timeout: float | None = None, title: str = "") -> Cmd:
        argv = (self.runner.tool("kubectl"), *self.scope.kubectl_flags(namespaced=namespaced),
                f"--request-timeout={self.request_timeout}", *args)
        return Cmd(argv, mutates=mutates, stdin=stdin, timeout=timeout, title=title, env=self.scope.env())

    def run(self, *args: str, check: bool = True, fail_code: ExitCode = ExitCode.INTERNAL, **kw) -> CmdResult:
        return self.runner.run(self.cmd(*args, **kw), check=check, fail_code=fail_code)

    def get_json(self, kind: str, name: str | None = None, *, selector: str | None = None,
                 namespaced: bool = True, all_namespaces: bool = False) -> dict[str, Any] | None:
        """`kubectl get -o json`. None when the object (or its kind) does not exist."""
        args = ["get", kind]
        if name:
            args.append(name)
        if selector:
            args += ["--selector", selector]
        if all_namespaces:
            args.append("--all-namespaces")
        args += ["--output", "json"]
        res = self.run(*args, check=False, namespaced=namespaced and not all_namespaces,
                       fail_code=ExitCode.CLUSTER)  # a read that times out means an unreachable cluster
        if res.dry_run:
            return None
        if not res.ok:
            kind_of = classify_failure(res)
            if kind_of == "not_found":
                return None
            raise_cluster_error(res, kind_of, self.scope)
        try:
            return json.loads(res.stdout or "{}")
        except json.JSONDecodeError as exc:
            raise ClusterError(f"kubectl returned invalid JSON for {kind}: {exc}") from None


def kubectl_client_version(runner: Runner) -> str:
    """Client version (`v1.33.9`); `--client` reads no kubeconfig and contacts no cluster. Empty when unknown."""
    res = runner.run(Cmd((runner.tool("kubectl"), "version", "--client", "--output", "json"), timeout=15),
                     check=False)
    if not res.ok:
        return ""
    try:
        return str((json.loads(res.stdout or "{}").get("clientVersion") or {}).get("gitVersion", ""))
    except (json.JSONDecodeError, AttributeError):
        return ""


def raise_cluster_error(res: CmdResult, kind_of: str, scope: Scope) -> None:
    where = f"context {scope.context or '(current)'}"
    if kind_of == "unreachable":
        raise ClusterError(f"cluster unreachable ({where})", hint="check the API server address, VPN and "
                           "`kubectl cluster-info`", details=res.tail(5))
    if kind_of == "unauthorized":
        raise ClusterError(f"not authenticated to the cluster ({where})",
                           hint="re-authenticate (refresh your kubeconfig credentials) and retry",
                           details=res.tail(5))
    if kind_of == "forbidden":
        raise ClusterError(f"forbidden by RBAC ({where})", hint="ask for the permissions shown, or use "
                           "another --context", details=res.tail(5))
    raise ClusterError(f"kubectl failed: {res.cmd.display()}", details=res.tail(10))
