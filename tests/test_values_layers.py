"""charts-values/ms/: the static llm-d-modelservice values (base.yaml + one layer per accelerator) are the guide's
values where llmd agrees with it, and render puts them into the chart values unchanged."""

from __future__ import annotations

import pytest
import yaml

from llmd.paths import data_dir
from llmd.presets import facts
from llmd.render import layers, values
from llmd.settings import ACCELERATORS, Settings

GUIDE_FILE = {"nvidia-l40s": "values.yaml", "nvidia-h100": "values.yaml", "nvidia-a100": "values.yaml",
              "amd": "values_amd.yaml", "cpu": "values_cpu.yaml", "tpu-v6e": "values_tpu_v6.yaml"}
# Guide labels render computes (the pool selector and the model name), not accelerator facts.
COMPUTED_LABELS = {values.SERVING_LABEL, values.GUIDE_LABEL, values.MODEL_LABEL}
PROBES = ("startupProbe", "livenessProbe", "readinessProbe")


def _guide(upstream, name: str) -> dict:
    path = upstream / "llm-d-guides-v0.6" / "inference-scheduling" / "ms-inference-scheduling" / name
    return yaml.safe_load(path.read_text())


def test_every_accelerator_has_exactly_one_layer():
    folder = data_dir("charts-values") / "ms"
    assert sorted(p.stem for p in folder.glob("*.yaml")) == sorted([*ACCELERATORS, "base"])
    assert set(GUIDE_FILE) | {"sim"} == set(ACCELERATORS)


def test_base_layer_equals_the_guide_values(upstream):
    base, guide = layers.layer("ms", "base"), _guide(upstream, "values.yaml")
    assert base["multinode"] == guide["multinode"]
    assert base["routing"]["proxy"]["enabled"] == guide["routing"]["proxy"]["enabled"]
    assert base["prefill"] == guide["prefill"]
    assert base["decode"]["create"] == guide["decode"]["create"]
    guide_pm = dict(guide["decode"]["monitoring"]["podmonitor"])
    guide_pm.pop("enabled")  # computed: --monitoring, and off on GKE
    assert base["decode"]["monitoring"]["podmonitor"] == guide_pm
    (ours,), theirs = base["decode"]["containers"], guide["decode"]["containers"][0]
    for key in ("name", "mountModelVolume", *PROBES):
        assert ours[key] == theirs[key], key


@pytest.mark.parametrize("name", sorted(GUIDE_FILE))
def test_accelerator_layer_equals_its_guide_values(name, upstream):
    layer, guide = layers.layer("ms", name), _guide(upstream, GUIDE_FILE[name])
    assert layer["accelerator"] == guide["accelerator"]
    guide_labels = {k: v for k, v in guide["modelArtifacts"]["labels"].items() if k not in COMPUTED_LABELS}
    assert layer["modelArtifacts"]["labels"] == guide_labels
    (ours,), theirs = layer["decode"]["containers"], guide["decode"]["containers"][0]
    assert ours["image"] == theirs["image"]
    assert ours.get("securityContext") == theirs.get("securityContext")
    # The same variables; llmd's VLLM_CPU_KVCACHE_SPACE is smaller (16 GiB) to fit its 48Gi memory limit.
    assert {e["name"] for e in ours.get("env", [])} == {e["name"] for e in theirs.get("env", [])}


@pytest.mark.parametrize("name", ACCELERATORS)
@pytest.mark.parametrize("model_cache", ["pvc", "emptydir"])
def test_render_carries_the_layers_unchanged(name, model_cache):
    settings = Settings(accelerator=name, model_cache=model_cache,
                        tensor_parallel=4 if name == "tpu-v6e" else 1)
    static, rendered = layers.ms(name), values.ms_values(settings)
    assert rendered["accelerator"] == static["accelerator"] == {"type": facts.accelerator(name).accelerator_type}
    assert static["modelArtifacts"]["labels"].items() <= rendered["modelArtifacts"]["labels"].items()
    assert rendered["multinode"] is static["multinode"] and rendered["prefill"] == static["prefill"]
    want, got = static["decode"]["containers"][0], rendered["decode"]["containers"][0]
    for key in ("name", "image", "securityContext", "mountModelVolume", "livenessProbe", "readinessProbe"):
        assert got.get(key) == want.get(key), key
    assert [e for e in got.get("env", []) if e["name"] != "HF_HUB_OFFLINE"] == want.get("env", [])
    startup = dict(want["startupProbe"])
    if values.uses_model_cache(settings):  # the one computed change: the cache is filled before the pods start
        assert startup["failureThreshold"] > got["startupProbe"]["failureThreshold"]
        startup["failureThreshold"] = got["startupProbe"]["failureThreshold"]
    assert got["startupProbe"] == startup


def test_the_sim_layer_only_changes_the_startup_timing():
    merged, base = layers.ms("sim")["decode"]["containers"][0], layers.layer("ms", "base")["decode"]["containers"][0]
    assert merged["startupProbe"]["httpGet"] == base["startupProbe"]["httpGet"]
    assert merged["startupProbe"]["periodSeconds"] * merged["startupProbe"]["failureThreshold"] == 120


def test_gaie_base_layer_equals_the_guide_values(upstream):
    base = layers.layer("gaie", "base")
    path = upstream / "llm-d-guides-v0.6" / "inference-scheduling" / "gaie-inference-scheduling" / "values.yaml"
    guide = yaml.safe_load(path.read_text())
    ext, theirs = base["inferenceExtension"], guide["inferenceExtension"]
    for key in ("replicas", "extProcPort", "tracing"):
        assert ext[key] == theirs[key], key
    assert ext["monitoring"]["interval"] == theirs["monitoring"]["interval"]
    assert base["inferencePool"]["modelServerType"] == guide["inferencePool"]["modelServerType"]


@pytest.mark.parametrize("environment", ["istio", "gke"])
def test_render_carries_the_gaie_base_layer(environment):
    base, rendered = layers.layer("gaie", "base"), values.gaie_values(Settings(environment=environment))
    ext = rendered["inferenceExtension"]
    assert {k: ext[k] for k in ("replicas", "extProcPort", "tracing")} == {
        k: base["inferenceExtension"][k] for k in ("replicas", "extProcPort", "tracing")}
    assert ext["monitoring"]["interval"] == base["inferenceExtension"]["monitoring"]["interval"]
    assert rendered["inferencePool"]["modelServerType"] == base["inferencePool"]["modelServerType"]
