"""Kubernetes objects llmd applies itself (HTTPRoute, model-cache PVC, model-download Job) and the
helmfile state, as dicts. Every object carries the llmd ownership labels so status/cleanup can select them."""

from __future__ import annotations

from typing import Any

from llmd import presets
from llmd.settings import Settings

MANAGED_BY = {"app.kubernetes.io/managed-by": "llmd"}  # what llmd created, and the only thing it deletes


def is_managed(obj: dict | None) -> bool:
    """True when the object carries llmd's managed-by label."""
    labels = ((obj or {}).get("metadata") or {}).get("labels") or {}
    return all(labels.get(k) == v for k, v in MANAGED_BY.items())


def label_selector(labels: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in labels.items())


def owner_labels(settings: Settings, component: str | None = None) -> dict[str, str]:
    labels = {**MANAGED_BY, "app.kubernetes.io/instance": settings.release_postfix}
    if component:
        labels["app.kubernetes.io/component"] = component
    return labels


def _metadata(settings: Settings, name: str, component: str) -> dict[str, Any]:
    return {"name": name, "namespace": settings.namespace, "labels": owner_labels(settings, component)}


def httproute(settings: Settings) -> dict[str, Any]:
    backend: dict[str, Any] = {"group": "inference.networking.k8s.io", "kind": "InferencePool",
                               "name": settings.pool_name}
    rule: dict[str, Any] = {"backendRefs": [backend]}
    if settings.environment != "gke":  # the GKE route has neither a port nor timeouts (httproute.gke.yaml)
        backend["port"] = presets.load("defaults")["model_server"]["port"]
        rule["timeouts"] = {"backendRequest": "0s", "request": "0s"}  # long generations: no gateway cut-off
    backend["weight"] = 1
    rule["matches"] = [{"path": {"type": "PathPrefix", "value": "/"}}]
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": _metadata(settings, settings.httproute_name, "httproute"),
        "spec": {
            "parentRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": settings.gateway_name}],
            "rules": [rule],
        },
    }


def model_cache_pvc(settings: Settings) -> dict[str, Any]:
    # ReadWriteMany: the decode replicas may land on several nodes and all mount the cache (read-only).
    spec: dict[str, Any] = {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": settings.pvc_size}}}
    if settings.storage_class:
        spec["storageClassName"] = settings.storage_class
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": _metadata(settings, settings.pvc_name, "model-cache"), "spec": spec}


# Runs in the Job container. Idempotent: a marker written after a complete download short-cuts re-runs,
# and snapshot_download itself skips files already in the cache. The model id comes from the environment,
# never from the script text.
DOWNLOAD_SCRIPT = """\
set -eu
marker="$CACHE_ROOT/.llmd/$(echo "$MODEL" | tr / _).complete"
if [ -f "$marker" ]; then
  echo "model $MODEL already complete in the cache ($marker)"
  exit 0
fi
# non-root (restricted Pod Security): install into a scratch dir, not the image's site-packages
pip install --no-cache-dir --quiet --disable-pip-version-check --target /tmp/pylib "$HF_HUB_REQUIREMENT"
PYTHONPATH=/tmp/pylib python - <<'PY'
import os
from huggingface_hub import snapshot_download
# original/ holds the reference (non-HF) checkpoint of Meta repos: vLLM never reads it, it doubles the size
path = snapshot_download(repo_id=os.environ["MODEL"], cache_dir=os.environ["HF_HUB_CACHE"],
                         ignore_patterns=["original/*"])
print("downloaded", os.environ["MODEL"], "to", path, flush=True)
PY
mkdir -p "$(dirname "$marker")"
date -u +%Y-%m-%dT%H:%M:%SZ > "$marker"
echo "model $MODEL complete"
"""


def model_download_job(settings: Settings) -> dict[str, Any]:
    defaults = presets.load("defaults")
    dl = defaults["model_download"]
    mount = defaults["model_server"]["mount_path"]
    env: list[dict[str, Any]] = [
        {"name": "MODEL", "value": settings.model},
        {"name": "CACHE_ROOT", "value": mount},
        {"name": "HF_HUB_CACHE", "value": f"{mount}/{defaults['model_server']['hub_cache_dir']}"},
        {"name": "HF_HUB_REQUIREMENT", "value": dl["huggingface_hub"]},
        {"name": "HF_HUB_DISABLE_TELEMETRY", "value": "1"},
        {"name": "HOME", "value": "/tmp"},  # pip and huggingface_hub write caches under $HOME
    ]
    if settings.needs_hf_token:  # from the Secret llmd creates; the token itself is never rendered
        env.append({"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": settings.hf_secret_name,
                                                                        "key": "HF_TOKEN"}}})
    labels = owner_labels(settings, "model-download")
    uid = int(dl["uid"])
    container_security = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                          "runAsNonRoot": True, "runAsUser": uid, "runAsGroup": uid,
                          "seccompProfile": {"type": "RuntimeDefault"}}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _metadata(settings, settings.download_job_name, "model-download"),
        # No ttlSecondsAfterFinished: deploy reads the finished Job's status on every run.
        "spec": {
            "backoffLimit": dl["backoffLimit"],
            "activeDeadlineSeconds": dl["activeDeadlineSeconds"],
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "restartPolicy": "Never",
                    "securityContext": {"runAsNonRoot": True, "runAsUser": uid, "runAsGroup": uid, "fsGroup": uid,
                                        "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [{
                        "name": "download",
                        "image": settings.download_image or dl["image"],
                        "command": ["/bin/sh", "-c", DOWNLOAD_SCRIPT],
                        "env": env,
                        "resources": dl["resources"],
                        "securityContext": container_security,
                        "volumeMounts": [{"name": "model-cache", "mountPath": mount}],
                    }],
                    "volumes": [{"name": "model-cache", "persistentVolumeClaim": {"claimName": settings.pvc_name}}],
                },
            },
        },
    }


def helmfile(settings: Settings) -> dict[str, Any]:
    """Plain helmfile state (no Go templates, no environments: the environment is baked into the values).
    Chart coordinates come from the pins, or from the air-gap chart sources (llmd.render.mirror)."""
    from llmd.render import mirror

    sources = mirror.chart_sources(settings)
    labels = {"managed-by": "llmd", "kind": "inference-stack"}

    def release(key: str, name: str, needs: list[str]) -> dict[str, Any]:
        src = sources[key]
        entry: dict[str, Any] = {"name": name, "namespace": settings.namespace, "chart": src.chart}
        if src.version is not None:
            entry["version"] = src.version
        entry["installed"] = True
        if needs:
            entry["needs"] = needs
        entry["labels"] = {**labels, "component": key}
        entry["values"] = [f"values/{key}.yaml"]
        return entry

    doc: dict[str, Any] = {}
    repos = [s.repo for s in sources.values() if s.repo is not None]
    if repos:
        doc["repositories"] = repos
    doc["releases"] = [
        release("infra", settings.infra_release, []),
        release("gaie", settings.gaie_release, [settings.infra_release]),
        release("ms", settings.ms_release, [settings.infra_release, settings.gaie_release]),
    ]
    return doc
