"""Preset data (YAML): chart pins and images, accelerator profiles, gateway environments, EPP schedulers."""

from __future__ import annotations

import functools
from importlib import resources
from typing import Any

import yaml


@functools.cache
def _load(name: str) -> dict[str, Any]:
    text = resources.files(__name__).joinpath(f"{name}.yaml").read_text(encoding="utf-8")
    # libyaml when available: these files are parsed on every render, and the C parser is ~5x faster.
    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def load_shared(name: str) -> dict[str, Any]:
    """presets/<name>.yaml parsed once per process: read-only (mutating it changes every later reader)."""
    return _load(name)


def load(name: str) -> dict[str, Any]:
    """A fresh deep copy of presets/<name>.yaml, so callers may mutate what they get."""
    import copy

    return copy.deepcopy(_load(name))
