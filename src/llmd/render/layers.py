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


def _merge(base: Any, over: Any) -> Any:
    """`over` deep-merged onto `base`: mappings key by key, lists item by item (as containers[0] reads), scalars
    replaced."""
    if isinstance(base, dict) and isinstance(over, dict):
        return {**base, **{k: _merge(base[k], v) if k in base else v for k, v in over.items()}}
    if isinstance(base, list) and isinstance(over, list):
        return [_merge(b, o) for b, o in zip(base, over, strict=False)] + base[len(over):] + over[len(base):]
    return over


def ms(accelerator: str) -> dict[str, Any]:
    """The static llm-d-modelservice values of one accelerator: charts-values/ms/<accelerator>.yaml over base.yaml
    (a fresh copy)."""
    return copy.deepcopy(_merge(_read("ms", "base"), _read("ms", accelerator)))
