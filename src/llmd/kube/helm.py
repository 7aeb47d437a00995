"""helm and helmfile with the pinned scope injected into every call.

helm takes `--kube-context/--kubeconfig/--namespace`; helmfile takes `--kube-context/--namespace` as
global flags before the subcommand and has no `--kubeconfig` flag, so the kubeconfig reaches it (and
the helm it runs) through the KUBECONFIG variable of that one child.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from llmd.errors import ClusterError, ExitCode
from llmd.kube.kubectl import Scope, classify_failure, raise_cluster_error
from llmd.proc import Cmd, CmdResult, Runner

PENDING = ("pending-install", "pending-upgrade", "pending-rollback")

HELM_TIMEOUT_S = 60.0
HELMFILE_TIMEOUT_S = 900.0  # chart downloads + three installs; readiness is waited for separately


@dataclass(frozen=True)
class Release:
    name: str
    status: str  # deployed | failed | pending-install | pending-upgrade | pending-rollback | uninstalling ...
    revision: int
    chart: str = ""

    @property
    def pending(self) -> bool:
        return self.status in PENDING

    def to_dict(self) -> dict:
        return {"name": self.name, "status": self.status, "revision": self.revision, "chart": self.chart}


def parse_version(text: str) -> tuple[int, int] | None:
    """(major, minor) from `v3.16.2+g…`, `helmfile version 1.1.3`, `v1.31.0`; None when absent."""
    m = re.search(r"v?(\d+)\.(\d+)(?:\.\d+)?", text or "")
    return (int(m.group(1)), int(m.group(2))) if m else None


def helm_version(runner: Runner) -> str:
    """Client version (`v3.16.2+g…`); a local call, no cluster. Empty when it cannot be read."""
    res = runner.run(Cmd((runner.tool("helm"), "version", "--short"), timeout=15), check=False)
    return res.stdout.strip() if res.ok else ""


def helmfile_version(runner: Runner) -> str:
    res = runner.run(Cmd((runner.tool("helmfile"), "--version"), timeout=15), check=False)
    return (res.stdout or res.stderr).strip() if res.ok else ""


class Helm:
    def __init__(self, runner: Runner, scope: Scope) -> None:
        self.runner = runner
        self.scope = scope

    def cmd(self, *args: str, mutates: bool = False, timeout: float | None = HELM_TIMEOUT_S, title: str = "") -> Cmd:
        return Cmd((self.runner.tool("helm"), *args, *self.scope.helm_flags()), mutates=mutates, timeout=timeout,
                   title=title, env=self.scope.env())

    def _read(self, *args: str) -> CmdResult:
        res = self.runner.run(self.cmd(*args), check=False)
        if not res.ok and not res.dry_run:
            kind = classify_failure(res)
            if kind != "not_found":
                raise_cluster_error(res, kind, self.scope)
        return res

    def releases(self) -> dict[str, Release]:
        """Every release in the namespace, whatever its status (`--all` includes pending and failed)."""
        res = self._read("list", "--all", "--output", "json")
        if res.dry_run or not res.ok:
            return {}
        try:
            rows = json.loads(res.stdout or "[]") or []
        except json.JSONDecodeError as exc:
            raise ClusterError(f"helm list returned invalid JSON: {exc}") from None
        out = {}
        for row in rows:
            name = row.get("name", "")
            try:
                revision = int(row.get("revision") or 0)
            except (TypeError, ValueError):
                revision = 0
            out[name] = Release(name, str(row.get("status", "")), revision, str(row.get("chart", "")))
        return out

    def history(self, release: str) -> list[dict]:
        res = self._read("history", release, "--max", "20", "--output", "json")
        if res.dry_run or not res.ok:
            return []
        try:
            return json.loads(res.stdout or "[]") or []
        except json.JSONDecodeError as exc:
            raise ClusterError(f"helm history returned invalid JSON: {exc}") from None

    def uninstall(self, release: str, *, check: bool = True) -> CmdResult:
        return self.runner.run(self.cmd("uninstall", release, mutates=True, timeout=300,
                                        title=f"uninstall {release}"),
                               check=check, fail_code=ExitCode.DEPLOY_FAILED)

    def rollback(self, release: str, revision: int) -> CmdResult:
        return self.runner.run(self.cmd("rollback", release, str(revision), mutates=True, timeout=300,
                                        title=f"roll back {release}"),
                               check=True, fail_code=ExitCode.DEPLOY_FAILED)


class Helmfile:
    def __init__(self, runner: Runner, scope: Scope) -> None:
        self.runner = runner
        self.scope = scope

    def cmd(self, file: Path, *subcommand: str, mutates: bool = True, timeout: float | None = HELMFILE_TIMEOUT_S,
            selector: str | None = None) -> Cmd:
        flags: list[str] = ["--file", str(file)]
        if self.scope.context:
            flags += ["--kube-context", self.scope.context]
        if self.scope.namespace:  # it overrides every release's own namespace: none for multi-namespace files
            flags += ["--namespace", self.scope.namespace]
        flags += ["--helm-binary", self.runner.tool("helm")]
        if selector:  # only the releases whose helmfile labels match (e.g. component=gaie)
            flags += ["--selector", selector]
        return Cmd((self.runner.tool("helmfile"), *flags, *subcommand), mutates=mutates,
                   env=self.scope.env(always=True), timeout=timeout,
                   cwd=str(file.parent), title="helmfile " + " ".join(subcommand))

    def sync(self, file: Path, *, on_line=None, selector: str | None = None) -> CmdResult:
        return self.runner.run(self.cmd(file, "sync", selector=selector), check=True, on_line=on_line,
                               fail_code=ExitCode.DEPLOY_FAILED)
