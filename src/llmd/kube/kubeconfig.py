"""Contexts and namespaces read straight from the kubeconfig files (no kubectl, no cluster call): fast enough
for shell completion on every <TAB>."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def kubeconfig_paths(explicit: str | None = None) -> list[Path]:
    """--kubeconfig, else $KUBECONFIG (a ':'-list kubectl merges), else ~/.kube/config."""
    raw = explicit or os.environ.get("KUBECONFIG") or str(Path.home() / ".kube" / "config")
    return [Path(p).expanduser() for p in raw.split(os.pathsep) if p]


def read_contexts(explicit: str | None = None) -> list[dict[str, Any]]:
    """[{"name", "namespace"}] of every context in the kubeconfig files; unreadable files count as empty."""
    import yaml

    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for path in kubeconfig_paths(explicit):
        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError, UnicodeDecodeError):
            continue
        for entry in (doc.get("contexts") or []) if isinstance(doc, dict) else []:
            name = entry.get("name") if isinstance(entry, dict) else None
            if not isinstance(name, str) or name in seen:  # kubectl: the first file that names a context wins
                continue
            seen.add(name)
            ctx = entry.get("context") or {}
            out.append({"name": name, "namespace": ctx.get("namespace") if isinstance(ctx, dict) else None})
    return out
