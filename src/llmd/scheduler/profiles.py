"""Scheduler profiles (presets/schedulers.yaml) and the overrides on top of them.

`effective_config()` is the one function that turns a profile name (or a custom config), weight and
parameter overrides into the EndpointPickerConfig the EPP is started with. The cluster render and the
local scheduling gateway both call it, so a profile means the same thing everywhere.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from llmd.errors import ConfigError
from llmd.scheduler import registry

EppConfig = dict[str, Any]  # an EndpointPickerConfig document (apiVersion, kind, plugins, schedulingProfiles)


@dataclass(frozen=True)
class Resolved:
    """A --scheduler value resolved to a profile: `notice` says what replaces a deprecated alias."""

    name: str
    weights: tuple[tuple[str, int | float], ...] = ()
    notice: str | None = None


@functools.cache
def _table() -> dict[str, Any]:
    from llmd import presets

    return presets.load("schedulers")


def names() -> tuple[str, ...]:
    """The profile names, in the order of presets/schedulers.yaml."""
    return tuple(_table()["profiles"])


def aliases() -> dict[str, str]:
    """Deprecated name -> the profile it maps to."""
    return {k: v["use"] for k, v in (_table().get("aliases") or {}).items()}


def description(name: str) -> str:
    return str(_table()["profiles"][name]["description"])


def unknown_name_error(name: str) -> str:
    """Why `name` is no profile, with the fix (round-robin is refused with its reason)."""
    refused = (_table().get("refused") or {}).get(name)
    if refused:
        why = " ".join(str(refused["why"]).split())
        return f"scheduler: {name!r} does not exist: {why}; use --scheduler {refused['offer']}"
    known = (*names(), *aliases())
    close = registry.did_you_mean(name, known)
    guess = f" (did you mean {close!r}?)" if close else ""
    return f"scheduler: {name!r} is not a profile{guess}; profiles: {', '.join(names())}"


def resolve(name: str) -> Resolved:
    if name in _table()["profiles"]:
        return Resolved(name)
    alias = (_table().get("aliases") or {}).get(name)
    if alias:
        weights = tuple((str(k), v) for k, v in (alias.get("weights") or {}).items())
        return Resolved(alias["use"], weights,
                        f"--scheduler {name} is deprecated; it is now {alias['say']} (the same EPP config)")
    raise ConfigError(unknown_name_error(name), hint="`llmd scheduler show --profile NAME` shows a profile")


def profile_config(name: str, *, model: str) -> EppConfig:
    """The EndpointPickerConfig of profile `name` (no overrides); "{model}" becomes `model`."""
    resolved = resolve(name)
    entries = _table()["profiles"][resolved.name]["plugins"]
    plugins: list[dict[str, Any]] = []
    refs: list[dict[str, Any]] = []
    for entry in entries:
        plugin: dict[str, Any] = {"type": entry["type"]}
        if "name" in entry:
            plugin["name"] = entry["name"]
        if "parameters" in entry:
            plugin["parameters"] = _substitute(copy.deepcopy(entry["parameters"]), model)
        plugins.append(plugin)
        if registry.kind(entry["type"]) in registry.REFERENCED_KINDS:
            ref: dict[str, Any] = {"pluginRef": plugin.get("name", plugin["type"])}
            if "weight" in entry:
                ref["weight"] = entry["weight"]
            refs.append(ref)
    doc: EppConfig = {"apiVersion": registry.API_VERSION, "kind": registry.KIND, "plugins": plugins,
                      "schedulingProfiles": [{"name": "default", "plugins": refs}]}
    if resolved.weights:
        doc = apply_weights(doc, resolved.weights)
    return doc


def _substitute(value: Any, model: str) -> Any:
    if isinstance(value, str):
        return value.replace("{model}", model)
    if isinstance(value, list):
        return [_substitute(v, model) for v in value]
    if isinstance(value, dict):
        return {k: _substitute(v, model) for k, v in value.items()}
    return value


# ---- overrides ----------------------------------------------------------------------------------

def parse_weight(expr: str) -> tuple[str, int | float]:
    """`--scorer-weight NAME=W` -> (NAME, W); W a number >= 0."""
    name, sep, raw = expr.partition("=")
    name = name.strip()
    import math

    try:
        weight = float(raw)
    except ValueError:
        weight = -1.0
    if not sep or not name or not math.isfinite(weight) or weight < 0:
        raise ConfigError(f"--scorer-weight {expr!r}: expected SCORER=WEIGHT with a number >= 0",
                          hint="e.g. --scorer-weight prefix-cache-scorer=5")
    return name, int(weight) if weight.is_integer() else weight


def parse_param(expr: str) -> tuple[str, tuple[str, ...], Any]:
    """`--scorer-param PLUGIN.PARAM[.SUB]=VALUE` -> (PLUGIN, path, VALUE as a YAML scalar)."""
    import yaml

    target, sep, raw = expr.partition("=")
    plugin, dot, path = target.strip().partition(".")
    parts = tuple(path.split(".")) if path else ()
    if not sep or not plugin or not dot or not all(parts):
        raise ConfigError(f"--scorer-param {expr!r}: expected PLUGIN.PARAMETER=VALUE",
                          hint="e.g. --scorer-param prefix-cache-scorer.blockSizeTokens=64")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"--scorer-param {expr!r}: the value is not valid YAML: {exc}") from None
    return plugin, parts, value


def _plugin_names(doc: EppConfig) -> list[str]:
    return [str(p.get("name", p.get("type"))) for p in doc.get("plugins") or [] if isinstance(p, dict)]


def apply_weights(doc: EppConfig, weights: Sequence[tuple[str, int | float]]) -> EppConfig:
    """Set each scorer's weight in every profile that references it. A registered scorer type the config
    does not declare yet is added (declared and referenced with that weight) when there is one profile."""
    doc = copy.deepcopy(doc)
    profiles = doc.get("schedulingProfiles") or []
    for name, weight in weights:
        plugin = next((p for p in doc.get("plugins") or [] if p.get("name", p.get("type")) == name), None)
        if plugin is None:
            if not registry.is_scorer(name):
                close = registry.did_you_mean(name, _plugin_names(doc) + registry.names_of_kind("scorer"))
                guess = f"; did you mean {close!r}?" if close else ""
                raise ConfigError(f"--scorer-weight {name}={weight}: {name!r} is neither a plugin of this config "
                                  f"nor a registered scorer type{guess}",
                                  hint="plugins here: " + ", ".join(_plugin_names(doc)))
            if len(profiles) != 1:
                raise ConfigError(f"--scorer-weight {name}={weight}: the config has {len(profiles)} scheduling "
                                  "profiles; declare the scorer in the file to say which one it belongs to")
            doc.setdefault("plugins", []).append({"type": name})
            profiles[0].setdefault("plugins", []).append({"pluginRef": name, "weight": weight})
            continue
        if not registry.is_scorer(str(plugin.get("type"))):
            raise ConfigError(f"--scorer-weight {name}={weight}: {name} is a {registry.kind(plugin['type'])}, "
                              "not a scorer; only scorers take a weight")
        refs = [r for prof in profiles for r in prof.get("plugins") or [] if r.get("pluginRef") == name]
        if not refs:
            raise ConfigError(f"--scorer-weight {name}={weight}: {name} is declared but no scheduling profile "
                              "references it", hint="add a pluginRef for it in the config file")
        for ref in refs:
            ref["weight"] = weight
    return doc


def apply_params(doc: EppConfig, params: Sequence[tuple[str, tuple[str, ...], Any]]) -> EppConfig:
    doc = copy.deepcopy(doc)
    for plugin_name, path, value in params:
        plugin = next((p for p in doc.get("plugins") or [] if p.get("name", p.get("type")) == plugin_name), None)
        if plugin is None:
            close = registry.did_you_mean(plugin_name, _plugin_names(doc))
            guess = f"; did you mean {close!r}?" if close else ""
            raise ConfigError(f"--scorer-param {plugin_name}.{'.'.join(path)}: no plugin named {plugin_name!r} in "
                              f"this config{guess}", hint="plugins here: " + ", ".join(_plugin_names(doc)))
        node = plugin.setdefault("parameters", {})
        for depth, key in enumerate(path[:-1]):
            child = node.get(key)
            if child is None:
                child = node[key] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"--scorer-param {plugin_name}.{'.'.join(path)}: {'.'.join(path[:depth + 1])} "
                                  f"holds {child!r}, not a mapping")
            node = child
        node[path[-1]] = value
    return doc


def effective_config(profile: str = "default", *, model: str, weights: Sequence[str] = (),
                     params: Sequence[str] = (), custom: Mapping[str, Any] | None = None) -> EppConfig:
    """The EndpointPickerConfig the EPP runs: profile `profile` (or the `custom` document instead),
    then `--scorer-weight NAME=W` and `--scorer-param PLUGIN.PARAM=V` expressions, in that order.

    Raises ConfigError for an unknown profile or an override that names nothing; the result is not
    validated here (see llmd.scheduler.validate)."""
    doc = copy.deepcopy(dict(custom)) if custom is not None else profile_config(profile, model=model)
    if weights:
        doc = apply_weights(doc, [parse_weight(w) for w in weights])
    if params:
        doc = apply_params(doc, [parse_param(p) for p in params])
    return doc
