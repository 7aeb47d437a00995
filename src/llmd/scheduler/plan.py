"""What the EPP actually runs for a config: each scheduling profile with the loader's defaults applied
(weight 1.0 for a scorer without one, max-score-picker when no picker is referenced, the generated
`default` profile when `schedulingProfiles` is absent). For `llmd scheduler show` and the local gateway."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from llmd.scheduler import registry
from llmd.scheduler.profiles import EppConfig


@dataclass(frozen=True)
class PluginUse:
    name: str
    type: str
    kind: str
    weight: float | None = None  # scorers only
    parameters: dict[str, Any] = field(default_factory=dict)
    implicit: bool = False  # added by the EPP loader, not written in the config


@dataclass(frozen=True)
class ProfilePlan:
    name: str
    filters: tuple[PluginUse, ...]
    scorers: tuple[PluginUse, ...]  # in profile order (the order scores are summed in)
    picker: PluginUse


def plan(doc: EppConfig) -> list[ProfilePlan]:
    """The scheduling profiles of a (validated) config with the EPP loader's defaults filled in."""
    declared: dict[str, dict[str, Any]] = {}
    for p in doc.get("plugins") or []:
        declared[p.get("name", p["type"])] = p
    profiles = doc.get("schedulingProfiles")
    if profiles is None:
        refs = [{"pluginRef": n} for n, p in declared.items()
                if registry.kind(p["type"]) in registry.REFERENCED_KINDS]
        profiles = [{"name": "default", "plugins": refs}]
    out = []
    for prof in profiles:
        filters: list[PluginUse] = []
        scorers: list[PluginUse] = []
        picker: PluginUse | None = None
        for ref in prof.get("plugins") or []:
            p = declared[ref["pluginRef"]]
            kind = registry.kind(p["type"]) or "unknown"
            weight = float(ref.get("weight", registry.DEFAULT_WEIGHT)) if kind == "scorer" else None
            use = PluginUse(ref["pluginRef"], p["type"], kind, weight, dict(p.get("parameters") or {}))
            if kind == "scorer":
                scorers.append(use)
            elif kind == "filter":
                filters.append(use)
            elif kind == "picker" and picker is None:
                picker = use
        if picker is None:
            picker = PluginUse(registry.DEFAULT_PICKER, registry.DEFAULT_PICKER, "picker", implicit=True)
        out.append(ProfilePlan(str(prof.get("name", "default")), tuple(filters), tuple(scorers), picker))
    return out


def weight_rows(doc: EppConfig) -> list[dict[str, Any]]:
    """One row per plugin use (profile, plugin, type, kind, weight, parameters) for tables and --json."""
    rows = []
    for prof in plan(doc):
        for use in (*prof.filters, *prof.scorers, prof.picker):
            rows.append({"profile": prof.name, "plugin": use.name, "type": use.type, "kind": use.kind,
                         "weight": use.weight, "parameters": use.parameters, "implicit": use.implicit})
    return rows
