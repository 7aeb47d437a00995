"""The llmd-owned ConfigMap that records what was last deployed (the bundle digest).

`deploy` skips `helmfile sync` when the digest of the freshly rendered bundle equals the recorded one
and every release is `deployed`: a second identical deploy changes nothing.
"""

from __future__ import annotations

import json

DIGEST_ANNOTATION = "llmd.io/bundle-digest"


def configmap_name(settings) -> str:
    return f"llmd-{settings.release_postfix}-state"


def configmap_manifest(settings, digest: str) -> bytes:
    from llmd import __version__
    from llmd.render.manifests import owner_labels

    doc = {"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": configmap_name(settings), "namespace": settings.namespace,
                        "labels": owner_labels(settings, "state"),
                        "annotations": {DIGEST_ANNOTATION: digest}},
           "data": {"llmd-version": __version__, "releases": ",".join(settings.releases), "model": settings.model}}
    return json.dumps(doc).encode()
