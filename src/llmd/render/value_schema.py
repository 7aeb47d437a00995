"""The chart-value schema llmd checks before anything runs: the keys llmd renders and users `--set`.

Helm enforces a chart's values.schema.json only at install time, after the namespace, the token Secret and the
model download already ran; `--set values.ms.decode.replicas=two` must fail at once (exit 2) instead. This is
llmd's own minimal schema, written from the facts of llm-d-modelservice v0.4.9 and llm-d-infra v1.4.0 (the
types of the keys llmd sets, and which mappings are closed: `additionalProperties: false` there). Mappings the
charts leave open accept any key; a key one typo away from a known one is still refused with the suggestion.
Tests check this schema against the upstream files when ../shared is present (tests/test_value_schema.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Union

from llmd.suggest import close_match

# a scalar type name: string, integer, number, boolean, quantity (a Kubernetes quantity: string or number), any
Node = Union[str, "Obj", "Arr"]


@dataclass(frozen=True)
class Obj:
    props: dict[str, Node] = field(default_factory=dict)
    closed: bool = False  # additionalProperties: false in the chart's schema
    values: Node = "any"  # the type of keys not in props (open mappings only)


@dataclass(frozen=True)
class Arr:
    items: Node = "any"


_CONTAINER = Obj({  # the Kubernetes Container fields llmd renders; the chart passes the rest through
    "name": "string", "image": "string", "imagePullPolicy": "string", "modelCommand": "string",
    "command": Arr("string"), "args": Arr("string"), "env": Arr(Obj({"name": "string"})),
    "ports": Arr(Obj({"containerPort": "integer", "name": "string", "protocol": "string"})),
    "resources": Obj({"limits": Obj(values="quantity"), "requests": Obj(values="quantity")}),
    "mountModelVolume": "boolean", "volumeMounts": Arr(Obj({"name": "string", "mountPath": "string"})),
    "startupProbe": Obj(), "livenessProbe": Obj(), "readinessProbe": Obj(),
})
_PARALLELISM = Obj({"tensor": "integer", "data": "integer", "dataLocal": "integer", "workers": "integer"},
                   closed=True)
_ACCELERATOR_TYPES = Obj({"labelKey": "string", "labelValues": Arr("string")}, closed=True)


def _pods() -> Obj:
    return Obj({
        "create": "boolean", "replicas": "integer", "parallelism": _PARALLELISM,
        "acceleratorTypes": _ACCELERATOR_TYPES, "autoscaling": Obj({"enabled": "boolean"}, closed=True),
        "containers": Arr(_CONTAINER), "initContainers": Arr(_CONTAINER), "volumes": Arr(Obj({"name": "string"})),
        "monitoring": Obj(), "nodeSelector": Obj(values="string"), "resourceClaims": Arr(),
    })


MODELSERVICE = Obj({
    **dict.fromkeys(("common", "enabled", "extraObjects", "fullnameOverride", "global", "requester",
                     "serviceAccountOverride", "tracing"), "any"),
    "multinode": "boolean",
    "modelArtifacts": Obj({"uri": "any", "name": "any", "size": "string", "mountPath": "string",
                           "authSecretName": "string", "labels": Obj(values="string")}, closed=True),
    "routing": Obj({"servicePort": "any", "proxy": Obj({
        "enabled": "boolean", "targetPort": "integer", "image": "string", "imagePullPolicy": "string",
        "connector": "string", "secure": "boolean"})}, closed=True),
    "accelerator": Obj({
        "type": "string", "dra": "boolean", "env": Obj({"intel-i915": Arr(), "intel-xe": Arr()}, closed=True),
        "resources": Obj(dict.fromkeys(("amd", "google", "intel-gaudi", "intel-i915", "intel-xe", "nvidia"),
                                       "string"), closed=True),
        "resourceClaimTemplates": Obj(dict.fromkeys(("amd", "google", "intel", "intel-gaudi", "intel-i915",
                                                     "intel-xe", "nvidia"), "any"), closed=True)}, closed=True),
    "decode": _pods(), "prefill": _pods(),
})

INFRA = Obj({
    **dict.fromkeys(("clusterDomain", "common", "commonAnnotations", "commonLabels", "extraDeploy",
                     "fullnameOverride", "global", "ingress", "kubeVersion", "nameOverride"), "any"),
    "gateway": Obj({
        **dict.fromkeys(("annotations", "destinationRule", "enabled", "exposure", "fullnameOverride", "labels",
                         "listeners", "nameOverride", "service", "tls"), "any"),
        "gatewayClassName": "string",
        "provider": "string",
        "gatewayParameters": Obj({
            "enabled": "any", "logLevel": "any",
            "agentgateway": Obj(dict.fromkeys(("env", "istio", "rawConfig", "shutdown"), "any"), closed=True),
            "istio": Obj({"accessLogging": "any"}, closed=True),
            "resources": Obj({"limits": Obj(values="quantity"), "requests": Obj(values="quantity")}),
        }, closed=True),
    }, closed=True),
}, closed=True)

# Keyed like --set values.<release>: the inferencepool chart has no schema (render.gaie_keys checks it).
SCHEMAS: dict[str, tuple[str, Obj]] = {"ms": ("llm-d-modelservice", MODELSERVICE), "infra": ("llm-d-infra", INFRA)}

_TYPE_TEXT = {"string": "a string", "integer": "an integer", "number": "a number", "boolean": "true or false",
              "quantity": "a Kubernetes quantity (string or number)"}


def _type_ok(kind: str, value: Any) -> bool:
    if kind == "any" or value is None:  # null removes a key in helm: always allowed
        return True
    if kind == "string":
        return isinstance(value, str)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind in ("number", "quantity"):
        return (isinstance(value, (int, float)) and not isinstance(value, bool)) or (
            kind == "quantity" and isinstance(value, str))
    raise AssertionError(f"unknown schema type {kind}")


def errors(node: Node, value: Any, path: str) -> list[str]:
    """Every place `value` breaks `node`, as `path: problem` lines."""
    if isinstance(node, str):
        return [] if _type_ok(node, value) else [f"{path}: {value!r} is not {_TYPE_TEXT[node]}"]
    if value is None:
        return []
    if isinstance(node, Arr):
        if not isinstance(value, list):
            return [f"{path}: {value!r} is not a list"]
        return [e for i, item in enumerate(value) for e in errors(node.items, item, f"{path}[{i}]")]
    if not isinstance(value, dict):
        return [f"{path}: {value!r} is not a mapping"]
    out: list[str] = []
    for raw_key, sub in value.items():
        key = str(raw_key)
        if key in node.props:
            out += errors(node.props[key], sub, f"{path}.{key}")
            continue
        guess = close_match(key, list(node.props))
        if node.closed:
            out.append(f"{path}.{key}: not a key the chart accepts here"
                       + (f"; did you mean {guess!r}?" if guess else f" (known: {', '.join(sorted(node.props))})"))
        elif guess:  # the chart would take it and ignore it: almost always a typo
            out.append(f"{path}.{key}: unknown key; did you mean {guess!r}?")
        else:
            out += errors(node.values, sub, f"{path}.{key}")
    return out
