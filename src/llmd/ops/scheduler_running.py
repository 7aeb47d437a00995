"""The EPP config the running endpoint picker was started with, read from the cluster.

The chart starts the EPP with `--config-file /config/<file>` and mounts its ConfigMap at /config, so the
Deployment's args name the file and the ConfigMap holds its text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from llmd.errors import NotReadyError
from llmd.kube.kubectl import Kubectl


@dataclass(frozen=True)
class RunningEpp:
    deployment: dict[str, Any]
    config_file: str  # the file name under /config
    text: str  # its content in the ConfigMap ("" when the key is missing)
    pod_selector: str  # label selector of the EPP's pods
    desired: int

    @property
    def doc(self) -> dict[str, Any] | None:
        import yaml

        try:
            loaded = yaml.safe_load(self.text) if self.text else None
        except yaml.YAMLError:
            return None
        return loaded if isinstance(loaded, dict) else None


def config_file_arg(deployment: dict[str, Any]) -> str | None:
    """The --config-file value of the EPP container (`--config-file X` or `--config-file=X`)."""
    containers = ((deployment.get("spec") or {}).get("template") or {}).get("spec", {}).get("containers") or []
    for c in containers:
        args = [str(a) for a in (c.get("args") or [])]
        for i, arg in enumerate(args):
            if arg == "--config-file" and i + 1 < len(args):
                return args[i + 1]
            if arg.startswith("--config-file="):
                return arg.split("=", 1)[1]
    return None


def selector_of(deployment: dict[str, Any]) -> str:
    labels = ((deployment.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def read_running(settings: Any, kubectl: Kubectl) -> RunningEpp:
    """NotReadyError (exit 6) when there is no EPP to read: the stack is not deployed."""
    dep = kubectl.get_json("deployments.apps", settings.epp_name)
    if dep is None:
        raise NotReadyError(f"no endpoint picker Deployment {settings.epp_name} in namespace {settings.namespace}",
                            hint="deploy the stack first (`llmd deploy`), or pass the -n/--release-postfix it "
                                 "was deployed with")
    path = config_file_arg(dep) or ""
    name = path.rsplit("/", 1)[-1]
    cm = kubectl.get_json("configmaps", settings.epp_name) or {}
    text = str((cm.get("data") or {}).get(name, ""))
    desired = (dep.get("spec") or {}).get("replicas")
    return RunningEpp(dep, name, text, selector_of(dep), 1 if desired is None else int(desired))
