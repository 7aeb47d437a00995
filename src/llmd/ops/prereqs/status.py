"""`llmd prereqs status`: every prerequisite, whether this deployment needs it, installed or not, its release,
and whether llmd installed it. Read-only."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from llmd.ops.prereqs.catalog import catalog
from llmd.ops.prereqs.inspect import GMP, State, connect, states
from llmd.ops.target import Target
from llmd.proc import Runner


def needs_lws(settings) -> bool:
    """The rendered model-service values ask for a LeaderWorkerSet (`multinode: true`, e.g. set with
    `--set values.ms.multinode=true`)."""
    from llmd.render import values

    ms = values.apply_overrides(values.ms_values(settings), "ms", settings.value_overrides)
    return bool(ms.get("multinode"))


def needed(settings, key: str, *, lws: bool = False) -> bool:
    if key == "prometheus-operator":
        return bool(settings.monitoring) and catalog().monitoring_bundle(settings.environment) is not None
    if key == GMP:
        return bool(settings.monitoring)
    if key == "lws":
        return lws or needs_lws(settings)
    return True


@dataclass
class StatusReport:
    target: Target
    environment: str
    items: list[tuple[State, bool]] = field(default_factory=list)  # (state, needed)
    notes: list[str] = field(default_factory=list)

    @property
    def missing(self) -> list[str]:
        return [st.key for st, need in self.items if need and not st.ok]

    def to_dict(self) -> dict[str, Any]:
        return {"status": "missing" if self.missing else "ok", "target": self.target.to_dict(),
                "environment": self.environment,
                "prerequisites": [{**st.to_dict(), "needed": need} for st, need in self.items],
                "missing": self.missing, "notes": self.notes}


def status(settings, runner: Runner, *, lws: bool = False, say: Callable[[str], None] | None = None
           ) -> StatusReport:
    cat = catalog()
    kubectl, target = connect(settings, runner, say)
    report = StatusReport(target, settings.environment)
    for st in states(kubectl, cat, settings.environment):
        report.items.append((st, needed(settings, st.key, lws=lws)))
    if cat.control_plane(settings.environment) is None:
        report.notes.append(f"environment {settings.environment}: the platform runs the gateway control plane")
    return report
