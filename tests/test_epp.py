"""EPP config presets and the validator for the pinned llm-d-inference-scheduler v0.7.x image."""

from __future__ import annotations

import copy

import pytest
import yaml

from llmd.errors import ConfigError
from llmd.render import epp
from llmd.settings import SCHEDULERS


def _weights(doc):
    return [(r["pluginRef"], r.get("weight")) for r in doc["schedulingProfiles"][0]["plugins"]]


def test_presets_match_settings_choices_and_validate():
    assert set(epp.preset_names()) == set(SCHEDULERS)
    for name in SCHEDULERS:
        doc = epp.epp_config(name)
        assert epp.validate_epp_config(doc) == [], name
        assert doc["apiVersion"] == "inference.networking.x-k8s.io/v1alpha1"
        assert doc["kind"] == "EndpointPickerConfig"


def test_preset_contents():
    # default == the inferencepool chart's default-plugins.yaml
    assert _weights(epp.epp_config("default")) == [
        ("queue-scorer", 2), ("kv-cache-utilization-scorer", 2), ("prefix-cache-scorer", 3)]
    assert _weights(epp.epp_config("load")) == [("queue-scorer", 2), ("kv-cache-utilization-scorer", 2)]
    assert [p for p, _ in _weights(epp.epp_config("prefix"))] == ["prefix-cache-scorer"]
    assert _weights(epp.epp_config("random")) == [("random-picker", None)]
    optimized = _weights(epp.epp_config("optimized"))
    assert optimized[:3] == _weights(epp.epp_config("default"))
    assert optimized[3] == ("no-hit-lru-scorer", 2)  # listed after prefix-cache-scorer
    text = yaml.safe_dump([epp.epp_config(n) for n in SCHEDULERS])
    for banned in ("kv-cache-scorer", "round-robin-picker", "mode:"):
        assert banned not in text.replace("kv-cache-utilization-scorer", "")


def test_unknown_preset_is_a_usage_error():
    with pytest.raises(ConfigError, match="'fastest' is not one of"):
        epp.epp_config("fastest")


def test_upstream_inference_scheduler_configs_pass(upstream):
    files = sorted((upstream / "llm-d-inference-scheduler-v0.7.1").glob("*.yaml"))
    assert len(files) >= 4
    for f in files:
        assert epp.validate_epp_config(yaml.safe_load(f.read_text())) == [], f.name


def test_upstream_guide_custom_configs_pass(upstream):
    values = yaml.safe_load((upstream / "llm-d-guides-v0.6/precise-prefix-cache-aware/gaie-kv-events/values.yaml")
                            .read_text())
    configs = values["inferenceExtension"]["pluginsCustomConfig"]
    assert configs
    for name, text in configs.items():
        assert epp.validate_epp_config(yaml.safe_load(text)) == [], name


BASE = {
    "apiVersion": "inference.networking.x-k8s.io/v1alpha1",
    "kind": "EndpointPickerConfig",
    "plugins": [{"type": "queue-scorer"}, {"type": "prefix-cache-scorer"}, {"type": "max-score-picker"}],
    "schedulingProfiles": [{"name": "default", "plugins": [
        {"pluginRef": "queue-scorer", "weight": 1}, {"pluginRef": "prefix-cache-scorer", "weight": 2.5},
        {"pluginRef": "max-score-picker"}]}],
}


def _mutate(fn):
    doc = copy.deepcopy(BASE)
    fn(doc)
    return epp.validate_epp_config(doc)


def test_base_is_valid():
    assert epp.validate_epp_config(BASE) == []


@pytest.mark.parametrize(("mutation", "expected"), [
    (lambda d: d["plugins"].append({"type": "kv-cache-scorer"}), "use kv-cache-utilization-scorer"),
    (lambda d: d["plugins"].append({"type": "round-robin-picker"}), "use random-picker"),
    (lambda d: d["plugins"][1].update(parameters={"mode": "approximate"}), "drop `mode:`"),
    (lambda d: d["plugins"].append({"type": "custom-scorer"}), "'custom-scorer' is not registered"),
    (lambda d: d.update(apiVersion="llm-d.ai/v1alpha1"), "only for llm-d-router"),
    (lambda d: d.update(apiVersion="inference.networking.x-k8s.io/v1alpha2"), "apiVersion"),
    (lambda d: d.update(kind="EndpointPicker"), "kind: 'EndpointPicker'"),
    (lambda d: d.update(scorers=[]), "unknown top-level keys ['scorers']"),
    (lambda d: d["plugins"].append({"type": "queue-scorer"}), "duplicate plugin name 'queue-scorer'"),
    (lambda d: d["schedulingProfiles"][0]["plugins"].append({"pluginRef": "nope"}), "'nope' names no plugin"),
    (lambda d: d["schedulingProfiles"][0]["plugins"][0].update(weight=-1), "must be a number >= 0"),
    (lambda d: d["schedulingProfiles"][0]["plugins"][0].update(weight="2"), "must be a number >= 0"),
    (lambda d: d["schedulingProfiles"][0]["plugins"][0].update(weight=True), "must be a number >= 0"),
    (lambda d: (d["plugins"].append({"type": "random-picker"}),
                d["schedulingProfiles"][0]["plugins"].append({"pluginRef": "random-picker"})), "at most one"),
    (lambda d: d["schedulingProfiles"].append(copy.deepcopy(d["schedulingProfiles"][0])), "duplicate profile"),
    (lambda d: d.pop("plugins"), "plugins: required"),
    (lambda d: d.pop("schedulingProfiles"), "schedulingProfiles: required"),
    (lambda d: d["plugins"][0].update(params={}), "unknown keys ['params']"),
    (lambda d: d.update(flowControl={}), "featureGates"),
])
def test_bad_configs_fail_with_a_fix(mutation, expected):
    errors = _mutate(mutation)
    assert errors, "expected a validation error"
    assert any(expected in e for e in errors), errors


def test_named_plugins_resolve_by_name_not_type():
    doc = copy.deepcopy(BASE)
    doc["plugins"].append({"name": "prefix-2", "type": "prefix-cache-scorer"})
    doc["schedulingProfiles"][0]["plugins"].append({"pluginRef": "prefix-2", "weight": 1})
    assert epp.validate_epp_config(doc) == []


def test_non_mapping_is_rejected():
    assert epp.validate_epp_config(["plugins"]) == ["the EPP config must be a mapping, got list"]
