"""EPP scheduler presets (EndpointPickerConfig) and a validator for the pinned EPP image.

The EPP image is llm-d-inference-scheduler v0.7.x: GAIE v1.4.0 plugin types plus the llm-d ones
(upstream-stack.md §4.2/§4.3). An unregistered type or a bad config makes the EPP crash-loop at start,
so every config llmd renders (and every `--set values.gaie...pluginsCustomConfig`) is checked here first.
"""

from __future__ import annotations

from typing import Any

API_VERSION = "inference.networking.x-k8s.io/v1alpha1"
KIND = "EndpointPickerConfig"
CONFIG_FILE = "custom-plugins.yaml"

TOP_LEVEL_KEYS = frozenset({"apiVersion", "kind", "featureGates", "plugins", "schedulingProfiles",
                            "saturationDetector", "data", "flowControl"})

PICKERS = frozenset({"max-score-picker", "random-picker", "weighted-random-picker"})
PROFILE_HANDLERS = frozenset({"single-profile-handler", "disagg-profile-handler", "data-parallel-profile-handler",
                              "pd-profile-handler"})
SCORERS = frozenset({
    # GAIE v1.4.0
    "queue-scorer", "kv-cache-utilization-scorer", "prefix-cache-scorer", "running-requests-size-scorer",
    "lora-affinity-scorer", "predicted-latency-scorer",
    # llm-d-inference-scheduler v0.7
    "precise-prefix-cache-scorer", "load-aware-scorer", "active-request-scorer", "session-affinity-scorer",
    "no-hit-lru-scorer", "context-length-aware",
})
FILTERS = frozenset({"decode-filter", "prefill-filter", "encode-filter", "by-label", "by-label-selector",
                     "header-based-testing-filter"})
OTHER_TYPES = frozenset({
    # GAIE v1.4.0 flow control, data layer, saturation, test helpers
    "global-strict-fairness-policy", "round-robin-fairness-policy", "fcfs-ordering-policy", "edf-ordering-policy",
    "metrics-data-source", "model-server-protocol-metrics", "k8s-notification-source", "request-attribute-reporter",
    "destination-endpoint-served-verifier", "concurrency-detector",
    # llm-d-inference-scheduler v0.7 deciders, pre-request handlers, data sources
    "prefix-based-pd-decider", "always-disagg-pd-decider", "always-disagg-multimodal-decider",
    "disagg-headers-handler", "prefill-header-handler", "models-data-source", "model-server-protocol-models",
    "tokenizer",
})
REGISTERED_TYPES = PICKERS | PROFILE_HANDLERS | SCORERS | FILTERS | OTHER_TYPES

# Names users paste from old READMEs, with the fix.
KNOWN_BAD_TYPES = {
    "kv-cache-scorer": "renamed in GAIE v1.0: use kv-cache-utilization-scorer",
    "round-robin-picker": "no such picker: use random-picker (or max-score-picker); "
                          "round-robin-fairness-policy is a flow-control policy, not a picker",
    "prefix-scorer": "use prefix-cache-scorer (approximate) or precise-prefix-cache-scorer (KV events)",
    "load-scorer": "use queue-scorer or load-aware-scorer",
}


def preset_names() -> tuple[str, ...]:
    from llmd import presets

    return tuple(presets.load("schedulers"))


def epp_config(preset: str) -> dict[str, Any]:
    """The EndpointPickerConfig of a scheduler preset (settings.SCHEDULERS) as a dict."""
    from llmd import presets
    from llmd.errors import ConfigError

    table = presets.load("schedulers")
    if preset not in table:
        raise ConfigError(f"scheduler: {preset!r} is not one of {', '.join(table)}",
                          hint="pick a preset with --scheduler")
    entries = table[preset]["profile"]
    plugins = [{"type": e["type"]} for e in entries]
    refs = []
    for e in entries:
        ref: dict[str, Any] = {"pluginRef": e["type"]}
        if "weight" in e:
            ref["weight"] = e["weight"]
        refs.append(ref)
    doc = {"apiVersion": API_VERSION, "kind": KIND, "plugins": plugins,
           "schedulingProfiles": [{"name": "default", "plugins": refs}]}
    errors = validate_epp_config(doc)
    if errors:  # a broken preset is a bug in presets/schedulers.yaml
        raise AssertionError(f"scheduler preset {preset!r} is invalid: {errors}")
    return doc


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_plugin(i: int, plugin: Any, errors: list[str]) -> str | None:
    """Validate one `plugins[i]` entry; return its name (defaults to the type) or None."""
    where = f"plugins[{i}]"
    if not isinstance(plugin, dict):
        errors.append(f"{where}: must be a mapping with `type` (and optional `name`, `parameters`)")
        return None
    extra = sorted(set(plugin) - {"name", "type", "parameters"})
    if extra:
        errors.append(f"{where}: unknown keys {extra}; allowed: name, type, parameters")
    ptype = plugin.get("type")
    if not isinstance(ptype, str) or not ptype:
        errors.append(f"{where}: `type` is required (a registered plugin type)")
        return None
    if ptype in KNOWN_BAD_TYPES:
        errors.append(f"{where}: plugin type {ptype!r} is not registered in the EPP; {KNOWN_BAD_TYPES[ptype]}")
    elif ptype not in REGISTERED_TYPES:
        errors.append(f"{where}: plugin type {ptype!r} is not registered in llm-d-inference-scheduler v0.7 "
                      f"(the EPP would crash-loop); known scorers: {', '.join(sorted(SCORERS))}; "
                      f"pickers: {', '.join(sorted(PICKERS))}")
    params = plugin.get("parameters")
    if params is not None and not isinstance(params, dict):
        errors.append(f"{where} ({ptype}): `parameters` must be a mapping")
    elif isinstance(params, dict) and "mode" in params and ptype in ("prefix-cache-scorer",
                                                                      "precise-prefix-cache-scorer"):
        errors.append(f"{where} ({ptype}): parameter `mode` was removed in llm-d-inference-scheduler v0.3; "
                      "drop `mode:` (approximate = prefix-cache-scorer, precise = precise-prefix-cache-scorer)")
    name = plugin.get("name", ptype)
    if not isinstance(name, str) or not name:
        errors.append(f"{where}: `name` must be a non-empty string")
        return None
    return name


def _check_profile(i: int, profile: Any, types: dict[str, str], errors: list[str]) -> str | None:
    where = f"schedulingProfiles[{i}]"
    if not isinstance(profile, dict):
        errors.append(f"{where}: must be a mapping with `name` and `plugins`")
        return None
    extra = sorted(set(profile) - {"name", "plugins"})
    if extra:
        errors.append(f"{where}: unknown keys {extra}; allowed: name, plugins")
    name = profile.get("name")
    if not isinstance(name, str) or not name:
        errors.append(f"{where}: `name` is required")
    refs = profile.get("plugins")
    if not isinstance(refs, list) or not refs:
        errors.append(f"{where}: `plugins` must be a non-empty list of {{pluginRef, weight}}")
        return name if isinstance(name, str) else None
    pickers = []
    for j, ref in enumerate(refs):
        rwhere = f"{where}.plugins[{j}]"
        if not isinstance(ref, dict) or not isinstance(ref.get("pluginRef"), str):
            errors.append(f"{rwhere}: must be a mapping with `pluginRef: <plugin name>`")
            continue
        extra = sorted(set(ref) - {"pluginRef", "weight"})
        if extra:
            errors.append(f"{rwhere}: unknown keys {extra}; allowed: pluginRef, weight")
        target = ref["pluginRef"]
        if target not in types:
            hint = f"; {KNOWN_BAD_TYPES[target]}" if target in KNOWN_BAD_TYPES else ""
            errors.append(f"{rwhere}: pluginRef {target!r} names no plugin in `plugins` "
                          f"(defined: {', '.join(types) or 'none'}){hint}")
        elif types[target] in PICKERS:
            pickers.append(target)
        if "weight" in ref and (not _is_number(ref["weight"]) or ref["weight"] < 0):
            errors.append(f"{rwhere}: weight {ref['weight']!r} must be a number >= 0")
    if len(pickers) > 1:
        errors.append(f"{where}: {len(pickers)} pickers referenced ({', '.join(pickers)}); at most one per profile")
    return name if isinstance(name, str) else None


def validate_epp_config(doc: Any) -> list[str]:
    """Problems that would make the pinned EPP reject `doc` (empty list = accepted)."""
    if not isinstance(doc, dict):
        return [f"the EPP config must be a mapping, got {type(doc).__name__}"]
    errors: list[str] = []
    if doc.get("apiVersion") != API_VERSION:
        hint = " (llm-d.ai/v1alpha1 is only for llm-d-router >= v0.9)" if doc.get("apiVersion") == "llm-d.ai/v1alpha1" \
            else ""
        errors.append(f"apiVersion: {doc.get('apiVersion')!r} must be {API_VERSION!r}{hint}")
    if doc.get("kind") != KIND:
        errors.append(f"kind: {doc.get('kind')!r} must be {KIND!r}")
    unknown = sorted(set(doc) - TOP_LEVEL_KEYS)
    if unknown:
        errors.append(f"unknown top-level keys {unknown} (the EPP decodes strictly); allowed: "
                      f"{', '.join(sorted(TOP_LEVEL_KEYS))}")
    if "flowControl" in doc and "flowControl" not in (doc.get("featureGates") or []):
        errors.append("flowControl is set but featureGates does not enable `flowControl`")
    plugins = doc.get("plugins")
    types: dict[str, str] = {}
    if not isinstance(plugins, list) or not plugins:
        errors.append("plugins: required, a non-empty list of {type, name?, parameters?}")
    else:
        for i, plugin in enumerate(plugins):
            name = _check_plugin(i, plugin, errors)
            if name is None:
                continue
            if name in types:
                errors.append(f"plugins[{i}]: duplicate plugin name {name!r}; give one of them a distinct `name`")
            types[name] = plugin["type"]
    profiles = doc.get("schedulingProfiles")
    if not isinstance(profiles, list) or not profiles:
        errors.append("schedulingProfiles: required, a non-empty list of {name, plugins}")
    else:
        seen: set[str] = set()
        for i, profile in enumerate(profiles):
            name = _check_profile(i, profile, types, errors)
            if name is not None:
                if name in seen:
                    errors.append(f"schedulingProfiles[{i}]: duplicate profile name {name!r}")
                seen.add(name)
    return errors
