"""Every container image a rendered stack pulls, for mirroring into an air-gapped registry.

Read from the rendered files themselves (chart values and manifests, after every --set and config `values:`), so
the list cannot drift from what deploy applies: a string `image:` is one image; a chart-style mapping
`image: {hub|registry, name|repository, tag}` is joined as the inferencepool and routing charts do.
Gateway data-plane pods are started by the gateway control plane (Istio, agentgateway, ...) from its own
images: they are that product's pins, not the stack's (`llmd prereqs status` shows what is installed).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml


def _image_ref(value: Any) -> str | None:
    if isinstance(value, str):
        return value or None
    if not isinstance(value, dict):
        return None
    name = value.get("name") or value.get("repository")
    if not name:
        return None
    hub = value.get("hub") or value.get("registry")
    ref = f"{hub}/{name}" if hub else str(name)
    if value.get("tag"):
        ref += f":{value['tag']}"
    if value.get("digest"):
        ref += f"@{value['digest']}"
    return ref


def _walk(node: Any, found: list[str]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "image" and (ref := _image_ref(value)):
                found.append(ref)
            else:
                _walk(value, found)
    elif isinstance(node, list):
        for item in node:
            _walk(item, found)


def bundle_images(files: Mapping[str, str]) -> list[dict[str, Any]]:
    """[{"image": ref, "files": [rendered file, ...]}] in first-seen order, one entry per distinct image."""
    where: dict[str, list[str]] = {}
    for rel, text in files.items():
        if not rel.endswith((".yaml", ".yml")) or rel.endswith("helmfile.yaml"):
            continue
        found: list[str] = []
        for doc in yaml.safe_load_all(text):
            _walk(doc, found)
        for ref in found:
            if rel not in where.setdefault(ref, []):
                where[ref].append(rel)
    return [{"image": ref, "files": rels} for ref, rels in where.items()]
