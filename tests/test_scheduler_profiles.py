"""Scheduler profiles as data, aliases, overrides, --scheduler-config, and the EPP roll on a config change."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from llmd.errors import ConfigError
from llmd.render import render_bundle, yamlsafe
from llmd.scheduler import effective_config, profile_names, registry, validate_config
from llmd.settings import SCHEDULERS, load_settings

GOLDEN = Path(__file__).parent / "golden" / "scheduler"
STANDIN_CHART = Path(__file__).parent / "fakes" / "charts" / "inferencepool"


def weights(doc, profile=0):
    return [(r["pluginRef"], r.get("weight")) for r in doc["schedulingProfiles"][profile]["plugins"]]


def gaie(settings):
    return render_bundle(settings).manifest_docs("values/gaie.yaml")[0]


def epp_doc(settings):
    ext = gaie(settings)["inferenceExtension"]
    return yaml.safe_load(ext["pluginsCustomConfig"][ext["pluginsConfigFile"]])


def test_the_profile_names_are_exactly_the_issues():
    assert profile_names() == SCHEDULERS == (
        "default", "queue", "kv-cache", "prefix", "random", "optimized-baseline", "precise-prefix")


@pytest.mark.parametrize("name", SCHEDULERS)
def test_golden_profile_config_checked_against_the_registry(name):
    """Every profile's EndpointPickerConfig: byte-for-byte golden, no finding at all, every type registered."""
    doc = effective_config(name, model="meta-llama/Llama-3.1-8B-Instruct")
    assert validate_config(doc) == []
    assert all(registry.get(p["type"]) for p in doc["plugins"])
    text = yamlsafe.dump(doc)
    path = GOLDEN / f"{name}.yaml"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert text == path.read_text(), f"profile {name} changed; review, then UPDATE_GOLDEN=1"


def test_profile_contents():
    m = {"model": "m/x"}
    assert weights(effective_config("default", **m)) == [
        ("queue-scorer", 2), ("kv-cache-utilization-scorer", 2), ("prefix-cache-scorer", 3)]
    assert weights(effective_config("queue", **m)) == [("queue-scorer", 1)]
    assert weights(effective_config("kv-cache", **m)) == [("kv-cache-utilization-scorer", 1)]
    assert weights(effective_config("prefix", **m)) == [("prefix-cache-scorer", 1)]
    assert weights(effective_config("random", **m)) == [("random-picker", None)]
    assert weights(effective_config("optimized-baseline", **m)) == [
        *weights(effective_config("default", **m)), ("no-hit-lru-scorer", 2)]  # after the prefix scorer
    precise = effective_config("precise-prefix", **m)
    assert weights(precise) == [("precise-prefix-cache-scorer", 3), ("kv-cache-utilization-scorer", 2),
                                ("queue-scorer", 2), ("max-score-picker", None)]
    tokenizer = next(p for p in precise["plugins"] if p["type"] == "tokenizer")
    assert tokenizer["parameters"]["modelName"] == "m/x"


def test_aliases_keep_working_and_say_their_replacement():
    old_load = effective_config("load", model="m/x")
    assert weights(old_load) == [("queue-scorer", 2), ("kv-cache-utilization-scorer", 2)]  # as before the rename
    assert effective_config("optimized", model="m/x") == effective_config("optimized-baseline", model="m/x")
    bundle = render_bundle(load_settings({"scheduler": "load"}, environ={}))
    assert any("--scheduler load is deprecated; it is now --scheduler queue" in w for w in bundle.warnings)
    bundle = render_bundle(load_settings({"scheduler": "optimized"}, environ={}))
    assert any("--scheduler optimized-baseline" in w for w in bundle.warnings)


def test_round_robin_is_refused_with_the_reason_and_random_offered():
    with pytest.raises(ConfigError) as info:
        load_settings({"scheduler": "round-robin"}, environ={})
    assert "no round-robin picker" in info.value.message
    assert "use --scheduler random" in info.value.message
    assert info.value.exit_code == 2


def test_unknown_profile_gets_did_you_mean():
    with pytest.raises(ConfigError, match=r"'kv-cahce' is not a profile \(did you mean 'kv-cache'\?\)"):
        load_settings({"scheduler": "kv-cahce"}, environ={})


def test_scorer_weight_override():
    s = load_settings({"scheduler": "default", "scorer_weights": ["prefix-cache-scorer=5"]}, environ={})
    assert weights(epp_doc(s))[2] == ("prefix-cache-scorer", 5)
    s = load_settings({"scheduler": "queue", "scorer_weights": ["kv-cache-utilization-scorer=0.5"]}, environ={})
    assert weights(epp_doc(s)) == [("queue-scorer", 1), ("kv-cache-utilization-scorer", 0.5)]  # added scorer


@pytest.mark.parametrize(("expr", "message"), [
    ("prefix-cache-scorer", "expected SCORER=WEIGHT"),
    ("prefix-cache-scorer=-1", "a number >= 0"),
    ("prefix-cache-scorer=heavy", "a number >= 0"),
])
def test_scorer_weight_syntax_is_bad_input(expr, message):
    with pytest.raises(ConfigError, match=message):
        load_settings({"scorer_weights": [expr]}, environ={})


@pytest.mark.parametrize(("profile", "expr", "message"), [
    ("default", "prefix-cahce-scorer=5", "did you mean 'prefix-cache-scorer'"),
    ("random", "random-picker=2", "random-picker is a picker, not a scorer"),
])
def test_scorer_weight_must_name_a_scorer(profile, expr, message):
    s = load_settings({"scheduler": profile, "scorer_weights": [expr]}, environ={})
    with pytest.raises(ConfigError, match=message):
        render_bundle(s)


def test_scorer_param_override_and_its_validation():
    s = load_settings({"scorer_params": ["prefix-cache-scorer.blockSizeTokens=64",
                                         "prefix-cache-scorer.autoTune=false"]}, environ={})
    prefix = next(p for p in epp_doc(s)["plugins"] if p["type"] == "prefix-cache-scorer")
    assert prefix["parameters"] == {"blockSizeTokens": 64, "autoTune": False}
    bad = load_settings({"scorer_params": ["prefix-cache-scorer.blockSizeTokens=big"]}, environ={})
    with pytest.raises(ConfigError, match=r"blockSizeTokens must be an integer, got 'big'"):
        render_bundle(bad)
    typo = load_settings({"scorer_params": ["prefix-cache-scorer.blockSizeToken=64"]}, environ={})
    bundle = render_bundle(typo)  # the EPP ignores an unknown parameter: a warning, not an error
    assert any("does not take parameter 'blockSizeToken'" in w and "did you mean 'blockSizeTokens'" in w
               for w in bundle.warnings)
    with pytest.raises(ConfigError, match=re.escape("expected PLUGIN.PARAMETER=VALUE")):
        load_settings({"scorer_params": ["blockSizeTokens=64"]}, environ={})


def test_precise_prefix_block_size_reaches_vllm():
    s = load_settings({"scheduler": "precise-prefix",
                       "scorer_params": ["precise-prefix-cache-scorer.tokenProcessorConfig.blockSize=32"]},
                      environ={"HF_TOKEN": "hf_x"})
    ms = render_bundle(s).manifest_docs("values/ms.yaml")[0]
    args = ms["decode"]["containers"][0]["args"]
    assert "--block-size=32" in args
    events = yaml.safe_load(args[args.index("--kv-events-config") + 1])
    assert events == {"enable_kv_cache_events": True, "publisher": "zmq",
                      "endpoint": "tcp://gaie-inference-scheduling-epp.llm-d-inference-scheduling.svc.cluster.local:5557",
                      "topic": "kv@$(POD_IP):8000@meta-llama/Llama-3.1-8B-Instruct"}
    env = {e["name"]: e for e in ms["decode"]["containers"][0]["env"]}
    assert env["POD_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"


def _block_sizes(bundle):
    """(the EPP's tokenProcessorConfig.blockSize, vLLM's --block-size) of a rendered precise-prefix bundle."""
    ext = bundle.manifest_docs("values/gaie.yaml")[0]["inferenceExtension"]
    config = yaml.safe_load(ext["pluginsCustomConfig"][ext["pluginsConfigFile"]])
    scorer = next(p for p in config["plugins"] if p["type"] == "precise-prefix-cache-scorer")
    epp = (scorer["parameters"].get("tokenProcessorConfig") or {}).get("blockSize")
    args = bundle.manifest_docs("values/ms.yaml")[0]["decode"]["containers"][0]["args"]
    vllm = [int(a.split("=", 1)[1]) for a in args if a.startswith("--block-size=")]
    return epp, vllm


@pytest.mark.parametrize("accelerator", ["nvidia-l40s", "sim"])
def test_a_bad_block_size_is_exit_2_not_a_silent_16(accelerator):
    """The EPP refuses a non-integer blockSize; vLLM must never get a default that disagrees with the EPP."""
    s = load_settings({"scheduler": "precise-prefix", "accelerator": accelerator, "no_hf_token": True,
                       "scorer_params": ["precise-prefix-cache-scorer.tokenProcessorConfig.blockSize=big"]}, environ={})
    with pytest.raises(ConfigError, match=re.escape("tokenProcessorConfig.blockSize must be an integer, got 'big'")):
        render_bundle(s)
    typo = load_settings({"scheduler": "precise-prefix", "accelerator": accelerator, "no_hf_token": True,
                          "scorer_params": ["precise-prefix-cache-scorer.tokenProcessorConfig.blockSiz=32"]},
                         environ={})
    bundle = render_bundle(typo)
    assert any("plugins[2].parameters.tokenProcessorConfig.blockSiz" in w and "the EPP ignores it" in w
               and "did you mean 'tokenProcessorConfig.blockSize'?" in w for w in bundle.warnings), bundle.warnings
    assert _block_sizes(bundle) == (64, [64])


def test_vllm_block_size_is_the_one_the_epp_reads(tmp_path):
    """From a --scheduler-config file: the top-level tokenProcessorConfig (any case, as Go decodes it) sets both;
    without one both are 16; indexerConfig.tokenProcessorConfig, which v0.7.1 ignores, sets neither."""
    def render_with(params):
        f = tmp_path / "precise.yaml"
        f.write_text(yamlsafe.dump({
            "apiVersion": registry.API_VERSION, "kind": registry.KIND,
            "plugins": [{"type": "precise-prefix-cache-scorer", "parameters": {
                "indexerConfig": {"tokenizersPoolConfig": {"modelName": "m/x"}}, **params}}]}))
        return render_bundle(load_settings({"scheduler_config": str(f), "no_hf_token": True}, environ={}))
    assert _block_sizes(render_with({"tokenProcessorConfig": {"blockSize": 48}})) == (48, [48])
    bundle = render_with({"tokenprocessorconfig": {"BlockSize": 32}})
    args = bundle.manifest_docs("values/ms.yaml")[0]["decode"]["containers"][0]["args"]
    assert "--block-size=32" in args
    assert _block_sizes(render_with({})) == (None, [16])
    ignored = render_with({"indexerConfig": {"tokenizersPoolConfig": {"modelName": "m/x"},
                                             "tokenProcessorConfig": {"blockSize": 64}}})
    assert _block_sizes(ignored) == (None, [16])
    assert any("ignores parameter 'indexerConfig.tokenProcessorConfig'" in w for w in ignored.warnings)


def test_precise_prefix_wires_the_epp():
    s = load_settings({"scheduler": "precise-prefix"}, environ={"HF_TOKEN": "hf_x"})
    ext = gaie(s)["inferenceExtension"]
    assert ext["extraContainerPorts"] == [{"name": "zmq", "containerPort": 5557, "protocol": "TCP"}]
    assert ext["extraServicePorts"][0]["port"] == 5557
    hf = {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "llm-d-hf-token-inference-scheduling",
                                                              "key": "HF_TOKEN"}}}
    assert hf in ext["env"] and hf in ext["sidecar"]["env"]
    assert ext["sidecar"]["image"].startswith("ghcr.io/llm-d/llm-d-uds-tokenizer:")
    assert {"mountPath": "/tmp/tokenizer", "name": "tokenizer-uds"} in ext["volumeMounts"]
    public = load_settings({"scheduler": "precise-prefix", "no_hf_token": True}, environ={})
    assert "env" not in gaie(public)["inferenceExtension"]  # no token to give: nothing references the Secret
    plain = gaie(load_settings({}, environ={}))["inferenceExtension"]
    assert not {"extraContainerPorts", "sidecar", "env"} & set(plain)


HF_ENV = {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "llm-d-hf-token-inference-scheduling",
                                                             "key": "HF_TOKEN"}}}


def test_the_tokenizer_gets_the_hf_token_on_sim_too(tmp_path):
    """The simulator downloads no weights, but the EPP's tokenizer sidecar downloads the (gated) model's tokenizer:
    the token need follows the scheduler config, the Secret is created, and deploy asks for the token."""
    from llmd.ops import deploy_steps

    s = load_settings({"scheduler": "precise-prefix", "accelerator": "sim"}, environ={"HF_TOKEN": "hf_x"})
    assert s.needs_hf_token and s.hf_token == "hf_x"
    bundle = render_bundle(s)
    ext = bundle.manifest_docs("values/gaie.yaml")[0]["inferenceExtension"]
    assert HF_ENV in ext["env"] and HF_ENV in ext["sidecar"]["env"]
    assert "authSecretName" not in bundle.manifest_docs("values/ms.yaml")[0]["modelArtifacts"]  # no weights to fetch
    steps = deploy_steps.by_hand(s, bundle.files, tmp_path)
    assert any("kubectl create secret generic llm-d-hf-token-inference-scheduling" in c for c in steps)
    with pytest.raises(ConfigError, match=re.escape("no Hugging Face token for the EPP's tokenizer of meta-llama/")):
        load_settings({"scheduler": "precise-prefix", "accelerator": "sim"}, environ={}, need_token=True)
    plain = load_settings({"accelerator": "sim"}, environ={"HF_TOKEN": "hf_x"})  # no tokenizer: no token
    assert not plain.needs_hf_token
    assert not any("secret" in c for c in deploy_steps.by_hand(plain, render_bundle(plain).files, tmp_path))


def test_no_hf_token_wins_over_the_tokenizer_with_a_warning():
    warnings: list[str] = []
    s = load_settings({"scheduler": "precise-prefix", "accelerator": "sim", "no_hf_token": True},
                      environ={"HF_TOKEN": "hf_x"}, need_token=True, warn=warnings.append)
    assert not s.needs_hf_token and s.hf_token is None
    assert any("--no-hf-token" in w and "tokenizer of meta-llama/Llama-3.1-8B-Instruct" in w and "gated" in w
               for w in warnings), warnings
    assert "env" not in gaie(s)["inferenceExtension"]
    quiet: list[str] = []
    load_settings({"accelerator": "sim", "no_hf_token": True}, environ={}, warn=quiet.append)
    assert not any("tokenizer" in w for w in quiet)  # nothing tokenizes: nothing to warn about


def test_scheduler_config_file(tmp_path):
    f = tmp_path / "mine.yaml"
    f.write_text(yamlsafe.dump(effective_config("random", model="m/x")))
    s = load_settings({"scheduler_config": str(f), "scorer_weights": ["queue-scorer=1"]}, environ={})
    assert weights(epp_doc(s)) == [("random-picker", None), ("queue-scorer", 1)]
    f.write_text("apiVersion: inference.networking.x-k8s.io/v1alpha1\nkind: EndpointPickerConfig\n"
                 "plugins:\n- type: kv-cache-scorer\n")
    with pytest.raises(ConfigError) as info:
        render_bundle(load_settings({"scheduler_config": str(f)}, environ={}))
    assert f"{f}:4:9: error: plugins[0].type" in info.value.message
    assert "use kv-cache-utilization-scorer" in info.value.message


def test_scheduler_config_from_a_values_file(upstream):
    guide = upstream / "llm-d-guides-v0.6/precise-prefix-cache-aware/gaie-kv-events/values.yaml"
    s = load_settings({"scheduler_config": str(guide)}, environ={})
    doc = epp_doc(s)
    assert weights(doc)[0] == ("precise-prefix-cache-scorer", 3.0)
    assert "extraContainerPorts" in gaie(s)["inferenceExtension"]  # wiring follows the config, not the name


# ---- the EPP roll -------------------------------------------------------------------------------

def test_config_file_name_is_a_content_hash():
    a = gaie(load_settings({"scheduler": "default"}, environ={}))["inferenceExtension"]
    b = gaie(load_settings({"scheduler": "random"}, environ={}))["inferenceExtension"]
    c = gaie(load_settings({"scheduler": "default"}, environ={}))["inferenceExtension"]
    assert a["pluginsConfigFile"] != b["pluginsConfigFile"]
    assert a["pluginsConfigFile"] == c["pluginsConfigFile"]  # no change, no roll
    assert list(a["pluginsCustomConfig"]) == [a["pluginsConfigFile"]]


def _pod_template(real_tools, tmp_path, settings):
    values = tmp_path / f"gaie-{len(list(tmp_path.iterdir()))}.yaml"
    values.write_text(render_bundle(settings).files["values/gaie.yaml"])
    out = subprocess.run([str(real_tools / "helm"), "template", "gaie-x", str(STANDIN_CHART), "-f", str(values)],
                         capture_output=True, text=True, timeout=60, check=True,
                         env={"PATH": os.environ["PATH"], "HOME": str(tmp_path), "HELM_CACHE_HOME": str(tmp_path)})
    docs = list(yaml.safe_load_all(out.stdout))
    deployment = next(d for d in docs if d and d["kind"] == "Deployment")
    configmap = next(d for d in docs if d and d["kind"] == "ConfigMap")
    return deployment["spec"]["template"], configmap


def test_two_profiles_render_different_epp_pod_templates(real_tools, tmp_path):
    """Through real helm: a profile change changes the EPP Deployment's pod template (so it rolls), and the
    ConfigMap file the new pod reads is the new config."""
    work = tmp_path / "w"
    work.mkdir()
    default_pod, _ = _pod_template(real_tools, work, load_settings({"scheduler": "default"}, environ={}))
    random_pod, random_cm = _pod_template(real_tools, work, load_settings({"scheduler": "random"}, environ={}))
    again_pod, _ = _pod_template(real_tools, work, load_settings({"scheduler": "default"}, environ={}))
    assert default_pod != random_pod
    assert default_pod == again_pod
    args = random_pod["spec"]["containers"][0]["args"]
    config_file = args[args.index("--config-file") + 1].removeprefix("/config/")
    assert "random-picker" in random_cm["data"][config_file]
    weighted = load_settings({"scheduler": "default", "scorer_weights": ["queue-scorer=5"]}, environ={})
    assert _pod_template(real_tools, work, weighted)[0] != default_pod  # a weight change rolls it too


def _custom_by_set(profile):
    """A config given the chart's way, under a fixed file name (`--set ...pluginsCustomConfig=... ConfigFile=...`)."""
    import json

    text = yamlsafe.dump(effective_config(profile, model="m/x"))
    return load_settings({}, environ={}, sets=[
        f"values.gaie.inferenceExtension.pluginsCustomConfig={json.dumps({'custom-plugins.yaml': text})}",
        "values.gaie.inferenceExtension.pluginsConfigFile=custom-plugins.yaml"]), text


def test_a_config_given_by_set_is_rekeyed_under_its_content_hash():
    from llmd.render import epp

    s, text = _custom_by_set("random")
    bundle = render_bundle(s)
    ext = bundle.manifest_docs("values/gaie.yaml")[0]["inferenceExtension"]
    assert ext["pluginsConfigFile"] == epp.config_file_name(text)
    assert ext["pluginsCustomConfig"] == {epp.config_file_name(text): text}
    assert any("'custom-plugins.yaml' is rendered as " + repr(epp.config_file_name(text)) in w
               and "rolls the EPP" in w for w in bundle.warnings), bundle.warnings


def test_two_contents_under_one_set_file_name_render_different_epp_pod_templates(real_tools, tmp_path):
    """Through real helm: editing a --set config kept under the user's fixed name still rolls the EPP."""
    work = tmp_path / "w"
    work.mkdir()
    random_pod, random_cm = _pod_template(real_tools, work, _custom_by_set("random")[0])
    queue_pod, _ = _pod_template(real_tools, work, _custom_by_set("queue")[0])
    assert random_pod != queue_pod
    assert _pod_template(real_tools, work, _custom_by_set("random")[0])[0] == random_pod  # same content: no roll
    args = random_pod["spec"]["containers"][0]["args"]
    config_file = args[args.index("--config-file") + 1].removeprefix("/config/")
    assert "random-picker" in random_cm["data"][config_file]


def test_a_set_that_splits_the_epp_and_vllm_block_sizes_is_refused():
    """--set bypasses the wiring: a decode args override, or a precise config put in by --set on a profile whose
    model servers publish no KV events, would leave vLLM's blocks unmatched by the EPP's."""
    import json

    args = load_settings({"scheduler": "precise-prefix", "no_hf_token": True}, environ={},
                         sets=['values.ms.decode.containers[0].args=["--block-size=16"]'])
    with pytest.raises(ConfigError, match="uses block size 64 but the model servers get --block-size=16"):
        render_bundle(args)
    text = yamlsafe.dump(effective_config("precise-prefix", model="m/x"))
    by_set = load_settings({"no_hf_token": True}, environ={}, sets=[
        f"values.gaie.inferenceExtension.pluginsCustomConfig={json.dumps({'c.yaml': text})}",
        "values.gaie.inferenceExtension.pluginsConfigFile=c.yaml"])
    with pytest.raises(ConfigError, match=re.escape("get no --block-size (vLLM's default 16)")):
        render_bundle(by_set)
    for accelerator in ("nvidia-l40s", "sim"):  # what llmd wires itself agrees, on vLLM and the simulator
        render_bundle(load_settings({"scheduler": "precise-prefix", "accelerator": accelerator, "no_hf_token": True},
                                    environ={}))
    gke = load_settings({"scheduler": "precise-prefix", "environment": "gke", "no_hf_token": True}, environ={})
    assert "--block-size=64" in render_bundle(gke).manifest_docs("values/ms.yaml")[0]["decode"]["containers"][0][
        "args"][0]  # the libcuda shell script carries it too
