"""The static chart values layers of charts-values/<release>/<name>.yaml: readable YAML an operator can diff
against the upstream guide's values. Render merges in what it computes (names, counts, args) in code."""

from __future__ import annotations

import copy
import functools
from typing import Any

import yaml

from llmd.paths import data_dir


@functools.cache
def _read(release: str, name: str) -> dict[str, Any]:
    path = data_dir("charts-values") / release / f"{name}.yaml"
    data = yaml.load(path.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a mapping of chart values")
    return data


def layer(release: str, name: str) -> dict[str, Any]:
    """A fresh copy of charts-values/<release>/<name>.yaml (callers may change what they get)."""
    return copy.deepcopy(_read(release, name))
