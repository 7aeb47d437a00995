"""Allow-list of the values keys the inferencepool chart v1.4.0 reads (values.yaml + templates + epplib).

The chart has no values.schema.json, so a misspelt key is silently ignored by helm. llmd checks its own
values and every `--set values.gaie...` against this tree. A leaf `None` means "free-form below here"
(maps/lists passed through to Kubernetes objects or EPP flags).
"""

from __future__ import annotations

from typing import Any

FREE = None

_IMAGE = {"hub": FREE, "name": FREE, "tag": FREE, "pullPolicy": FREE}

ALLOWED: dict[str, Any] = {
    "inferenceExtension": {
        "replicas": FREE, "image": _IMAGE, "extProcPort": FREE, "failureMode": FREE, "env": FREE, "flags": FREE,
        "pluginsConfigFile": FREE, "pluginsCustomConfig": FREE, "extraContainerPorts": FREE,
        "extraServicePorts": FREE, "affinity": FREE, "tolerations": FREE, "resources": FREE, "volumes": FREE,
        "volumeMounts": FREE, "metricsPort": FREE,
        "sidecar": {"enabled": FREE, "name": FREE, "image": FREE, "imagePullPolicy": FREE, "command": FREE,
                    "args": FREE, "env": FREE, "ports": FREE, "livenessProbe": FREE, "readinessProbe": FREE,
                    "resources": FREE, "volumeMounts": FREE, "volumes": FREE,
                    "configMap": {"name": FREE, "data": FREE}},
        "monitoring": {"interval": FREE,
                       "prometheus": {"enabled": FREE, "auth": {"enabled": FREE, "secretName": FREE},
                                      "extraLabels": FREE}},
        "tracing": {"enabled": FREE, "otelExporterEndpoint": FREE,
                    "sampling": {"sampler": FREE, "samplerArg": FREE}},
        "latencyPredictor": FREE,
    },
    "inferencePool": {
        "targetPorts": FREE, "targetPortNumber": FREE, "modelServerType": FREE, "apiVersion": FREE,
        "modelServers": {"matchLabels": FREE},
    },
    "provider": {
        "name": FREE,
        "gke": {"autopilot": FREE},
        "istio": {"destinationRule": {"host": FREE, "trafficPolicy": FREE}},
    },
    "experimentalHttpRoute": {"enabled": FREE, "inferenceGatewayName": FREE, "baseModel": FREE},
    "latencyPredictor": FREE,
}

# Keys that older charts read and v1.4.0 silently ignores, with what to use instead.
RENAMED = {
    "inferenceExtension.monitoring.secret": "inferenceExtension.monitoring.prometheus.auth.secretName",
    "inferenceExtension.image.registry": "inferenceExtension.image.hub (registry/repository are chart v1.5 keys)",
    "inferenceExtension.image.repository": "inferenceExtension.image.name (registry/repository are chart v1.5 keys)",
}


def unknown_keys(values: Any, allowed: Any = ALLOWED, path: str = "") -> list[str]:
    """Dotted paths in `values` that inferencepool v1.4.0 does not read (with the replacement when known)."""
    if allowed is FREE or not isinstance(values, dict):
        return []
    found = []
    for key, sub in values.items():
        dotted = f"{path}.{key}" if path else str(key)
        if key not in allowed:
            fix = RENAMED.get(dotted)
            found.append(f"{dotted} (use {fix})" if fix else dotted)
            continue
        found += unknown_keys(sub, allowed[key], dotted)
    return found
