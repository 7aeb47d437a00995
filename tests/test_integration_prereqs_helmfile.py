"""The prerequisites' helmfile (llmd.render.prereqs) driven by the REAL helmfile 0.166 against the recording fake
helm (tests/fakes/fake_helm.py): which charts, versions, namespaces and values helmfile really hands helm, the
way `llmd prereqs install` runs it (one sync per component, with its namespace and selector) and the way a user
runs the file by hand (plain `helmfile -f helmfile.yaml sync`). Skipped without `make tools`."""

from __future__ import annotations

import pytest
import yaml

from fakes import FakeTool, install_fake
from llmd.kube.helm import Helm, Helmfile
from llmd.kube.kubectl import Scope
from llmd.ops.prereqs.catalog import catalog
from llmd.proc import Cmd, Runner
from llmd.render.mirror import parse_image_mirror
from llmd.render.prereqs import ChartSources, release_charts, render_helmfile
from test_integration_helmfile import opt, subcommand

pytestmark = pytest.mark.integration

CONTEXT = "kind-llmd"
ISTIO_REPO = "https://istio-release.storage.googleapis.com/charts"
INFERENCE_ENV = "ENABLE_GATEWAY_API_INFERENCE_EXTENSION"


@pytest.fixture
def fake_helm(tmp_path, monkeypatch) -> FakeTool:
    for var in ("HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME"):
        monkeypatch.setenv(var, str(tmp_path / "helm-home"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    tool = install_fake(tmp_path / "fakebin", "helm", tmp_path / "fake-helm")
    for key, value in tool.env.items():
        monkeypatch.setenv(key, value)
    return tool


def write(tmp_path, keys: tuple[str, ...], sources: ChartSources | None = None, mirror: str = ""):
    cat = catalog()
    path = tmp_path / "prereqs" / "helmfile.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(render_helmfile([cat.charts[k] for k in keys], sources, parse_image_mirror(mirror) if mirror
                                    else ()))
    return path


def runner_for(real_tools, fake_helm) -> Runner:
    return Runner(tools={"helmfile": str(real_tools / "helmfile"), "helm": str(fake_helm.bin)})


def calls(fake_helm) -> list[list[str]]:
    """helm argv without the global scope flags helmfile prepends."""
    return [subcommand(c) for c in fake_helm.calls()]


def upgrades(fake_helm) -> list[tuple[str, str, str | None, str | None]]:
    """(release, chart, --version, --namespace) of every `helm upgrade --install`, in order."""
    return [(c[2], c[3], opt(c, "--version"), opt(c, "--namespace")) for c in calls(fake_helm)
            if c[:2] == ["upgrade", "--install"]]


def sync(runner: Runner, path) -> None:
    """Exactly as `llmd prereqs install` syncs the file of the components it installs: no --namespace (the
    releases live in several namespaces, and helmfile's flag would override them all)."""
    Helmfile(runner, Scope("", CONTEXT)).sync(path)


def test_istio_is_base_then_istiod_1_29_1_in_istio_system_with_the_inference_extension_on(tmp_path, real_tools,
                                                                                            fake_helm):
    path = write(tmp_path, ("istio",))
    runner = runner_for(real_tools, fake_helm)
    sync(runner, path)

    assert upgrades(fake_helm) == [("istio-base", "istio/base", "1.29.1", "istio-system"),
                                   ("istiod", "istio/istiod", "1.29.1", "istio-system")]  # needs: base first
    adds = [c for c in calls(fake_helm) if c[:2] == ["repo", "add"]]
    assert [(c[2], c[3]) for c in adds] == [("istio", ISTIO_REPO)]
    for c in fake_helm.calls():
        if c[:1] != ["version"]:
            assert opt(c, "--kube-context") == CONTEXT, c
    (values,) = fake_helm.captured("istiod")  # helmfile hands helm our inline values as one file
    got = yaml.safe_load(values.read_text())
    assert got["pilot"]["env"] == {INFERENCE_ENV: "true"}  # a string: the env value istiod reads
    assert got["meshConfig"]["defaultConfig"]["proxyMetadata"] == {INFERENCE_ENV: "true"}
    assert (got["hub"], got["tag"]) == ("docker.io/istio", "1.29.1")
    assert fake_helm.captured("istio-base") == []
    helm = Helm(runner, Scope("istio-system", CONTEXT))
    assert {n: r.status for n, r in helm.releases().items()} == {"istio-base": "deployed", "istiod": "deployed"}


def test_lws_is_the_oci_chart_0_7_0_in_lws_system(tmp_path, real_tools, fake_helm):
    path = write(tmp_path, ("lws",))
    sync(runner_for(real_tools, fake_helm), path)
    pulls = [c for c in calls(fake_helm) if c[0] == "pull"]
    assert [(c[1], opt(c, "--version")) for c in pulls] == [("oci://registry.k8s.io/lws/charts/lws", "0.7.0")]
    assert [(r, v, ns) for r, _, v, ns in upgrades(fake_helm)] == [("lws", "0.7.0", "lws-system")]
    assert not [c for c in calls(fake_helm) if c[:2] == ["repo", "add"]]  # a file of LWS alone: no istio repo to reach


@pytest.mark.parametrize(("env", "namespace", "registry", "version"), [
    ("agentgateway", "agentgateway-system", "oci://cr.agentgateway.dev/charts", "v1.0.0"),
    ("kgateway", "kgateway-system", "oci://ghcr.io/kgateway-dev/charts", "v2.2.1"),
])
def test_agentgateway_flavours_pull_crds_then_controller_with_inference_enabled(tmp_path, real_tools, fake_helm,
                                                                               env, namespace, registry, version):
    path = write(tmp_path, (env,))
    sync(runner_for(real_tools, fake_helm), path)
    pulls = [(c[1], opt(c, "--version")) for c in calls(fake_helm) if c[0] == "pull"]
    assert sorted(pulls) == [(f"{registry}/agentgateway", version), (f"{registry}/agentgateway-crds", version)]
    assert [(r, v, ns) for r, _, v, ns in upgrades(fake_helm)] == [("agentgateway-crds", version, namespace),
                                                                   ("agentgateway", version, namespace)]
    (values,) = fake_helm.captured("agentgateway")
    assert yaml.safe_load(values.read_text()) == {"inferenceExtension": {"enabled": True}}


def test_mirrors_and_local_charts_replace_the_sources(tmp_path, real_tools, fake_helm):
    """Air-gap: a repository mirror for istio/base, a local chart directory for istiod, an OCI mirror for LWS."""
    local = tmp_path / "charts" / "istiod"
    local.mkdir(parents=True)
    (local / "Chart.yaml").write_text("apiVersion: v2\nname: istiod\nversion: 1.29.1\n")
    (local / "values.yaml").write_text("{}\n")
    cat = catalog()
    releases = release_charts([cat.charts[k] for k in ("istio", "lws")])
    sources = ChartSources.parse([f"istiod={local}", "lws=oci://mirror.example/lws/lws"],
                                 ["istio=https://mirror.example/istio"], releases, ["istio"])
    path = write(tmp_path, ("istio", "lws"), sources)
    runner = runner_for(real_tools, fake_helm)
    sync(runner, path)
    adds = [(c[2], c[3]) for c in calls(fake_helm) if c[:2] == ["repo", "add"]]
    assert set(adds) == {("istio", "https://mirror.example/istio")}
    got = {r: chart for r, chart, _, _ in upgrades(fake_helm)}
    assert got["istio-base"] == "istio/base" and got["istiod"] == str(local)
    pulls = [c[1] for c in calls(fake_helm) if c[0] == "pull"]
    assert pulls == ["oci://mirror.example/lws/lws"]
    assert not any("istio-release.storage.googleapis.com" in a or "registry.k8s.io" in a
                   for c in fake_helm.calls() for a in c)


def test_a_repository_url_as_chart_source_serves_the_chart_under_its_own_name(tmp_path, real_tools, fake_helm):
    """The same form as the stack's --chart-source-*: https://... is a Helm repository holding the chart."""
    releases = release_charts([catalog().charts["istio"]])
    sources = ChartSources.parse(["istiod=https://charts.corp/istio"], [], releases, ["istio"])
    path = write(tmp_path, ("istio",), sources)
    sync(runner_for(real_tools, fake_helm), path)
    adds = {c[2]: c[3] for c in calls(fake_helm) if c[:2] == ["repo", "add"]}
    assert adds == {"istio": ISTIO_REPO, "llmd-mirror-istiod": "https://charts.corp/istio"}
    got = {r: (chart, v) for r, chart, v, _ in upgrades(fake_helm)}
    assert got["istiod"] == ("llmd-mirror-istiod/istiod", "1.29.1") and got["istio-base"][0] == "istio/base"


def test_plain_helmfile_sync_of_the_file_installs_every_release_in_its_own_namespace(tmp_path, real_tools,
                                                                                    fake_helm):
    """The rendered file is reusable as is: no llmd, no --namespace, no selector."""
    path = write(tmp_path, ("istio", "lws"))
    runner = runner_for(real_tools, fake_helm)
    runner.run(Cmd((str(real_tools / "helmfile"), "--file", str(path), "--helm-binary", str(fake_helm.bin), "sync"),
                   cwd=str(path.parent), timeout=120), check=True)
    assert sorted((r, ns) for r, _, _, ns in upgrades(fake_helm)) == [
        ("istio-base", "istio-system"), ("istiod", "istio-system"), ("lws", "lws-system")]


# ---- the image mirror (the stack's image_mirror rules) on the releases' image values ------------------------

def test_image_mirror_moves_istiod_hub_and_keeps_the_other_values(tmp_path, real_tools, fake_helm):
    path = write(tmp_path, ("istio",), mirror="docker.io=registry.corp/docker")
    sync(runner_for(real_tools, fake_helm), path)
    (values,) = fake_helm.captured("istiod")
    got = yaml.safe_load(values.read_text())
    assert (got["hub"], got["tag"]) == ("registry.corp/docker/istio", "1.29.1")  # pilot and proxyv2 come from hub
    assert got["pilot"]["env"] == {INFERENCE_ENV: "true"}
    assert fake_helm.captured("istio-base") == []  # no images: nothing to set


def test_image_mirror_sets_agentgateway_controller_and_proxy_images(tmp_path, real_tools, fake_helm):
    path = write(tmp_path, ("agentgateway",), mirror="cr.agentgateway.dev=registry.corp/agw")
    sync(runner_for(real_tools, fake_helm), path)
    (values,) = fake_helm.captured("agentgateway")
    assert yaml.safe_load(values.read_text()) == {
        "inferenceExtension": {"enabled": True},
        "controller": {"image": {"registry": "registry.corp/agw", "repository": "controller"}},
        "proxy": {"image": {"registry": "registry.corp/agw", "repository": "agentgateway"}}}


def test_image_mirror_of_one_image_path_moves_only_that_image(tmp_path, real_tools, fake_helm):
    """The longest-prefix rule of the stack's mirror: a rule for the controller's path leaves the proxy alone."""
    path = write(tmp_path, ("agentgateway",), mirror="cr.agentgateway.dev/controller=registry.corp/agw/ctl")
    sync(runner_for(real_tools, fake_helm), path)
    (values,) = fake_helm.captured("agentgateway")
    got = yaml.safe_load(values.read_text())
    assert got["controller"] == {"image": {"registry": "registry.corp/agw", "repository": "ctl"}}
    assert "proxy" not in got


def test_image_mirror_moves_the_lws_manager_image(tmp_path, real_tools, fake_helm):
    path = write(tmp_path, ("lws",), mirror="registry.k8s.io=registry.corp/k8s")
    sync(runner_for(real_tools, fake_helm), path)
    (values,) = fake_helm.captured("lws")
    assert yaml.safe_load(values.read_text()) == {"image": {"manager": {"repository": "registry.corp/k8s/lws/lws"}}}


def test_image_defaults_agree_with_the_values_that_set_them():
    """istiod's `hub` is both a value (as the guide sets it) and its image default: the two must not drift."""
    for comp in catalog().charts.values():
        for rel in comp.releases:
            for path, default in rel.images.items():
                node = rel.values
                for key in path.split("."):
                    node = node.get(key, {}) if isinstance(node, dict) else {}
                assert node in ({}, default), (rel.name, path)
