"""Whole matrix: every environment x accelerator (every scheduler at least once) renders values the real
upstream charts accept: llm-d-modelservice / llm-d-infra values.schema.json (after helm's merge with the
chart defaults), inferencepool values within the v1.4.0 allow-list, EPP config within the registered types,
and object names consistent across all files."""
# The IDs cited here (rule N, F##) are defined in docs/behaviours.md.

from __future__ import annotations

import base64
import dataclasses
import functools
import itertools
import json

import jsonschema
import pytest
import yaml

from llmd.render import gaie_keys, render_bundle, yamlsafe
from llmd.scheduler import effective_config, validate_config
from llmd.settings import ACCELERATORS, ENVIRONMENTS, SCHEDULERS, load_settings

CANARY = "hf_MATRIXcanary0123456789abcdefXYZ"
CASES = [
    (env, acc, SCHEDULERS[i % len(SCHEDULERS)], i)
    for i, (env, acc) in enumerate(itertools.product(ENVIRONMENTS, ACCELERATORS))
]


def _settings(env, acc, scheduler, i):
    flags = {"environment": env, "accelerator": acc, "scheduler": scheduler,
             "namespace": f"team-{i}-ns", "release_postfix": f"p{i}x",
             "model_cache": "pvc" if i % 2 else "emptydir", "monitoring": bool(i % 3 == 0),
             "tensor_parallel": {"tpu-v6e": 4, "sim": 1, "cpu": 1}.get(acc, 1 + i % 2)}
    return load_settings(flags, environ={})


def helm_merge(base, override):
    """Helm's coalesce of user values over chart defaults: maps merge, everything else replaces, null deletes."""
    if not isinstance(base, dict) or not isinstance(override, dict):
        return override
    out = dict(base)
    for k, v in override.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = helm_merge(base.get(k), v)
    return out


@functools.cache
def _chart(path: str):
    from pathlib import Path

    root = Path(path)
    schema = json.loads((root / "values.schema.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema), yaml.safe_load((root / "values.yaml").read_text())


def schema_errors(upstream, chart_dir, values):
    validator, defaults = _chart(str(upstream / chart_dir))
    merged = helm_merge(defaults, values)
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(merged)]


@pytest.fixture(scope="module")
def bundles():
    out = {}
    for case in CASES:
        s = dataclasses.replace(_settings(*case), hf_token=CANARY)  # F68: the token must never be rendered
        out[case] = (s, render_bundle(s))
    return out


def test_matrix_covers_every_choice():
    assert {c[0] for c in CASES} == set(ENVIRONMENTS)
    assert {c[1] for c in CASES} == set(ACCELERATORS)
    assert {c[2] for c in CASES} == set(SCHEDULERS)


def test_chart_defaults_alone_pass_their_schema(upstream):
    # guards the merge helper and the schema copies themselves
    assert schema_errors(upstream, "llm-d-modelservice-v0.4.9", {}) == []
    assert schema_errors(upstream, "llm-d-infra-v1.4.0", {}) == []


def test_schemas_reject_the_known_traps(upstream):
    """The validators bite: values that the real charts reject must fail here too."""
    ms = schema_errors(upstream, "llm-d-modelservice-v0.4.9",
                       {"modelArtifacts": {"labels": {"llm-d.ai/inference-serving": True}, "extra": 1},
                        "routing": {"modelName": "x"}, "decode": {"replicas": "4"}})
    assert any("modelArtifacts" in e for e in ms) and any("routing" in e for e in ms)
    assert any("decode.replicas" in e for e in ms)
    infra = schema_errors(upstream, "llm-d-infra-v1.4.0",
                          {"gateway": {"gatewayParameters": {"accessLogging": False}}, "provider": {"name": "x"}})
    assert len(infra) >= 2


@pytest.mark.parametrize("case", CASES, ids=[f"{c[0]}-{c[1]}-{c[2]}" for c in CASES])
def test_values_accepted_by_upstream_charts(case, bundles, upstream):
    settings, bundle = bundles[case]
    ms = bundle.manifest_docs("values/ms.yaml")[0]
    infra = bundle.manifest_docs("values/infra.yaml")[0]
    gaie = bundle.manifest_docs("values/gaie.yaml")[0]
    assert schema_errors(upstream, "llm-d-modelservice-v0.4.9", ms) == []
    assert schema_errors(upstream, "llm-d-infra-v1.4.0", infra) == []
    assert list(infra) == ["gateway"]
    assert gaie_keys.unknown_keys(gaie) == []
    ext = gaie["inferenceExtension"]
    config = yaml.safe_load(ext["pluginsCustomConfig"][ext["pluginsConfigFile"]])
    assert validate_config(config) == []
    assert config == effective_config(settings.scheduler, model=settings.model)


def _all_keys(node, path=""):
    if isinstance(node, dict):
        for k, v in node.items():
            yield f"{path}.{k}"
            yield from _all_keys(v, f"{path}.{k}")
    elif isinstance(node, list):
        for item in node:
            yield from _all_keys(item, path)


@pytest.mark.parametrize("case", CASES, ids=[f"{c[0]}-{c[1]}-{c[2]}" for c in CASES])
def test_names_consistent_across_files(case, bundles):
    settings, bundle = bundles[case]
    helmfile = bundle.manifest_docs("helmfile.yaml")[0]
    releases = {r["name"]: r for r in helmfile["releases"]}
    assert list(releases) == list(settings.releases)
    assert all(r["namespace"] == settings.namespace for r in releases.values())
    assert releases[settings.gaie_release]["needs"] == [settings.infra_release]
    assert releases[settings.ms_release]["needs"] == [settings.infra_release, settings.gaie_release]
    for r in releases.values():
        assert r["installed"] is True and r["labels"]["managed-by"] == "llmd"
        for values_path in r["values"]:
            assert values_path in bundle.files  # relative to the helmfile directory
    assert {r["chart"]: r["version"] for r in releases.values()} == {
        "llm-d-infra/llm-d-infra": "v1.4.0",
        "oci://registry.k8s.io/gateway-api-inference-extension/charts/inferencepool": "v1.4.0",
        "llm-d-modelservice/llm-d-modelservice": "v0.4.9"}

    route = bundle.manifest_docs("manifests/httproute.yaml")[0]
    assert route["metadata"]["name"] == settings.httproute_name
    assert route["spec"]["parentRefs"][0]["name"] == settings.gateway_name
    assert settings.gateway_name.startswith(settings.infra_release)
    backend = route["spec"]["rules"][0]["backendRefs"][0]
    assert backend["name"] == settings.pool_name == settings.gaie_release
    assert backend["group"] == "inference.networking.k8s.io" and backend["kind"] == "InferencePool"
    if settings.environment == "gke":
        assert "port" not in backend and "timeouts" not in route["spec"]["rules"][0]
    else:
        assert backend["port"] == 8000
        assert route["spec"]["rules"][0]["timeouts"] == {"backendRequest": "0s", "request": "0s"}

    gaie = bundle.manifest_docs("values/gaie.yaml")[0]
    ms = bundle.manifest_docs("values/ms.yaml")[0]
    match = gaie["inferencePool"]["modelServers"]["matchLabels"]
    pod_labels = ms["modelArtifacts"]["labels"]
    assert match.items() <= pod_labels.items()
    assert match["llm-d.ai/guide"] == settings.guide_label
    assert all(isinstance(v, str) for v in pod_labels.values())
    assert gaie["inferencePool"]["targetPorts"] == [{"number": ms["routing"]["servicePort"]}]
    assert ms["decode"]["containers"][0]["ports"][0]["containerPort"] == ms["routing"]["servicePort"]
    assert ms["decode"]["monitoring"]["podmonitor"]["portName"] == ms["decode"]["containers"][0]["ports"][0]["name"]
    assert gaie["inferenceExtension"]["monitoring"]["prometheus"]["enabled"] is settings.monitoring
    # GKE has no Prometheus Operator: no PodMonitor there (the inferencepool chart renders PodMonitoring)
    podmonitor = settings.monitoring and settings.environment != "gke"
    assert ms["decode"]["monitoring"]["podmonitor"]["enabled"] is podmonitor
    assert settings.gaie_release in gaie["inferenceExtension"]["monitoring"]["prometheus"]["auth"]["secretName"]
    provider = gaie["provider"]
    expected_provider = {"istio": "istio", "gke": "gke"}.get(settings.environment, "none")
    assert provider["name"] == expected_provider
    if expected_provider == "istio":
        assert provider["istio"]["destinationRule"]["host"] == \
            f"{settings.epp_name}.{settings.namespace}.svc.cluster.local"

    for rel in bundle.files:
        if rel.startswith("manifests/"):
            for doc in bundle.manifest_docs(rel):
                assert doc["metadata"]["namespace"] == settings.namespace
                assert doc["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "llmd"
                assert doc["metadata"]["labels"]["app.kubernetes.io/instance"] == settings.release_postfix
    if "manifests/model-cache-pvc.yaml" in bundle.files:
        pvc = bundle.manifest_docs("manifests/model-cache-pvc.yaml")[0]
        job = bundle.manifest_docs("manifests/model-download-job.yaml")[0]
        assert pvc["metadata"]["name"] == settings.pvc_name
        assert job["metadata"]["name"] == settings.download_job_name
        claim = job["spec"]["template"]["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"]
        assert claim == settings.pvc_name
        assert ms["modelArtifacts"]["uri"] == f"pvc+hf://{settings.pvc_name}/hub/{settings.model}"
    elif settings.accelerator == "sim":  # dummy --model keeps the sim's built-in tokenizer
        assert ms["modelArtifacts"]["uri"] == "hf://random"
        assert ms["modelArtifacts"]["name"] == settings.model
    else:
        assert ms["modelArtifacts"]["uri"] == f"hf://{settings.model}"
    # no schema trap keys anywhere in the ms values
    keys = set(_all_keys(ms))
    assert ".decode.monitoring.podmonitor.scrapeTimeout" not in keys
    assert not any(k.startswith(".routing.") and k.split(".")[2] not in ("proxy", "servicePort") for k in keys)


@pytest.mark.parametrize("case", CASES, ids=[f"{c[0]}-{c[1]}-{c[2]}" for c in CASES])
def test_engine_specific_content(case, bundles):
    settings, bundle = bundles[case]
    ms = bundle.manifest_docs("values/ms.yaml")[0]
    container = ms["decode"]["containers"][0]
    args = container["args"]
    assert f"--max-model-len={settings.max_model_len}" in " ".join(args).split()
    assert ms["prefill"] == {"create": False}
    assert ms["routing"] == {"servicePort": 8000, "proxy": {"enabled": False, "targetPort": 8000}}
    assert isinstance(ms["decode"]["replicas"], int)
    assert ms["decode"]["parallelism"]["tensor"] == settings.tensor_parallel
    if settings.accelerator == "sim":
        assert container["image"] == "ghcr.io/llm-d/llm-d-inference-sim:v0.8.2"
        assert container["modelCommand"] == "imageDefault"
        for banned in ("--gpu-memory-utilization", "--tensor-parallel-size", "--disable-uvicorn-access-log"):
            assert not any(a.startswith(banned) for a in args)
    elif settings.environment == "gke" and settings.accelerator.startswith("nvidia-"):
        # upstream values_gke.yaml: a shell finds libcuda.so.1 under the GKE driver mount, then execs vllm serve
        assert container["modelCommand"] == "custom" and container["command"] == ["/bin/bash", "-c"]
        assert len(args) == 1 and "libcuda.so.1" in args[0] and "LD_LIBRARY_PATH" in args[0]
        args = args[0].split()
        assert "--disable-uvicorn-access-log" in args and "$TP_SIZE" in args[-1]
    else:
        assert container["modelCommand"] == "vllmServe"
        assert "--disable-uvicorn-access-log" in args
        assert not any(a.startswith("--tensor-parallel-size") for a in args)  # the chart adds it
    if settings.accelerator in ("nvidia-l40s", "nvidia-h100", "nvidia-a100"):
        assert container["image"] == "ghcr.io/llm-d/llm-d-cuda:v0.6.0"
        assert ms["accelerator"]["type"] == "nvidia"
        assert "acceleratorTypes" not in ms["decode"]  # the product affinity is opt-in (--gpu-product)
        assert f"--gpu-memory-utilization={settings.gpu_memory_utilization}" in args
        assert "nvidia.com/gpu" not in json.dumps(container["resources"])  # from parallelism, by the chart
    if settings.accelerator == "tpu-v6e":
        assert container["image"] == "vllm/vllm-tpu:v0.11.1"
        assert ms["accelerator"]["type"] == "google"
        assert ms["decode"]["extraConfig"]["nodeSelector"]["cloud.google.com/gke-tpu-topology"] == "2x2"
    if settings.accelerator == "cpu":
        assert container["image"] == "ghcr.io/llm-d/llm-d-cpu:v0.6.0"
        assert ms["accelerator"]["type"] == "cpu"
    if settings.accelerator == "amd":
        assert ms["accelerator"]["type"] == "amd"


def test_gpu_profiles_differ_by_resources_and_have_no_product_affinity_by_default():
    seen = {}
    for acc in ("nvidia-l40s", "nvidia-h100", "nvidia-a100"):
        ms = yamlsafe.load(render_bundle(load_settings({"accelerator": acc}, environ={})).files["values/ms.yaml"])
        assert "acceleratorTypes" not in ms["decode"]
        seen[acc] = json.dumps(ms["decode"]["containers"][0]["resources"])
    assert len(set(seen.values())) == 3


def test_gaie_allow_list_covers_the_chart_and_guides(upstream):
    """Every key of the chart's own values.yaml and of the v0.6 guide gaie values is on the allow-list."""
    files = [upstream / "inferencepool-v1.4.0/values.yaml",
             upstream / "llm-d-guides-v0.6/inference-scheduling/gaie-inference-scheduling/values.yaml",
             upstream / "llm-d-guides-v0.6/simulated-accelerators/gaie-sim/values.yaml",
             upstream / "llm-d-guides-v0.6/precise-prefix-cache-aware/gaie-kv-events/values.yaml"]
    for f in files:
        assert gaie_keys.unknown_keys(yaml.safe_load(f.read_text())) == [], f
    # the provider/destinationRule parts of the istio environment file are GAIE values too
    istio = yaml.safe_load((upstream / "llm-d-guides-v0.6/prereq/gateway-provider/common-configurations/istio.yaml")
                           .read_text())
    assert gaie_keys.unknown_keys({"provider": istio["provider"]}) == []


def test_gaie_allow_list_rejects_misspellings_and_stale_keys():
    assert gaie_keys.unknown_keys({"inferenceExtension": {"imag": {}}, "inferencePol": {}}) == [
        "inferenceExtension.imag", "inferencePol"]
    assert gaie_keys.unknown_keys({"inferenceExtension": {"monitoring": {"secret": {"name": "x"}}}}) == [
        "inferenceExtension.monitoring.secret (use inferenceExtension.monitoring.prometheus.auth.secretName)"]
    assert gaie_keys.unknown_keys({"inferenceExtension": {"image": {"registry": "r"}}})[0].startswith(
        "inferenceExtension.image.registry (use inferenceExtension.image.hub")


@pytest.mark.parametrize("case", CASES, ids=[f"{c[0]}-{c[1]}-{c[2]}" for c in CASES])
def test_token_canary_and_probes(case, bundles):
    settings, bundle = bundles[case]
    stream = bundle.to_stream()
    assert CANARY not in stream and base64.b64encode(CANARY.encode()).decode() not in stream
    # F30: a slow model load is covered by the startupProbe (liveness only starts after it succeeds)
    container = bundle.manifest_docs("values/ms.yaml")[0]["decode"]["containers"][0]
    startup = container["startupProbe"]
    budget = startup.get("initialDelaySeconds", 0) + startup["periodSeconds"] * startup["failureThreshold"]
    assert budget >= (100 if settings.accelerator == "sim" else 1800)
    assert container["livenessProbe"]["httpGet"]["port"] == container["ports"][0]["name"]
