"""The exact `llmd prereqs install ...` command that fixes a missing prerequisite (doctor, status, hints)."""

from __future__ import annotations

import shlex


def install_command(settings, context: str | None, *, lws: bool = False, monitoring: bool | None = None) -> str:
    """Same cluster (context, kubeconfig) and gateway environment as the check that found the gap."""
    parts = ["llmd", "prereqs", "install"]
    if settings.environment != "istio":
        parts += ["-e", settings.environment]
    if context:
        parts += ["--context", context]
    if settings.kubeconfig:
        parts += ["--kubeconfig", settings.kubeconfig]
    if lws:
        parts.append("--lws")
    if settings.monitoring if monitoring is None else monitoring:
        parts.append("--monitoring")
    return shlex.join(parts)
