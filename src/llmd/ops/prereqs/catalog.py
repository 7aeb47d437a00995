"""The pinned prerequisites (presets/prereqs.yaml) as typed, immutable data."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from llmd import presets
from llmd.render.manifests import MANAGED_BY  # noqa: F401  # the one managed-by label, re-exported

COMPONENT_LABEL = "llmd.ai/prereq"  # which prerequisite an object llmd installed belongs to
VERSION_ANNOTATION = "llmd.ai/prereq-version"
RECORD = "llmd-prereqs"  # the ConfigMap, in a chart component's namespace, recording what llmd installed there


@dataclass(frozen=True)
class CrdBundle:
    key: str
    title: str
    version: str
    url: str
    groups: tuple[str, ...]
    version_annotation: str
    markers: Mapping[str, str]  # CRD name -> API version it must serve


@dataclass(frozen=True)
class ChartRelease:
    name: str
    chart: str
    needs: tuple[str, ...] = ()
    values: Mapping[str, Any] = field(default_factory=dict)
    images: Mapping[str, Any] = field(default_factory=dict)  # values path -> the chart's default image (prefix)


@dataclass(frozen=True)
class ChartComponent:
    key: str  # istio | agentgateway | kgateway | lws
    title: str
    namespace: str
    version: str
    releases: tuple[ChartRelease, ...]
    repositories: Mapping[str, str] = field(default_factory=dict)
    gateway_class: str | None = None
    deployment: str | None = None  # the controller; None: every Deployment in the namespace
    env: Mapping[str, str] = field(default_factory=dict)  # env the controller's container must carry
    crd: str | None = None  # a CRD the chart itself installs (LWS)
    extension_release: str | None = None  # the release whose values turn the inference extension on
    extension_sets: tuple[str, ...] = ()  # the `helm --set` items that do
    no_mirror: str | None = None  # why --image-mirror cannot be applied to it

    def release(self, name: str) -> ChartRelease:
        return next(r for r in self.releases if r.name == name)


@dataclass(frozen=True)
class Catalog:
    crds: Mapping[str, CrdBundle]
    charts: Mapping[str, ChartComponent]
    managed_environments: tuple[str, ...]

    def control_plane(self, environment: str) -> ChartComponent | None:
        """The gateway control plane of an environment; None where the platform manages it (GKE)."""
        return None if environment in self.managed_environments else self.charts[environment]

    def monitoring_bundle(self, environment: str) -> CrdBundle | None:
        """The CRDs --monitoring needs that llmd installs; None where the platform provides the monitoring API
        (GKE: Managed Prometheus' PodMonitoring, which deploy and doctor check there instead)."""
        return None if environment in self.managed_environments else self.crds["prometheus-operator"]

    def bundle_of_group(self, group: str) -> CrdBundle | None:
        return next((b for b in self.crds.values() if group in b.groups), None)


@functools.cache
def catalog() -> Catalog:
    data = presets.load("prereqs")
    crds = {k: CrdBundle(k, v["title"], v["version"], v["url"], tuple(v["groups"]), v["version_annotation"],
                         dict(v["markers"])) for k, v in data["crds"].items()}
    charts = {}
    for k, v in data["charts"].items():
        releases = tuple(ChartRelease(r["name"], r["chart"], tuple(r.get("needs") or ()), r.get("values") or {},
                                      r.get("images") or {})
                         for r in v["releases"])
        ext = v.get("extension") or {}
        charts[k] = ChartComponent(k, v["title"], v["namespace"], str(v["version"]), releases,
                                   dict(v.get("repositories") or {}), v.get("gateway_class"), v.get("deployment"),
                                   {str(a): str(b) for a, b in (v.get("env") or {}).items()}, v.get("crd"),
                                   ext.get("release"), tuple(str(i) for i in ext.get("set") or ()),
                                   v.get("image_mirror"))
    return Catalog(crds, charts, tuple(data["managed_environments"]))


def version_key(text: str | None) -> tuple[int, ...] | None:
    """`v1.5.1`, `1.29.1-distroless`, `v0.85.0` -> (1, 5, 1); None when there is no version in it."""
    m = re.match(r"^v?(\d+)(?:\.(\d+))?(?:\.(\d+))?", (text or "").strip())
    return tuple(int(g or 0) for g in m.groups()) if m else None


def newer(installed: str | None, pinned: str) -> bool:
    """Installed is a strictly newer release than what llmd pins (so applying the pin would downgrade it)."""
    a, b = version_key(installed), version_key(pinned)
    return a is not None and b is not None and a > b
