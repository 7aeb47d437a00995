"""YAML output that Go/Helm (sigs.k8s.io/yaml, YAML 1.1 rules) reads back exactly as written.

PyYAML's SafeDumper already quotes the strings *its* resolver would turn into something else, but Go's
resolver is broader: `y`/`n` are booleans, `1e3` is a float, `0o17` an octal. `dump()` quotes every
string either reader could mistake, and `load()` parses with those broader rules so a round-trip check
(`check_roundtrip`) catches anything that slipped through.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

# Scalars that some YAML 1.1 / 1.2 / Go resolver reads as bool, null, int, float or time.
_WORDS = frozenset({"y", "n", "yes", "no", "on", "off", "true", "false", "null", "~", ""})
_NUMBER = re.compile(
    r"""^[-+]?(?:
        0b[01_]+                                  # binary
      | 0o?[0-7_]+                                # octal (1.1 `010`, 1.2 `0o17`)
      | 0x[0-9a-fA-F_]+                           # hex
      | [0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?  # sexagesimal 12:30
      | (?:[0-9][0-9_]*)?\.?[0-9_]*(?:[eE][-+]?[0-9]+)?  # 1, 1.10, .5, 1e3, 1_000
      | \.(?:inf|nan)                             # .inf .nan
    )$""",
    re.VERBOSE | re.IGNORECASE,
)
_DATE = re.compile(r"^\d{4}-\d\d?-\d\d?(?:[Tt ].*)?$")


def ambiguous(text: str) -> bool:
    """True when an unquoted `text` would not be read back as the same string by some YAML reader."""
    if text.lower() in _WORDS or text in ("=", "<<"):
        return True
    if _NUMBER.match(text) and (any(c.isdigit() for c in text) or text.lstrip("+-").lower() in (".inf", ".nan")):
        return True
    return bool(_DATE.match(text))


class SafeDumper(yaml.SafeDumper):
    """Block style, key order kept, ambiguous strings double-quoted, multi-line strings as `|` blocks."""

    def ignore_aliases(self, data: Any) -> bool:  # never emit &anchors / *aliases (Helm reads them, humans don't)
        return True

    def increase_indent(self, flow: bool = False, indentless: bool = False):  # lists indented under their key
        return super().increase_indent(flow, False)


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    if "\n" in data and not any(line != line.rstrip() for line in data.split("\n")):
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|")
    if ambiguous(data):
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style='"')
    return dumper.represent_scalar("tag:yaml.org,2002:str", data)


SafeDumper.add_representer(str, _represent_str)


def dump(data: Any) -> str:
    """One YAML document (no `---`), ending in a newline."""
    return yaml.dump(data, Dumper=SafeDumper, sort_keys=False, default_flow_style=False, allow_unicode=True,
                     width=4096)


def dump_all(docs: list[Any]) -> str:
    return "---\n".join(dump(d) for d in docs)


# libyaml's parser when PyYAML has it (several times faster); resolution and construction stay in Python,
# so the Go-like rules below apply either way.
_BaseLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class GoLikeLoader(_BaseLoader):  # type: ignore[valid-type,misc]  # a base chosen at import time
    """SafeLoader plus the implicit types Go's YAML 1.1 resolver has and PyYAML lacks (y/n, 1e3, 0o17)."""


GoLikeLoader.yaml_implicit_resolvers = {k: list(v) for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
GoLikeLoader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:y|Y|n|N)$"), list("yYnN"))
GoLikeLoader.add_implicit_resolver("tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+$"),
                                   list("-+0123456789"))
GoLikeLoader.add_implicit_resolver("tag:yaml.org,2002:int", re.compile(r"^[-+]?0o[0-7_]+$"), list("-+0"))


def _bool(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> bool:
    return loader.construct_scalar(node).lower() in ("y", "yes", "true", "on")


def _float(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> float:
    text = loader.construct_scalar(node)
    if re.match(r"^[-+]?[0-9][0-9_]*[eE]", text):  # 1e3: Go reads a float, PyYAML has no rule for it
        return float(text.replace("_", ""))
    return yaml.SafeLoader.construct_yaml_float(loader, node)


def _int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    text = loader.construct_scalar(node).replace("_", "")
    if re.match(r"^[-+]?0o", text):  # YAML 1.2 octal
        return int(text, 0)
    return yaml.SafeLoader.construct_yaml_int(loader, node)


GoLikeLoader.add_constructor("tag:yaml.org,2002:bool", _bool)
GoLikeLoader.add_constructor("tag:yaml.org,2002:float", _float)
GoLikeLoader.add_constructor("tag:yaml.org,2002:int", _int)


def load(text: str) -> Any:
    return yaml.load(text, Loader=GoLikeLoader)


def load_all(text: str) -> list[Any]:
    return [d for d in yaml.load_all(text, Loader=GoLikeLoader) if d is not None]


def first_difference(expected: Any, actual: Any, path: str = "") -> str | None:
    """Where `actual` differs from `expected` (type-exact: "1.10" != 1.1, "no" != False), else None."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        if list(expected) != list(actual):
            return f"{path or '.'}: keys {list(expected)} != {list(actual)}"
        for k in expected:
            diff = first_difference(expected[k], actual[k], f"{path}.{k}")
            if diff:
                return diff
        return None
    if isinstance(expected, (list, tuple)) and isinstance(actual, list):
        if len(expected) != len(actual):
            return f"{path}: {len(expected)} items != {len(actual)}"
        for i, (e, a) in enumerate(zip(expected, actual, strict=True)):
            diff = first_difference(e, a, f"{path}[{i}]")
            if diff:
                return diff
        return None
    if type(expected) is not type(actual) or expected != actual:
        return (f"{path}: wrote {expected!r} ({type(expected).__name__}), "
                f"reads back {actual!r} ({type(actual).__name__})")
    return None
