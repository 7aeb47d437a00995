"""Typed facts about gateway environments and accelerators, read from the preset data (the one source).

Adding an environment or an accelerator is one entry in presets/environments.yaml or presets/accelerators.yaml
(plus its name in the choices of llmd.settings, which tests/test_presets.py checks against the data).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from llmd import presets

# Keys of accelerators.yaml that are not accelerator profiles.
ACCELERATOR_META_KEYS = ("gpu_resources", "small_cluster")
# Namespaces of the cluster itself and of shared add-ons; each environment adds its system namespace.
CLUSTER_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease", "gmp-system", "gmp-public",
                      "cert-manager", "monitoring", "lws-system")


@dataclass(frozen=True)
class Environment:
    name: str
    gateway_class: str
    system_namespace: str
    service: str | None  # Service name template, {gateway}; None: no Service, use the Gateway's address
    install: str

    def service_name(self, gateway: str) -> str | None:
        return self.service.format(gateway=gateway) if self.service else None


@dataclass(frozen=True)
class Accelerator:
    name: str
    accelerator_type: str
    engine: str
    gpu_resource: str | None  # the extended resource a replica requests; None: no accelerator


def environment_names() -> tuple[str, ...]:
    return tuple(presets.load_shared("environments"))


def accelerator_names() -> tuple[str, ...]:
    return tuple(k for k in presets.load_shared("accelerators") if k not in ACCELERATOR_META_KEYS)


@functools.cache
def environment(name: str) -> Environment:
    data = presets.load_shared("environments")[name]
    return Environment(name, data["gateway_class"], data["system_namespace"], data["service"], data["install"])


@functools.cache
def accelerator(name: str) -> Accelerator:
    from llmd.render import layers  # the modelservice values layer names the chart's accelerator.type

    data = presets.load_shared("accelerators")
    kind = layers.ms(name)["accelerator"]["type"]
    return Accelerator(name, kind, data[name]["engine"], data["gpu_resources"].get(kind))


def service_naming() -> str:
    """How each environment names its gateway Service, for hints: 'istio names it <gateway>-istio, ...'."""
    by_template: dict[str, list[str]] = {}
    for name in environment_names():
        env = environment(name)
        if env.service:
            by_template.setdefault(env.service, []).append(name)
    return ", ".join(f"{'/'.join(names)} name{'s' if len(names) == 1 else ''} it {template.format(gateway='<gateway>')}"
                     for template, names in by_template.items())


@functools.cache
def protected_namespaces() -> frozenset[str]:
    """Never deployed into nor cleaned up: the cluster's own, shared add-ons', every gateway control plane's."""
    return frozenset(CLUSTER_NAMESPACES) | {environment(n).system_namespace for n in environment_names()}
