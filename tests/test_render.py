"""render_bundle / Bundle contract, YAML-ambiguous values (F7), secrets, overrides and file writing."""

from __future__ import annotations

import dataclasses
import json
import stat

import pytest
import yaml

from llmd.errors import ConfigError
from llmd.render import Bundle, render_bundle, yamlsafe
from llmd.settings import load_settings

CORE = ["helmfile.yaml", "values/infra.yaml", "values/gaie.yaml", "values/ms.yaml", "manifests/httproute.yaml"]
CACHE = ["manifests/model-cache-pvc.yaml", "manifests/model-download-job.yaml"]


def settings(**flags):
    sets = flags.pop("sets", ())
    return load_settings(flags, sets=sets, environ={})


def test_file_set_follows_model_cache():
    assert list(render_bundle(settings(model_cache="pvc")).files) == CORE + CACHE
    assert list(render_bundle(settings(model_cache="emptydir")).files) == CORE
    # the simulator loads no weights: no PVC and no download even with model_cache=pvc
    assert list(render_bundle(settings(accelerator="sim", model_cache="pvc")).files) == CORE


def test_render_is_pure_and_deterministic():
    a, b = render_bundle(settings()), render_bundle(settings())
    assert a.files == b.files and a.digest() == b.digest()
    c = render_bundle(settings(replicas=2))
    assert c.digest() != a.digest()
    assert len(a.digest()) == 64


def test_digest_separates_path_and_text():
    assert Bundle({"a": "bc"}).digest() != Bundle({"ab": "c"}).digest()
    assert Bundle({"a": "x", "b": "y"}).digest() == Bundle({"b": "y", "a": "x"}).digest()


def test_manifest_docs_parse_each_file():
    bundle = render_bundle(settings())
    route = bundle.manifest_docs("manifests/httproute.yaml")
    assert [d["kind"] for d in route] == ["HTTPRoute"]
    with pytest.raises(KeyError):
        bundle.manifest_docs("manifests/nope.yaml")


@pytest.mark.parametrize("alias", ["no", "on", "1e3", "0x10"])
def test_yaml_ambiguous_values_round_trip_as_strings(alias):
    """F7: namespace 123, image tag 1.10, model/served name and label values no/on/1e3/0x10."""
    model = f"{alias}/{alias}"  # the PVC cache needs an org; both parts are YAML-ambiguous
    s = settings(namespace="123", release_postfix="on", model=model, no_hf_token=True)
    s = dataclasses.replace(s, value_overrides=(("gaie", "inferenceExtension.image.tag", "1.10"),
                                                ("ms", "decode.containers.0.image", "repo/vllm:1.10")))
    bundle = render_bundle(s)
    ms = yamlsafe.load(bundle.files["values/ms.yaml"])
    gaie = yamlsafe.load(bundle.files["values/gaie.yaml"])
    helmfile = yamlsafe.load(bundle.files["helmfile.yaml"])
    assert ms["modelArtifacts"]["name"] == model
    assert ms["modelArtifacts"]["labels"]["llm-d.ai/model"] == alias
    assert ms["modelArtifacts"]["labels"]["llm-d.ai/guide"] == "on"
    assert ms["modelArtifacts"]["labels"]["llm-d.ai/inference-serving"] == "true"
    assert gaie["inferencePool"]["modelServers"]["matchLabels"]["llm-d.ai/guide"] == "on"
    assert gaie["inferenceExtension"]["image"]["tag"] == "1.10"
    assert ms["decode"]["containers"][0]["image"] == "repo/vllm:1.10"
    assert {r["namespace"] for r in helmfile["releases"]} == {"123"}
    job = yamlsafe.load(bundle.files["manifests/model-download-job.yaml"])
    env = {e["name"]: e.get("value") for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["MODEL"] == model
    # PyYAML agrees (YAML 1.1): every one of them is a str
    for text in bundle.files.values():
        for doc in yaml.safe_load_all(text):
            assert doc is not None


def test_token_never_rendered():
    canary = "hf_CANARY" + "x" * 30
    import base64

    s = dataclasses.replace(settings(model_cache="pvc"), hf_token=canary)
    bundle = render_bundle(s)
    stream = bundle.to_stream()
    assert canary not in stream and base64.b64encode(canary.encode()).decode() not in stream
    job = bundle.manifest_docs("manifests/model-download-job.yaml")[0]
    env = {e["name"]: e for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["HF_TOKEN"] == {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {
        "name": s.hf_secret_name, "key": "HF_TOKEN"}}}
    ms = bundle.manifest_docs("values/ms.yaml")[0]
    assert ms["modelArtifacts"]["authSecretName"] == s.hf_secret_name


def test_no_token_means_no_secret_reference():
    bundle = render_bundle(settings(no_hf_token=True))
    assert "authSecretName" not in bundle.manifest_docs("values/ms.yaml")[0]["modelArtifacts"]
    assert "HF_TOKEN" not in bundle.files["manifests/model-download-job.yaml"]


def test_download_job_shape():
    s = settings(storage_class="fast-rwx", pvc_size="200Gi")
    bundle = render_bundle(s)
    pvc = bundle.manifest_docs("manifests/model-cache-pvc.yaml")[0]
    assert pvc["spec"] == {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "200Gi"}},
                           "storageClassName": "fast-rwx"}
    assert "storageClassName" not in render_bundle(settings()).manifest_docs(
        "manifests/model-cache-pvc.yaml")[0]["spec"]
    job = bundle.manifest_docs("manifests/model-download-job.yaml")[0]
    spec = job["spec"]
    assert "ttlSecondsAfterFinished" not in spec  # deploy reads the finished Job
    assert spec["backoffLimit"] >= 1 and spec["activeDeadlineSeconds"] > 0
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    script = pod["containers"][0]["command"][-1]
    assert "already complete" in script and "exit 0" in script  # idempotent skip
    assert s.model not in script  # the model id travels in the environment, not in the script text
    ms = bundle.manifest_docs("values/ms.yaml")[0]
    env = {e["name"]: e["value"] for e in pod["containers"][0]["env"] if "value" in e}
    # the Job writes where the chart's pvc+hf:// URI makes vLLM look (HF_HUB_CACHE=<mount>/<middle path>)
    uri_middle = ms["modelArtifacts"]["uri"].removeprefix(f"pvc+hf://{s.pvc_name}/").removesuffix(f"/{s.model}")
    assert env["HF_HUB_CACHE"] == f"{ms['modelArtifacts']['mountPath']}/{uri_middle}"
    assert pod["containers"][0]["volumeMounts"][0]["mountPath"] == ms["modelArtifacts"]["mountPath"]


def test_emptydir_gives_a_longer_startup_budget():
    pvc = render_bundle(settings(model_cache="pvc")).manifest_docs("values/ms.yaml")[0]
    empty = render_bundle(settings(model_cache="emptydir")).manifest_docs("values/ms.yaml")[0]
    budget = [m["decode"]["containers"][0]["startupProbe"]["failureThreshold"] for m in (pvc, empty)]
    assert budget[1] > budget[0]
    assert empty["modelArtifacts"]["size"] == "50Gi"


def test_value_overrides_apply_last_per_release():
    s = settings(sets=["values.ms.decode.replicas=7", "values.infra.gateway.service.type=NodePort",
                       "values.gaie.inferenceExtension.replicas=2", "values.ms.decode.containers.0.args=[--x]"])
    bundle = render_bundle(s)
    ms = bundle.manifest_docs("values/ms.yaml")[0]
    assert ms["decode"]["replicas"] == 7
    assert ms["decode"]["containers"][0]["args"] == ["--x"]
    assert bundle.manifest_docs("values/infra.yaml")[0]["gateway"]["service"] == {"type": "NodePort"}
    assert bundle.manifest_docs("values/gaie.yaml")[0]["inferenceExtension"]["replicas"] == 2


@pytest.mark.parametrize(("expr", "message"), [
    ("values.gaie.inferenceExtension.imag.tag=x", "inferenceExtension.imag"),
    ("values.gaie.inferenceExtension.monitoring.secret.name=x", "use inferenceExtension.monitoring.prometheus"),
    ("values.ms.decode.replicas.x=1", "holds the value 4, not a mapping"),
    ("values.ms.decode.containers.5.image=x", "not a valid index"),
])
def test_bad_overrides_are_usage_errors(expr, message):
    with pytest.raises(ConfigError, match=message) as info:
        render_bundle(settings(sets=[expr]))
    assert info.value.exit_code == 2


def test_invalid_epp_override_is_rejected():
    config = ("apiVersion: inference.networking.x-k8s.io/v1alpha1\nkind: EndpointPickerConfig\n"
              "plugins:\n- type: kv-cache-scorer\nschedulingProfiles:\n- name: default\n  plugins:\n"
              "  - pluginRef: kv-cache-scorer\n")
    bad = json.dumps({"custom-plugins.yaml": config})  # JSON is YAML: the --set value parser reads it
    with pytest.raises(ConfigError, match="kv-cache-utilization-scorer"):
        render_bundle(settings(sets=[f"values.gaie.inferenceExtension.pluginsCustomConfig={bad}",
                                     "values.gaie.inferenceExtension.pluginsConfigFile=custom-plugins.yaml"]))


def test_epp_override_must_name_the_file_the_epp_reads():
    good = json.dumps({"custom-plugins.yaml": effective_config_text("random")})
    with pytest.raises(ConfigError, match=r"pluginsConfigFile 'llmd-epp-[0-9a-f]{12}\.yaml' is not in"):
        render_bundle(settings(sets=[f"values.gaie.inferenceExtension.pluginsCustomConfig={good}"]))


def effective_config_text(profile):
    from llmd.render import yamlsafe
    from llmd.scheduler import effective_config

    return yamlsafe.dump(effective_config(profile, model="m/x"))


def test_tpu_needs_a_slice_sized_tensor_parallel():
    with pytest.raises(ConfigError, match="TPU v6e slice") as info:
        render_bundle(settings(accelerator="tpu-v6e", tensor_parallel=2))
    assert "1 | 4 | 8" in info.value.hint
    ms = render_bundle(settings(accelerator="tpu-v6e", tensor_parallel=8)).manifest_docs("values/ms.yaml")[0]
    assert ms["decode"]["extraConfig"]["nodeSelector"] == {
        "cloud.google.com/gke-tpu-accelerator": "tpu-v6e-slice", "cloud.google.com/gke-tpu-topology": "2x4"}


def test_resources_scale_with_tensor_parallel():
    one = render_bundle(settings(tensor_parallel=1)).manifest_docs("values/ms.yaml")[0]
    two = render_bundle(settings(tensor_parallel=2)).manifest_docs("values/ms.yaml")[0]
    r1, r2 = (m["decode"]["containers"][0]["resources"]["limits"] for m in (one, two))
    assert int(r2["cpu"]) == 2 * int(r1["cpu"])


def test_small_cluster_profiles_shrink_epp_and_gateway():
    sim = render_bundle(settings(accelerator="sim"))
    gaie = sim.manifest_docs("values/gaie.yaml")[0]
    infra = sim.manifest_docs("values/infra.yaml")[0]
    assert gaie["inferenceExtension"]["resources"]["requests"]["cpu"] == "200m"
    assert infra["gateway"]["gatewayParameters"]["resources"]["requests"]["cpu"] == "200m"
    gpu = render_bundle(settings())
    assert "resources" not in gpu.manifest_docs("values/gaie.yaml")[0]["inferenceExtension"]  # chart default


def test_write_creates_files_with_modes_and_drops_stale_ones(tmp_path):
    out = tmp_path / "deep" / "rendered"
    bundle = render_bundle(settings(model_cache="pvc"))
    assert bundle.write(out) == out
    for rel, text in bundle.files.items():
        path = out / rel
        assert path.read_text() == text
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert stat.S_IMODE((out / "values").stat().st_mode) == 0o755
    (out / "notes.txt").write_text("mine")
    render_bundle(settings(model_cache="emptydir")).write(out)
    assert not (out / "manifests/model-cache-pvc.yaml").exists()
    assert not (out / "manifests/model-download-job.yaml").exists()
    assert (out / "notes.txt").read_text() == "mine"  # only llmd's own files are removed
    assert not list(out.rglob(".*.tmp"))


def test_to_stream_marks_each_file():
    bundle = render_bundle(settings())
    stream = bundle.to_stream()
    for rel in bundle.files:
        assert f"---\n# file: {rel}\n" in stream
    docs = list(yamlsafe.load_all(stream))
    assert len(docs) == len(bundle.files)


# llm-d-inference-sim v0.8.2 flags (upstream-stack.md §7.2); unknown flags are fatal to the simulator.
SIM_FLAGS = {"--model", "--port", "--served-model-name", "--max-model-len", "--max-num-seqs",
             "--max-waiting-queue-length", "--mode", "--time-to-first-token", "--time-to-first-token-std-dev",
             "--inter-token-latency", "--inter-token-latency-std-dev", "--prefill-overhead",
             "--prefill-time-per-token", "--time-factor-under-load", "--latency-calculator", "--seed",
             "--enable-kvcache", "--kv-cache-size", "--block-size", "--hash-seed", "--zmq-endpoint"}


def test_sim_gets_only_simulator_flags_and_a_dummy_weight_name():
    s = settings(accelerator="sim", max_model_len=1000, model="Qwen/Qwen3-0.6B")
    ms = render_bundle(s).manifest_docs("values/ms.yaml")[0]
    container = ms["decode"]["containers"][0]
    flags = {a.split("=", 1)[0] for a in container["args"]}
    assert flags <= SIM_FLAGS, flags - SIM_FLAGS
    args = dict(a.split("=", 1) for a in container["args"] if "=" in a)
    assert args["--max-model-len"] == "1000"
    assert args["--block-size"] in {"8", "16", "32", "64", "128"}
    # room for max-num-seqs full-length requests: 8 * ceil(1000/16) = 504 blocks, twice
    assert int(args["--kv-cache-size"]) == 2 * int(args["--max-num-seqs"]) * 63
    assert float(args["--time-factor-under-load"]) >= 1.0
    env = {e["name"]: e for e in container["env"]}
    assert env["POD_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"  # --enable-kvcache needs it
    assert ms["modelArtifacts"]["uri"] == "hf://random" and ms["modelArtifacts"]["name"] == "Qwen/Qwen3-0.6B"
    assert "authSecretName" not in ms["modelArtifacts"]
    assert "resources" in container and "nvidia.com/gpu" not in str(container["resources"])


def test_write_replaces_planted_symlinks_instead_of_following_them(tmp_path):
    out = tmp_path / "out"
    (out / "values").mkdir(parents=True)
    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    (out / "values" / "ms.yaml").symlink_to(victim)
    (out / "values" / ".gaie.yaml.tmp").symlink_to(victim)
    bundle = render_bundle(settings())
    bundle.write(out)
    assert victim.read_text() == "keep"
    assert not (out / "values" / "ms.yaml").is_symlink()
    assert (out / "values" / "ms.yaml").read_text() == bundle.files["values/ms.yaml"]


def test_template_syntax_in_values_is_never_evaluated():
    """F6 defence in depth: even a value that bypassed validation is data, not a template."""
    s = dataclasses.replace(settings(), model="org/a{{ 7*7 }}b")
    bundle = render_bundle(s)
    ms = bundle.manifest_docs("values/ms.yaml")[0]
    assert ms["modelArtifacts"]["name"] == "org/a{{ 7*7 }}b"
    assert "49" not in bundle.files["values/ms.yaml"]


@pytest.mark.parametrize(("value", "message"), [
    ('{"custom-plugins.yaml": {"plugins": []}}', "must be YAML text"),
    ('{"custom-plugins.yaml": "a: [unclosed"}', "not valid YAML"),
])
def test_epp_override_must_be_yaml_text(value, message):
    with pytest.raises(ConfigError, match=message):
        render_bundle(settings(sets=[f"values.gaie.inferenceExtension.pluginsCustomConfig={value}",
                                     "values.gaie.inferenceExtension.pluginsConfigFile=custom-plugins.yaml"]))


def test_switching_to_a_builtin_epp_config_is_allowed():
    bundle = render_bundle(settings(sets=["values.gaie.inferenceExtension.pluginsConfigFile=default-plugins.yaml"]))
    assert bundle.manifest_docs("values/gaie.yaml")[0]["inferenceExtension"]["pluginsConfigFile"] == \
        "default-plugins.yaml"
