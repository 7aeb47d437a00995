"""Doctor's prerequisite checks, each ok / warn / fail / skip path on recorded `kubectl ... -o json` answers
(strict pytest-subprocess), with the exact `llmd prereqs install ...` fix."""

from __future__ import annotations

import json

import pytest

from llmd.kube.kubectl import Kubectl, Scope
from llmd.ops.prereqs.checks import check_control_plane, check_kubernetes, check_lws, check_monitoring
from llmd.proc import Runner
from llmd.settings import load_settings
from prereqs_support import OURS, PFake, prom_docs
from test_deploy_support import CTX, NS, istiod, lst

INFERENCE_ENV = "ENABLE_GATEWAY_API_INFERENCE_EXTENSION"
PROM_GET = ["get", "customresourcedefinitions", "servicemonitors.monitoring.coreos.com",
            "podmonitors.monitoring.coreos.com", "--ignore-not-found", "--output", "json"]


@pytest.fixture
def fake(fp, tmp_path, fake_tools_on_path):
    return PFake(fp, tmp_path)


def kubectl() -> Kubectl:
    return Kubectl(Runner(), Scope(NS, CTX))


def settings(**flags):
    return load_settings({"kube_context": CTX, "accelerator": "sim", **flags}, environ={})


@pytest.mark.parametrize(("server", "status", "text"), [
    ("v1.33.1", "ok", "v1.33.1 (>= 1.29: native sidecars)"),
    ("v1.29.0-gke.1381000", "ok", "v1.29.0-gke.1381000 (>= 1.29"),
    ("v1.28.9", "fail", "Kubernetes v1.28.9 is older than 1.29: native sidecars"),
    ("?", "warn", "could not read the server version (?)"),
])
def test_kubernetes_version(server, status, text):
    r = check_kubernetes(server)
    assert r.status == status and text in r.message
    if status == "fail":
        assert r.fixes == ("upgrade the cluster to Kubernetes >= 1.29 (1.33 recommended); no llmd command can",)


def test_control_plane_ok_names_version_and_the_extension(fake):
    fake.reg(fake.cp_argv(), json.dumps(istiod()))
    r = check_control_plane(kubectl(), settings())
    assert r.status == "ok"
    assert r.message == (f"Istio control plane (istiod) 1.29.1 running (istio-system/istiod: istiod 1/1 available), "
                         f"{INFERENCE_ENV}=true")


def test_control_plane_missing_fails_with_the_install_command(fake):
    fake.not_found(fake.cp_argv(), "deployments.apps", "istiod")
    r = check_control_plane(kubectl(), settings())
    assert r.status == "fail" and r.fixes == (f"llmd prereqs install --context {CTX}",)


def test_control_plane_without_the_extension_installed_by_llmd_is_fixed_by_prereqs_install(fake):
    fake.reg(fake.cp_argv(), json.dumps(istiod(env={INFERENCE_ENV: "false"})))
    fake.record({"namespace-created": "true"})
    r = check_control_plane(kubectl(), settings(kubeconfig=None))
    assert r.status == "fail"
    assert r.message == (f"Istio control plane (istiod) 1.29.1: istio-system/istiod runs without {INFERENCE_ENV}=true "
                         f"(found {INFERENCE_ENV}=false)")
    assert r.fixes == (f"llmd prereqs install --context {CTX}",)


def test_control_plane_without_the_extension_installed_by_someone_else_gets_the_helm_fix(fake):
    fake.reg(fake.cp_argv(), json.dumps(istiod(env={})))
    fake.record(None)
    r = check_control_plane(kubectl(), settings())
    assert r.status == "fail" and f"found {INFERENCE_ENV}=(unset)" in r.message
    # --version: the release it runs (without it helm would upgrade to the repository's newest chart)
    assert r.fixes == ("set it on your install, e.g. `helm upgrade istiod istio/istiod -n istio-system "
                       f"--version 1.29.1 --reuse-values --set pilot.env.{INFERENCE_ENV}=true`",)


def test_control_plane_not_running_fails(fake):
    fake.reg(fake.cp_argv(), json.dumps(istiod(available=0)))
    r = check_control_plane(kubectl(), settings())
    assert r.status == "fail"
    assert "is not running: istio-system/istiod: istiod 0/1 available" in r.message
    assert "kubectl get pods -n istio-system" in r.fixes[0]


AGENTGATEWAYS = [  # environment, namespace, the env the chart sets with inferenceExtension.enabled, chart, version
    ("agentgateway", "agentgateway-system", "AGW_ENABLE_INFER_EXT", "oci://cr.agentgateway.dev/charts/agentgateway",
     "v1.0.0"),
    ("kgateway", "kgateway-system", "KGW_ENABLE_INFER_EXT", "oci://ghcr.io/kgateway-dev/charts/agentgateway", "v2.2.1"),
]


def agentgateway(namespace: str, version: str, env: dict[str, str]) -> dict:
    dep = istiod(version, env=env)
    dep["metadata"] = {"name": "agentgateway", "namespace": namespace}
    return dep


@pytest.mark.parametrize(("env", "namespace", "var", "chart", "version"), AGENTGATEWAYS)
def test_control_plane_agentgateway_with_the_extension_is_ok(fake, env, namespace, var, chart, version):
    fake.reg(fake.cp_argv(namespace, "agentgateway"), json.dumps(agentgateway(namespace, version, {var: "true"})))
    r = check_control_plane(kubectl(), settings(environment=env))
    assert r.status == "ok", r.message
    assert r.message.endswith(f"running ({namespace}/agentgateway: agentgateway 1/1 available), {var}=true")


@pytest.mark.parametrize(("env", "namespace", "var", "chart", "version"), AGENTGATEWAYS)
def test_control_plane_agentgateway_without_the_extension_gets_the_helm_fix(fake, env, namespace, var, chart,
                                                                            version):
    """Installed without inferenceExtension.enabled: the controller runs (every Deployment available) but ignores
    InferencePools. Someone else's install: the helm upgrade that turns it on, at the release it runs."""
    fake.reg(fake.cp_argv(namespace, "agentgateway"), json.dumps(agentgateway(namespace, version, {})))
    fake.record(None, namespace, env)
    r = check_control_plane(kubectl(), settings(environment=env))
    assert r.status == "fail"
    assert f"{namespace}/agentgateway runs without {var}=true (found {var}=(unset))" in r.message
    assert r.fixes == (f"set it on your install, e.g. `helm upgrade agentgateway {chart} -n {namespace} --version "
                       f"{version} --reuse-values --set inferenceExtension.enabled=true`",)


@pytest.mark.parametrize(("env", "namespace", "var", "chart", "version"), AGENTGATEWAYS)
def test_control_plane_agentgateway_without_the_extension_installed_by_llmd_is_fixed_by_prereqs_install(
        fake, env, namespace, var, chart, version):
    fake.reg(fake.cp_argv(namespace, "agentgateway"), json.dumps(agentgateway(namespace, version, {var: "false"})))
    fake.record({"namespace-created": "true"}, namespace, env)
    r = check_control_plane(kubectl(), settings(environment=env))
    assert r.status == "fail" and f"(found {var}=false)" in r.message
    assert r.fixes == (f"llmd prereqs install -e {env} --context {CTX}",)


def test_control_plane_agentgateway_missing_names_its_deployment(fake):
    fake.not_found(fake.cp_argv("agentgateway-system", "agentgateway"), "deployments.apps", "agentgateway")
    r = check_control_plane(kubectl(), settings(environment="agentgateway"))
    assert r.status == "fail" and "no Deployment agentgateway-system/agentgateway" in r.message
    assert r.fixes == (f"llmd prereqs install -e agentgateway --context {CTX}",)


def test_control_plane_on_gke_is_skipped():
    r = check_control_plane(kubectl(), settings(environment="gke"))
    assert r.status == "skip" and "the platform runs the gateway controller" in r.message


def test_monitoring_off_is_skipped_without_a_call(fake, fp):
    assert check_monitoring(kubectl(), settings()).status == "skip"
    assert not fp.calls


def test_monitoring_on_with_crds_is_ok(fake):
    fake.reg(fake.k(*PROM_GET, namespaced=False), lst(*prom_docs()))
    r = check_monitoring(kubectl(), settings(monitoring=True))
    assert r.status == "ok" and "(0.85.0)" in r.message


def test_monitoring_on_without_crds_fails_with_the_install_command(fake):
    fake.reg(fake.k(*PROM_GET, namespaced=False), "")
    r = check_monitoring(kubectl(), settings(monitoring=True))
    assert r.status == "fail" and 'no matches for kind "ServiceMonitor"' in r.message
    assert r.fixes == (f"llmd prereqs install --context {CTX} --monitoring", "or deploy with --no-monitoring")


def test_monitoring_crd_that_does_not_serve_v1_fails(fake):
    fake.reg(fake.k(*PROM_GET, namespaced=False), lst(prom_docs()[0], {**prom_docs()[1], "spec": {
        **prom_docs()[1]["spec"], "versions": [{"name": "v1alpha1", "served": True}]}}))
    r = check_monitoring(kubectl(), settings(monitoring=True))
    assert r.status == "fail" and "podmonitors.monitoring.coreos.com does not serve v1" in r.message


MULTINODE = {"value_overrides": (("ms", "multinode", True),)}


def test_lws_is_skipped_for_single_node_profiles(fake, fp):
    r = check_lws(kubectl(), settings())
    assert r.status == "skip" and "values.ms.multinode is false" in r.message
    assert not fp.calls


@pytest.mark.parametrize(("answer", "status", "text"), [
    (None, "fail", "multinode needs LeaderWorkerSet: LeaderWorkerSet controller (multi-node serving) not installed"),
    ({"available": 0}, "fail", "is not running"),
    ({"available": 1}, "ok", "v0.7.0 running"),
])
def test_lws_when_multinode_is_set(cli, fp, fake, answer, status, text):
    argv = fake.cp_argv("lws-system", "lws-controller-manager")
    if answer is None:
        fake.not_found(argv, "deployments.apps", "lws-controller-manager")
    else:
        dep = istiod(env={}, available=answer["available"])
        dep["spec"]["template"]["spec"]["containers"][0]["image"] = "registry.k8s.io/lws/lws:v0.7.0"
        fake.reg(argv, json.dumps(dep))
    s = load_settings({"kube_context": CTX, "accelerator": "sim"}, sets=["values.ms.multinode=true"], environ={})
    r = check_lws(kubectl(), s)
    assert r.status == status and text in r.message
    if status == "fail":
        assert r.fixes == (f"llmd prereqs install --context {CTX} --lws",)


def test_record_labels_decide_installed_by_llmd():
    """A ConfigMap of the right name but not labelled by llmd is not llmd's record."""
    from llmd.ops.prereqs.inspect import _ours

    assert _ours({"labels": {**OURS, "llmd.ai/prereq": "istio"}}, "istio")
    assert not _ours({"labels": {"llmd.ai/prereq": "istio"}}, "istio")
    assert not _ours({"labels": {**OURS, "llmd.ai/prereq": "lws"}}, "istio")
