"""The plugin registry of the pinned EPP image (presets/epp_plugins.yaml) as typed lookups.

An unregistered `type` makes the EPP exit at start ("plugin type 'X' is not registered"), so every
config llmd renders or is given is checked against this table first.
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

API_VERSION = "inference.networking.x-k8s.io/v1alpha1"
KIND = "EndpointPickerConfig"
# EndpointPickerConfig fields of GAIE v1.4.0; the EPP decodes strictly, so anything else is an error.
TOP_LEVEL_KEYS = ("apiVersion", "kind", "featureGates", "plugins", "schedulingProfiles", "saturationDetector",
                  "data", "flowControl")
PLUGIN_KEYS = ("type", "name", "parameters")
PROFILE_KEYS = ("name", "plugins")
REF_KEYS = ("pluginRef", "weight")
REFERENCED_KINDS = ("scorer", "filter", "picker")  # what a scheduling profile lists
DEFAULT_WEIGHT = 1.0  # GAIE loader default for a scorer without `weight`
DEFAULT_PICKER = "max-score-picker"  # appended by the loader when a profile references no picker


@dataclass(frozen=True)
class PluginType:
    name: str
    kind: str  # scorer | picker | filter | profile-handler | other
    # name -> type word, or a nested schema (a mapping of the same shape); None: not documented (unchecked)
    params: dict[str, Any] | None = None
    deprecated: str | None = None  # the type that replaces this deprecated alias
    renamed_params: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class Rename:
    old: str
    use: str | None
    why: str

    def fix(self) -> str:
        return f"use {self.use}: {self.why}" if self.use else self.why


@functools.cache
def _table() -> dict[str, Any]:
    from llmd import presets

    return presets.load("epp_plugins")


@functools.cache
def types() -> dict[str, PluginType]:
    table = _table()
    renamed = table.get("renamed_params") or {}
    return {name: PluginType(name, spec["kind"], spec.get("params"), spec.get("deprecated"),
                             renamed.get(name) or {})
            for name, spec in table["types"].items()}


def get(type_name: str) -> PluginType | None:
    return types().get(type_name)


def kind(type_name: str) -> str | None:
    t = get(type_name)
    return t.kind if t else None


def is_scorer(type_name: str) -> bool:
    return kind(type_name) == "scorer"


def names_of_kind(*kinds: str) -> list[str]:
    return [t.name for t in types().values() if t.kind in kinds]


def renamed_type(type_name: str) -> Rename | None:
    spec = (_table().get("renamed_types") or {}).get(type_name)
    return Rename(type_name, spec.get("use"), " ".join(str(spec["why"]).split())) if spec else None


def renamed_param(type_name: str, param: str) -> Rename | None:
    t = get(type_name)
    spec = t.renamed_params.get(param) if t else None
    return Rename(param, spec.get("use"), " ".join(str(spec["why"]).split())) if spec else None


def field_name(spec: Mapping[str, Any], key: str) -> str | None:
    """The schema field a parameter key decodes into, as Go's json.Unmarshal matches it: the exact name, else a
    case-insensitive match (`blocksize` sets blockSize)."""
    if key in spec:
        return key
    return next((name for name in spec if name.lower() == key.lower()), None)


def lookup(node: Any, name: str) -> Any:
    """The value a Go struct field `name` receives from a decoded mapping (exact key first, then any case)."""
    if not isinstance(node, dict):
        return None
    if name in node:
        return node[name]
    return next((v for k, v in node.items() if isinstance(k, str) and k.lower() == name.lower()), None)


def did_you_mean(word: str, choices: Sequence[str]) -> str | None:
    """The closest choice, for 'did you mean ...?' (None when nothing is close)."""
    match = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    if match:
        return match[0]
    # a shortened name (`queue` for queue-scorer) is far from the full one by edit distance
    starts = [c for c in choices if len(word) >= 3 and c.startswith(word)]
    return starts[0] if len(starts) == 1 else None


def type_matches(value: Any, expected: str) -> bool:
    """Whether a YAML value decodes into the Go field type `expected` (json.Unmarshal rules)."""
    if expected == "bool":
        return isinstance(value, bool)
    if expected == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if expected == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if expected in ("string", "duration"):
        return isinstance(value, str)
    if expected == "list":
        return isinstance(value, list)
    if expected == "object":
        return isinstance(value, dict)
    return True


TYPE_WORDS = {"bool": "true or false", "int": "an integer", "number": "a number", "string": "a string",
              "duration": "a duration string like \"2m\"", "list": "a list", "object": "a mapping"}
