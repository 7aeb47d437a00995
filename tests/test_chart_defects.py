"""The defects found with the real charts (issue 8), one test group each; every test failed before its fix."""

from __future__ import annotations

import json

import pytest

from llmd.errors import ConfigError
from llmd.kube.kubectl import Kubectl, Scope
from llmd.ops import preflight as pf
from llmd.proc import Runner
from llmd.render import render_bundle, yamlsafe
from llmd.settings import load_settings
from test_deploy_support import CTX, Fake, clock_fixture, fake_fixture, lst, no_killpg_fixture  # noqa: F401


def settings(**flags):
    return load_settings(flags, environ={})


def ms_values(**flags) -> dict:
    return yamlsafe.load(render_bundle(settings(**flags)).files["values/ms.yaml"])


def job(**flags) -> dict:
    return yamlsafe.load(render_bundle(settings(**flags)).files["manifests/model-download-job.yaml"])


# ---- 1. the GPU-product node affinity is opt-in; preflight counts only matching nodes -----------------

@pytest.mark.parametrize("acc", ["nvidia-l40s", "nvidia-h100", "nvidia-a100"])
def test_nvidia_profiles_have_no_product_affinity_by_default(acc):
    assert "acceleratorTypes" not in ms_values(accelerator=acc)["decode"]


def test_gpu_product_setting_adds_the_required_affinity():
    decode = ms_values(accelerator="nvidia-h100", gpu_product="NVIDIA-H100-80GB-HBM3")["decode"]
    assert decode["acceleratorTypes"] == {"labelKey": "nvidia.com/gpu.product",
                                          "labelValues": ["NVIDIA-H100-80GB-HBM3"]}


@pytest.mark.parametrize(("flags", "needle"), [
    ({"accelerator": "sim", "gpu_product": "NVIDIA-L40S"}, "NVIDIA accelerators only"),
    ({"gpu_product": "NVIDIA L40S"}, "not a node label value"),
])
def test_gpu_product_is_validated(flags, needle):
    with pytest.raises(ConfigError) as err:
        settings(**flags)
    assert needle in str(err.value)


def _node(name: str, gpus: int, product: str | None) -> dict:
    labels = {"nvidia.com/gpu.product": product} if product else {}
    return {"kind": "Node", "metadata": {"name": name, "labels": labels}, "spec": {},
            "status": {"allocatable": {"nvidia.com/gpu": str(gpus)}}}


@pytest.mark.parametrize(("product", "status", "needle"), [
    (None, "ok", "12 nvidia.com/gpu allocatable, 4 needed"),  # any GPU node counts
    ("NVIDIA-L40S", "warn", "only 0 nvidia.com/gpu allocatable on nodes labelled nvidia.com/gpu.product=NVIDIA-L40S"),
    ("NVIDIA-H100-80GB-HBM3", "ok", "8 nvidia.com/gpu allocatable on nodes labelled"),
])
def test_preflight_counts_gpus_only_on_nodes_of_the_product(fp, product, status, needle):
    fp.register(["kubectl", "--context", CTX, "--request-timeout=10s", "get", "nodes", "--output", "json"],
                stdout=lst(_node("a", 8, "NVIDIA-H100-80GB-HBM3"), _node("b", 4, None)))
    s = settings(accelerator="nvidia-h100", kube_context=CTX, **({"gpu_product": product} if product else {}))
    result = pf.check_gpus(Kubectl(Runner(), Scope(context=CTX, namespace=s.namespace)), s)
    assert result.status == status and needle in result.message, result
    if status == "warn":
        assert "8 x NVIDIA-H100-80GB-HBM3" in result.fixes[0] and "(no label)" in result.fixes[0]


# ---- 2. GKE + NVIDIA: vLLM through the libcuda-finding shell -------------------------------------------

def test_gke_nvidia_runs_vllm_through_the_libcuda_shell():
    c = ms_values(environment="gke", accelerator="nvidia-l40s", model="Qwen/Qwen3-8B")["decode"]["containers"][0]
    assert c["modelCommand"] == "custom" and c["command"] == ["/bin/bash", "-c"]
    script = c["args"][0]
    assert "find / -name libcuda.so.1" in script and "export LD_LIBRARY_PATH=" in script
    assert "export LIBRARY_PATH=" in script
    last = script.strip().splitlines()[-1]
    assert last.startswith("exec vllm serve Qwen/Qwen3-8B --port 8000 --served-model-name Qwen/Qwen3-8B")
    assert '--tensor-parallel-size "$TP_SIZE"' in last


def test_libcuda_shell_only_on_gke_nvidia():
    assert ms_values(accelerator="nvidia-l40s")["decode"]["containers"][0]["modelCommand"] == "vllmServe"
    assert ms_values(environment="gke", accelerator="amd")["decode"]["containers"][0]["modelCommand"] == "vllmServe"
    c = ms_values(environment="gke", accelerator="nvidia-l40s", max_model_len=8192)
    assert "--max-model-len=8192" in c["decode"]["containers"][0]["args"][0]


# ---- 3. GKE monitoring: no PodMonitor, PodMonitoring through the inferencepool chart ---------------------

def test_gke_monitoring_uses_managed_prometheus_not_a_podmonitor():
    bundle = render_bundle(settings(environment="gke", monitoring=True))
    ms = yamlsafe.load(bundle.files["values/ms.yaml"])
    gaie = yamlsafe.load(bundle.files["values/gaie.yaml"])
    assert ms["decode"]["monitoring"]["podmonitor"]["enabled"] is False
    assert gaie["provider"]["name"] == "gke"  # the chart renders PodMonitoring for provider gke
    assert gaie["inferenceExtension"]["monitoring"]["prometheus"]["enabled"] is True
    istio = yamlsafe.load(render_bundle(settings(monitoring=True)).files["values/ms.yaml"])
    assert istio["decode"]["monitoring"]["podmonitor"]["enabled"] is True


# ---- 4. --monitoring without the monitoring CRDs: preflight exit 3 ---------------------------------------

def test_monitoring_without_prometheus_operator_crds_exits_3_before_any_change(cli, fp, fake):
    fake.preflight(ns_exists=True)
    # the Prometheus Operator CRDs llmd.ops.prereqs knows (its catalog), none installed
    fp.register(fake.k("get", "customresourcedefinitions", fp.any(), namespaced=False), stdout="")
    r = cli("deploy", "--context", CTX, "--accelerator", "sim", "--monitoring")
    assert r.exit_code == 3, r.stderr
    assert "Prometheus Operator" in r.stderr and "--no-monitoring" in r.stderr
    assert "llmd prereqs install" in r.stderr
    assert not [c for c in fp.calls if "apply" in c or c[-1] == "sync"]  # nothing changed


def test_gke_monitoring_needs_podmonitoring_crd(fp):
    name = pf.GKE_MONITORING_CRD
    fp.register(["kubectl", "--context", CTX, "--request-timeout=10s", "get", "customresourcedefinitions", name,
                 "--ignore-not-found", "--output", "json"], stdout="")
    s = settings(environment="gke", monitoring=True, kube_context=CTX)
    result = pf.check_monitoring_crds(Kubectl(Runner(), Scope(context=CTX, namespace=s.namespace)), s)
    assert result.status == "fail" and name in result.message and "managed-prometheus" in result.fixes[0]


def test_monitoring_check_skips_when_off():
    s = settings()
    assert pf.check_monitoring_crds(Kubectl(Runner(), Scope(context=CTX, namespace=s.namespace)), s).status == "skip"


# ---- 5. selector change: see tests/test_deploy.py::test_selector_change_replaces_the_decode_deployment_... ----

def test_decode_selector_follows_model_and_accelerator_labels():
    from llmd.render.values import decode_selector, selector_changes

    a = decode_selector(ms_values(accelerator="sim"))
    b = decode_selector(ms_values(accelerator="sim", model="Qwen/Qwen3-0.6B"))
    c = decode_selector(ms_values(accelerator="nvidia-l40s", model_cache="emptydir"))
    assert a["llm-d.ai/role"] == "decode"
    assert selector_changes(a, b) == ["llm-d.ai/model: Llama-3.1-8B-Instruct -> Qwen3-0.6B"]
    assert "llm-d.ai/accelerator-variant: sim -> gpu" in selector_changes(a, c)
    assert selector_changes(a, dict(a)) == []


# ---- 6. org-less model ids -----------------------------------------------------------------------------

def test_orgless_model_is_refused_with_the_pvc_cache_and_the_fix():
    with pytest.raises(ConfigError) as err:
        settings(model="gpt2")
    assert "no organisation" in str(err.value) and "openai-community/gpt2" in str(err.value)
    assert "--model-cache emptydir" in str(err.value)


def test_orgless_model_works_without_the_pvc_cache():
    ms = ms_values(model="gpt2", model_cache="emptydir")
    assert ms["modelArtifacts"]["uri"] == "hf://gpt2"
    assert ms_values(model="gpt2", accelerator="sim")["modelArtifacts"]["name"] == "gpt2"


# ---- 7. the download Job -------------------------------------------------------------------------------

def test_download_job_pins_huggingface_hub():
    env = {e["name"]: e.get("value") for e in job()["spec"]["template"]["spec"]["containers"][0]["env"]}
    req = env["HF_HUB_REQUIREMENT"]
    assert req.startswith("huggingface_hub==") and all(ch not in req for ch in "<>,~*")


def test_download_job_is_admitted_by_restricted_pod_security():
    """The `restricted` level's checks (k8s.io/pod-security-admission): non-root, no privilege escalation,
    capabilities drop ALL, seccomp RuntimeDefault/Localhost, no host namespaces/paths/ports, no privileged."""
    spec = job()["spec"]["template"]["spec"]
    pod_sc = spec.get("securityContext") or {}
    for c in spec["containers"]:
        sc = c.get("securityContext") or {}
        assert sc.get("allowPrivilegeEscalation") is False
        assert sc.get("capabilities", {}).get("drop") == ["ALL"] and not sc.get("capabilities", {}).get("add")
        assert (sc.get("runAsNonRoot") or pod_sc.get("runAsNonRoot")) is True
        assert (sc.get("runAsUser") or pod_sc.get("runAsUser")) != 0
        seccomp = (sc.get("seccompProfile") or pod_sc.get("seccompProfile") or {}).get("type")
        assert seccomp in ("RuntimeDefault", "Localhost")
        assert not sc.get("privileged")
    assert not any(spec.get(k) for k in ("hostNetwork", "hostPID", "hostIPC"))
    assert all("hostPath" not in v for v in spec["volumes"])
    assert pod_sc.get("fsGroup") == pod_sc.get("runAsUser")  # the PVC is writable by the Job's uid


def test_download_job_image_is_configurable_and_mirrored():
    image = job(download_image="registry.corp/library/python:3.12-slim")["spec"]["template"]["spec"]["containers"][0]
    assert image["image"] == "registry.corp/library/python:3.12-slim"
    mirrored = job(image_mirror="docker.io=registry.corp/docker")["spec"]["template"]["spec"]["containers"][0]
    assert mirrored["image"] == "registry.corp/docker/library/python:3.12-slim"
    with pytest.raises(ConfigError) as err:
        settings(download_image="Not An Image")
    assert "download_image" in str(err.value)


@pytest.mark.parametrize(("model", "size", "status"), [
    ("meta-llama/Llama-3.1-8B-Instruct", "50Gi", "ok"),
    ("Qwen/Qwen3-32B", "50Gi", "warn"),
    ("Qwen/Qwen3-32B", "100Gi", "ok"),
    ("Qwen/Qwen3-32B", "60G", "warn"),  # 60 GB < 61 GiB
    ("someone/unknown-model", "1Gi", "skip"),
])
def test_model_size_warns_when_known_to_exceed_the_pvc(model, size, status):
    s = settings(model=model, pvc_size=size)
    result = pf.check_model_size(s, needs_pvc=True)
    assert result.status == status, result
    if status == "warn":
        assert "--pvc-size" in result.fixes[0] and model in result.message


def test_model_size_warning_shows_in_deploy(cli, fp, fake, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_" + "t" * 30)
    fake.s = fake.s.__class__(namespace=fake.ns, kube_context=CTX)
    fake.preflight(gpu=True, pvc=True, ns_exists=True)
    r = cli("deploy", "--context", CTX, "--model", "Qwen/Qwen3-32B", "--dry-run")
    assert r.exit_code == 0, r.stderr
    assert "model size: Qwen/Qwen3-32B is about 61 GiB, more than --pvc-size 50Gi" in r.stderr


def test_job_json_has_no_root_user_action():
    assert "PIP_ROOT_USER_ACTION" not in json.dumps(job())
