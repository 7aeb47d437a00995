"""`llmd prereqs install|status|uninstall` end to end through the CLI against the strict fake process boundary:
every kubectl/helmfile call is registered with its exact argv; anything else fails the test."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from prereqs_support import (
    MARKERS,
    OURS,
    PFake,
    gateway_api_docs,
    inference_docs,
    names,
    write_crd_dir,
)
from test_deploy_support import (  # noqa: F401  (*_fixture: fixtures used by name)
    CRDS,
    CTX,
    clock_fixture,
    istiod,
    lst,
    no_killpg_fixture,
    stdin_capture_fixture,
    tool_calls,
)

SIM = ("--accelerator", "sim")
INFERENCE_ENV = "ENABLE_GATEWAY_API_INFERENCE_EXTENSION"


@pytest.fixture
def fake(fp, tmp_path, fake_tools_on_path, clock, no_killpg):
    return PFake(fp, tmp_path)


@pytest.fixture
def crd_dir(tmp_path):
    return write_crd_dir(tmp_path / "crds")


def install_args(crd_dir, out, *extra: str) -> tuple[str, ...]:
    return ("prereqs", "install", "--context", CTX, *SIM, "--crd-dir", str(crd_dir), "--out", str(out), *extra)


def bare_cluster_crds(fake) -> None:
    """A bare cluster gets both CRD bundles first."""
    fake.context()
    fake.reachable()
    fake.markers()
    fake.istiod(present=False)
    for docs in (gateway_api_docs(), inference_docs()):
        fake.existing(names(docs))
        fake.ssa()
        fake.established(names(docs))


def bare_cluster_install(fake, out) -> None:
    """Everything a bare cluster gets: both CRD bundles, then istio, then the wait, then doctor."""
    bare_cluster_crds(fake)
    fake.ns_get("istio-system", exists=False)
    fake.ssa()  # namespace
    fake.prereqs_sync(out / "helmfile.yaml")
    fake.ssa()  # record
    fake.istiod(record={"namespace-created": "true"})  # the wait: running at once
    fake.gatewayclass()
    fake.doctor_ok()


def crds_present_istio_missing(fake) -> None:
    fake.context()
    fake.reachable()
    fake.markers(*gateway_api_docs()[:3], inference_docs()[0])
    fake.istiod(present=False)
    fake.ns_get("istio-system", exists=True)


def applied(stdin_capture) -> list[dict]:
    return [json.loads(b) for b in stdin_capture if b]


# ---- install ------------------------------------------------------------------------------------------------

def test_bare_cluster_gets_crds_then_istio_then_doctor_passes(cli, fp, fake, crd_dir, tmp_path, stdin_capture):
    out = tmp_path / "out"
    bare_cluster_install(fake, out)
    r = cli(*install_args(crd_dir, out))
    assert r.exit_code == 0, r.stderr
    calls = tool_calls(fp)
    first_apply = calls.index(fake.k("apply", "--server-side", "--field-manager=llmd", "--force-conflicts",
                                     "--filename", "-", namespaced=False))
    sync = calls.index(["helmfile", "--file", str(out / "helmfile.yaml"), "--kube-context", CTX, "--helm-binary",
                        "helm", "sync"])
    assert first_apply < sync  # istiod only finds the Gateway API if the CRDs exist when it starts

    docs = applied(stdin_capture)
    gw, gaie, ns, rec = docs[:4]  # then doctor's access reviews
    assert [d["metadata"]["name"] for d in gw["items"]] == names(gateway_api_docs())
    for d in gw["items"] + gaie["items"]:  # created by llmd: labelled so uninstall finds exactly these
        assert d["metadata"]["labels"] == {**OURS, "llmd.ai/prereq": "gateway-api" if d in gw["items"]
                                           else "inference-extension"}
        assert "status" not in d
    assert gaie["items"][0]["metadata"]["annotations"]["llmd.ai/prereq-version"] == "v1.4.0"
    assert ns["metadata"] == {"name": "istio-system", "labels": {**OURS, "llmd.ai/prereq": "istio"}}
    assert rec["kind"] == "ConfigMap" and rec["metadata"]["namespace"] == "istio-system"
    assert rec["data"] | {"llmd-version": "-"} == {"component": "istio", "version": "1.29.1",
                                                     "releases": "istio-base,istiod", "namespace-created": "true",
                                                     "llmd-version": "-"}
    assert "inference-extension" in r.stderr and "install" in r.stderr
    assert "control plane ready: Istio control plane (istiod) 1.29.1" in r.stderr
    assert "✓ ready to deploy" in r.stderr  # doctor's verdict ends the run
    assert "✓ prerequisites installed" in r.stderr
    text = (out / "helmfile.yaml").read_text()
    assert "istio/istiod" in text and f'{INFERENCE_ENV}: "true"' in text


def test_second_run_changes_nothing_and_says_so(cli, fp, fake, crd_dir, tmp_path):
    """Everything present: no apply, no helmfile (strict fp: those calls are not registered)."""
    present = [*gateway_api_docs(labels={**OURS, "llmd.ai/prereq": "gateway-api"})[:3],
               inference_docs(labels={**OURS, "llmd.ai/prereq": "inference-extension"})[0]]
    fake.context()
    fake.reachable()
    fake.markers(*present)
    fake.istiod(record={"namespace-created": "true"})
    fake.istiod(record={"namespace-created": "true"})  # the readiness look
    fake.gatewayclass()
    fake.doctor_ok()
    r = cli(*install_args(crd_dir, tmp_path / "out"), "--json")
    assert r.exit_code == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["status"] == "unchanged" and data["changed"] is False
    assert [s["action"] for s in data["steps"]] == ["unchanged"] * 3
    assert data["doctor"]["status"] == "ok"
    assert "nothing to install: every prerequisite is present (no change)" in r.stderr
    assert not [c for c in tool_calls(fp) if "apply" in c or (c[:1] == ["helmfile"] and "sync" in c)]


def test_refuses_to_downgrade_newer_crds_and_changes_nothing(cli, fp, fake, crd_dir, tmp_path):
    """Gateway API v1.6.0 is installed but its HTTPRoute CRD is gone: applying our v1.5.1 would downgrade it."""
    newer = gateway_api_docs("v1.6.0")[:2]
    fake.context()
    fake.reachable()
    fake.markers(*newer, *inference_docs()[:1])
    fake.istiod(present=False)
    r = cli(*install_args(crd_dir, tmp_path / "out"))
    assert r.exit_code == 10, r.stderr
    assert "refusing to install prerequisites; nothing was changed" in r.stderr
    assert "Gateway API CRDs (standard channel) v1.6.0 are installed (httproutes.gateway.networking.k8s.io " \
           "missing)" in r.stderr
    assert f"{crd_dir}/standard-install.yaml holds v1.5.1, an older release: refusing to downgrade" in r.stderr
    assert not [c for c in tool_calls(fp) if "apply" in c or (c[:1] == ["helmfile"] and "sync" in c)]


def test_refuses_to_downgrade_a_newer_istiod_without_the_extension(cli, fp, fake, crd_dir, tmp_path):
    fake.context()
    fake.reachable()
    fake.markers(*gateway_api_docs()[:3], inference_docs()[0])
    fake.istiod(istiod("1.30.0", env={}))
    r = cli(*install_args(crd_dir, tmp_path / "out"))
    assert r.exit_code == 10
    assert ("istio: found Istio control plane (istiod) 1.30.0 (istio-system/istiod runs without "
            f"{INFERENCE_ENV}=true (found {INFERENCE_ENV}=(unset))); llmd pins 1.29.1 and will not downgrade it"
            in r.stderr)
    assert f"--set pilot.env.{INFERENCE_ENV}=true" in r.stderr


def test_refuses_to_take_over_an_istiod_llmd_did_not_install(cli, fp, fake, crd_dir, tmp_path):
    fake.context()
    fake.reachable()
    fake.markers(*gateway_api_docs()[:3], inference_docs()[0])
    fake.istiod(istiod("1.28.1", env={INFERENCE_ENV: "false"}))
    r = cli(*install_args(crd_dir, tmp_path / "out"))
    assert r.exit_code == 10
    assert "found Istio control plane (istiod) 1.28.1 not installed by llmd" in r.stderr
    assert f"found {INFERENCE_ENV}=false" in r.stderr and "will not take it over" in r.stderr


def test_upgrades_what_llmd_installed_when_it_is_older(cli, fp, fake, crd_dir, tmp_path):
    """An llmd-installed istiod 1.28.1 without the env: re-synced to the pin."""
    out = tmp_path / "out"
    fake.context()
    fake.reachable()
    fake.markers(*gateway_api_docs()[:3], inference_docs()[0])
    fake.istiod(istiod("1.28.1", env={}), record={"namespace-created": "true", "version": "1.28.1"})
    fake.ns_get("istio-system", exists=True)
    fake.prereqs_sync(out / "helmfile.yaml")
    fake.ssa()  # record
    fake.istiod(record={"namespace-created": "true"})
    fake.gatewayclass()
    fake.doctor_ok()
    r = cli(*install_args(crd_dir, out, "--json"))
    assert r.exit_code == 0, r.stderr
    steps = {s["component"]: s for s in json.loads(r.stdout)["steps"]}
    assert steps["istio"]["action"] == "upgrade" and steps["istio"]["detail"].startswith("1.28.1 -> 1.29.1")
    assert steps["gateway-api"]["action"] == "unchanged"


def test_waits_for_the_control_plane_and_fails_not_ready_after_the_timeout(cli, fp, fake, crd_dir, tmp_path, clock):
    out = tmp_path / "out"
    crds_present_istio_missing(fake)
    fake.prereqs_sync(out / "helmfile.yaml")
    fake.ssa()
    polls = 60 // 5 + 1
    for _ in range(polls):
        fake.istiod(istiod(available=0), record={"namespace-created": "false"})
    r = cli(*install_args(crd_dir, out, "--wait-timeout", "60"))
    assert r.exit_code == 6, r.stderr
    assert "not ready after 60s: Istio control plane (istiod): istio-system/istiod: istiod 0/1 available" in r.stderr
    assert "kubectl get pods -n istio-system" in r.stderr
    assert clock.sleeps == [5.0] * (polls - 1)


def test_helmfile_failure_is_exit_5_with_its_error(cli, fp, fake, crd_dir, tmp_path):
    out = tmp_path / "out"
    crds_present_istio_missing(fake)
    fake.prereqs_sync(out / "helmfile.yaml", rc=1)
    r = cli(*install_args(crd_dir, out))
    assert r.exit_code == 5
    assert "UPGRADE FAILED: boom" in r.stderr


def test_lws_and_monitoring_are_installed_when_asked(cli, fp, fake, tmp_path, stdin_capture):
    crds = write_crd_dir(tmp_path / "crds", monitoring=True)
    out = tmp_path / "out"
    from prereqs_support import prom_docs

    fake.context()
    fake.reachable()
    fake.markers(*gateway_api_docs()[:3], inference_docs()[0], monitoring=True)
    fake.istiod(record={"namespace-created": "true"})
    fake.reg(fake.cp_argv("lws-system", "lws-controller-manager"), stderr="NotFound", rc=1)
    fake.record(None, "lws-system", "lws")
    fake.existing(names(prom_docs()))
    fake.ssa()
    fake.established(names(prom_docs()))
    fake.ns_get("lws-system", exists=False)
    fake.ssa(n=2)  # namespace, record
    fake.prereqs_sync(out / "helmfile.yaml")
    fake.istiod(record={"namespace-created": "true"})
    fake.gatewayclass()
    lws = istiod()
    lws["metadata"]["name"] = "lws-controller-manager"
    lws["spec"]["template"]["spec"]["containers"][0]["image"] = "registry.k8s.io/lws/lws:v0.7.0"
    fake.reg(fake.cp_argv("lws-system", "lws-controller-manager"), json.dumps(lws))
    fake.record({"namespace-created": "true"}, "lws-system", "lws")
    # doctor with --monitoring: the Prometheus Operator CRDs are read once more
    fake.doctor_ok()
    fake.reg(fake.k("get", "customresourcedefinitions", "servicemonitors.monitoring.coreos.com",
                    "podmonitors.monitoring.coreos.com", "--ignore-not-found", "--output", "json", namespaced=False),
             lst(*prom_docs()))
    r = cli(*install_args(crds, out, "--lws", "--monitoring", "--json"))
    assert r.exit_code == 0, r.stderr
    steps = {s["component"]: s["action"] for s in json.loads(r.stdout)["steps"]}
    assert steps == {"gateway-api": "unchanged", "inference-extension": "unchanged", "prometheus-operator": "install",
                     "istio": "unchanged", "lws": "install"}
    text = (out / "helmfile.yaml").read_text()
    assert "oci://registry.k8s.io/lws/charts/lws" in text and "istio/istiod" not in text  # only what is synced
    docs = applied(stdin_capture)
    assert [d["metadata"]["name"] for d in docs[0]["items"]] == names(prom_docs())
    checks = {c["name"]: c for c in json.loads(r.stdout)["doctor"]["checks"]}
    assert checks["monitoring"]["status"] == "ok"


GMP_CRD = "podmonitorings.monitoring.googleapis.com"


def gke_install_and_doctor(fake, *, gmp: bool | None = None) -> None:
    """`prereqs install -e gke` on a cluster with the CRDs: what it reads, then doctor; with --monitoring
    (`gmp` not None) doctor checks Managed Prometheus' PodMonitoring CRD, never the Prometheus Operator's."""
    fake.context()
    fake.reachable()
    fake.markers(*gateway_api_docs()[:3], inference_docs()[0])  # no ServiceMonitor/PodMonitor in the read
    fake.doctor_ok(gateway_class="gke-l7-regional-external-managed")
    if gmp is not None:
        fake.existing([GMP_CRD], *([{"kind": "CustomResourceDefinition", "metadata": {"name": GMP_CRD}}]
                                   if gmp else []))


def test_gke_installs_only_the_crds_and_says_the_platform_runs_the_gateway(cli, fp, fake, crd_dir, tmp_path):
    gke_install_and_doctor(fake)
    r = cli(*install_args(crd_dir, tmp_path / "out", "-e", "gke"))
    assert r.exit_code == 0, r.stderr
    assert "environment gke: the platform runs the gateway control plane; nothing to install for it" in r.stderr
    assert not [c for c in tool_calls(fp) if c[0] == "helmfile" and "sync" in c]


def test_gke_monitoring_installs_no_prometheus_operator_crds_and_doctor_checks_managed_prometheus(
        cli, fp, fake, crd_dir, tmp_path):
    gke_install_and_doctor(fake, gmp=True)
    r = cli(*install_args(crd_dir, tmp_path / "out", "-e", "gke", "--monitoring", "--json"))
    assert r.exit_code == 0, r.stderr
    data = json.loads(r.stdout)
    assert {s["component"] for s in data["steps"]} == {"gateway-api", "inference-extension"}
    assert not [c for c in tool_calls(fp) if any("monitoring.coreos.com" in a for a in c)]
    assert any(GMP_CRD in n and "gcloud container clusters update" in n for n in data["notes"])
    checks = {c["name"]: c for c in data["doctor"]["checks"]}
    assert checks["monitoring"]["status"] == "ok" and GMP_CRD in checks["monitoring"]["message"]


def test_gke_monitoring_without_managed_prometheus_fails_doctor_with_its_fix(cli, fp, fake, crd_dir, tmp_path):
    gke_install_and_doctor(fake, gmp=False)
    r = cli(*install_args(crd_dir, tmp_path / "out", "-e", "gke", "--monitoring"))
    assert r.exit_code == 3, r.stderr
    assert "prerequisites still failing: monitoring" in r.stderr
    assert "--enable-managed-prometheus" in r.stderr


def test_gke_monitoring_dry_run_plans_no_prometheus_operator_crds(cli, fp, fake, tmp_path):
    r = cli("prereqs", "install", "--context", CTX, "-e", "gke", "--monitoring", "--dry-run", "--json",
            "--out", str(tmp_path / "out"))
    assert r.exit_code == 0, r.stderr
    assert not fp.calls
    data = json.loads(r.stdout)
    assert [s["component"] for s in data["steps"]] == ["gateway-api", "inference-extension"]
    assert not [p for p in data["plan"] if "prometheus-operator" in p]
    assert any(GMP_CRD in n for n in data["notes"])


def test_dry_run_runs_nothing_and_prints_the_helmfile(cli, fp, fake, tmp_path):
    out = tmp_path / "out"
    r = cli("prereqs", "install", "--context", CTX, "--dry-run", "--out", str(out))
    assert r.exit_code == 0, r.stderr
    assert not fp.calls  # no process, no socket
    assert r.stdout == (out / "helmfile.yaml").read_text()
    assert "name: istiod" in r.stdout
    assert "kubectl apply --server-side --field-manager=llmd -f https://github.com/kubernetes-sigs/gateway-api/" \
           "releases/download/v1.5.1/standard-install.yaml" in r.stderr
    assert f"helmfile --file {out}/helmfile.yaml sync" in r.stderr


def test_dry_run_applies_the_image_mirror_to_the_release_values(cli, fp, fake, tmp_path):
    """The audit's case: --image-mirror docker.io=... used to be accepted and ignored (hub stayed docker.io)."""
    out = tmp_path / "out"
    r = cli("prereqs", "install", "--context", CTX, "--dry-run", "--out", str(out),
            "--image-mirror", "docker.io=registry.corp/docker")
    assert r.exit_code == 0, r.stderr
    assert not fp.calls
    istiod_values = next(rel for rel in yaml.safe_load(r.stdout)["releases"] if rel["name"] == "istiod")["values"][0]
    assert istiod_values["hub"] == "registry.corp/docker/istio"
    assert "docker.io/istio" not in r.stdout
    assert "image mirror: istiod hub docker.io/istio -> registry.corp/docker/istio" in r.stderr


def test_a_rule_that_matches_no_prerequisite_image_is_reported(cli, fp, fake, tmp_path, monkeypatch):
    monkeypatch.setenv("LLMD_IMAGE_MIRROR", "ghcr.io/llm-d=registry.corp/llm-d")  # the stack's rule, from the env
    r = cli("prereqs", "install", "--context", CTX, "--dry-run", "--out", str(tmp_path / "out"))
    assert r.exit_code == 0, r.stderr
    assert "image mirror: no rule matches istiod hub docker.io/istio (pulled from there)" in r.stderr


def test_image_mirror_on_kgateway_is_refused_before_any_call(cli, fp, fake, tmp_path):
    out = tmp_path / "out"
    r = cli("prereqs", "install", "--context", CTX, "-e", "kgateway", "--out", str(out),
            "--image-mirror", "ghcr.io=registry.corp/ghcr")
    assert r.exit_code == 2, r.stderr
    assert "image_mirror cannot be applied to the kgateway" in r.stderr
    assert "--chart agentgateway=<dir>" in r.stderr
    assert not fp.calls and not out.exists()


def test_chart_sources_are_settings_too_and_flags_win_name_by_name(cli, fp, fake, tmp_path, monkeypatch):
    monkeypatch.setenv("LLMD_PREREQ_CHARTS", "istiod=oci://env.corp/istio/istiod,istio-base=oci://env.corp/istio/base")
    config = tmp_path / "llmd.yaml"
    config.write_text("prereq_repos: [istio=https://config.corp/istio]\n")
    r = cli("prereqs", "install", "--context", CTX, "--dry-run", "--out", str(tmp_path / "out"), "--config",
            str(config), "--chart", "istiod=oci://flag.corp/istio/istiod")
    assert r.exit_code == 0, r.stderr
    charts = {rel["name"]: rel["chart"] for rel in yaml.safe_load(r.stdout)["releases"]}
    assert charts == {"istio-base": "oci://env.corp/istio/base", "istiod": "oci://flag.corp/istio/istiod"}
    r = cli("prereqs", "install", "--context", CTX, "--dry-run", "--out", str(tmp_path / "out2"), "--config",
            str(config), "--chart", "istio-base=istio/base", "--chart", "istiod=istio/istiod")
    assert yaml.safe_load(r.stdout)["repositories"] == [{"name": "istio", "url": "https://config.corp/istio"}]


def test_a_chart_source_setting_for_another_component_is_not_an_error(cli, fp, fake, tmp_path, monkeypatch):
    """One config for every environment: its LWS and agentgateway mirrors do not break a plain Istio install."""
    monkeypatch.setenv("LLMD_PREREQ_CHARTS", "lws=oci://m.corp/lws/lws,agentgateway=oci://m.corp/agw/agentgateway,"
                                             "istiod=oci://m.corp/istio/istiod")
    r = cli("prereqs", "install", "--context", CTX, "--dry-run", "--out", str(tmp_path / "out"))
    assert r.exit_code == 0, r.stderr
    charts = {rel["name"]: rel["chart"] for rel in yaml.safe_load(r.stdout)["releases"]}
    assert charts == {"istio-base": "istio/base", "istiod": "oci://m.corp/istio/istiod"}
    r = cli("prereqs", "install", "--context", CTX, "--dry-run", "--out", str(tmp_path / "out2"), "--lws")
    assert "oci://m.corp/lws/lws" in r.stdout


def test_a_bad_chart_source_setting_names_where_it_came_from(cli, fp, fake, tmp_path, monkeypatch):
    monkeypatch.setenv("LLMD_PREREQ_CHARTS", "nginx=oci://x/nginx")
    r = cli("prereqs", "install", "--context", CTX, "--dry-run", "--out", str(tmp_path / "out"))
    assert r.exit_code == 2
    assert "prereq_charts (from env LLMD_PREREQ_CHARTS) 'nginx=oci://x/nginx': no release named 'nginx'" in r.stderr
    assert "names: istio-base, istiod, agentgateway-crds, agentgateway, lws" in r.stderr
    assert not fp.calls


@pytest.mark.parametrize(("args", "message"), [
    (("--crd-dir", "/nonexistent/crds"), "--crd-dir /nonexistent/crds: not a directory"),
    (("--chart", "istiod"), "--chart 'istiod': expected NAME=VALUE"),
    (("--chart", "nginx=oci://x/nginx"), "--chart 'nginx=oci://x/nginx': no release named 'nginx' in this install"),
    (("--repo", "bitnami=https://x"), "no repository named 'bitnami'"),
    (("--chart", "istiod=./no-such-chart"), "--chart istiod=./no-such-chart: "),
    (("--chart", f"istiod={Path(__file__).parent / 'e2e' / 'charts' / 'istio-base'}"), "that chart is 'base', not "
                                                                                      "'istiod'"),
    (("-e", "traefik"), "environment: 'traefik' is not one of istio, agentgateway, kgateway, gke"),
])
def test_bad_input_is_exit_2_before_any_call(cli, fp, fake, tmp_path, args, message):
    r = cli("prereqs", "install", "--context", CTX, "--out", str(tmp_path / "out"), *args)
    assert r.exit_code == 2, r.stderr
    assert message in r.stderr
    assert not fp.calls


def test_a_crd_defined_twice_in_the_crd_dirs_is_bad_input(cli, fp, fake, crd_dir, tmp_path):
    (crd_dir / "experimental").mkdir()
    (crd_dir / "experimental" / "gw.yaml").write_text((crd_dir / "standard-install.yaml").read_text())
    r = cli(*install_args(crd_dir, tmp_path / "out"))
    assert r.exit_code == 2
    assert "CRD gatewayclasses.gateway.networking.k8s.io is defined twice" in r.stderr
    assert "point --crd-dir at one channel/release only" in r.stderr
    assert not fp.calls


# ---- status -------------------------------------------------------------------------------------------------

def test_status_json_lists_each_prerequisite_with_version_and_owner(cli, fp, fake):
    fake.context()
    fake.reachable()
    ours = {**OURS, "llmd.ai/prereq": "gateway-api"}
    fake.reg(fake.k("get", "customresourcedefinitions", *MARKERS, *[
        "servicemonitors.monitoring.coreos.com", "podmonitors.monitoring.coreos.com"], "--ignore-not-found",
        "--output", "json", namespaced=False), lst(*gateway_api_docs(labels=ours)[:3], inference_docs()[0]))
    fake.istiod(record={"namespace-created": "true"})
    fake.reg(fake.cp_argv("lws-system", "lws-controller-manager"), stderr="NotFound", rc=1)
    fake.record(None, "lws-system", "lws")
    r = cli("prereqs", "status", "--context", CTX, "--json")
    assert r.exit_code == 0, r.stderr
    data = json.loads(r.stdout)
    got = {p["name"]: (p["installed"], p["version"], p["installed_by_llmd"], p["needed"], p["ok"])
           for p in data["prerequisites"]}
    assert got == {"gateway-api": (True, "v1.5.1", True, True, True),
                   "inference-extension": (True, "v1.4.0", False, True, True),
                   "prometheus-operator": (False, None, False, False, False),
                   "istio": (True, "1.29.1", True, True, True),
                   "lws": (False, None, False, False, False)}
    assert data["missing"] == [] and data["status"] == "ok"


def test_status_exit_3_names_what_is_missing_and_the_command(cli, fp, fake):
    fake.context()
    fake.reachable()
    fake.reg(fake.k("get", "customresourcedefinitions", *MARKERS, "servicemonitors.monitoring.coreos.com",
                    "podmonitors.monitoring.coreos.com", "--ignore-not-found", "--output", "json", namespaced=False),
             "")
    fake.istiod(present=False)
    fake.reg(fake.cp_argv("lws-system", "lws-controller-manager"), stderr="NotFound", rc=1)
    fake.record(None, "lws-system", "lws")
    r = cli("prereqs", "status", "--context", CTX, "--monitoring")
    assert r.exit_code == 3
    assert "missing: gateway-api, inference-extension, prometheus-operator, istio" in r.stderr
    assert f"`llmd prereqs install --context {CTX} --monitoring` installs them" in r.stderr


def gke_status(fake, *, gmp: bool) -> None:
    fake.context()
    fake.reachable()
    fake.reg(fake.k("get", "customresourcedefinitions", *MARKERS, "servicemonitors.monitoring.coreos.com",
                    "podmonitors.monitoring.coreos.com", "--ignore-not-found", "--output", "json", namespaced=False),
             lst(*gateway_api_docs()[:3], inference_docs()[0]))
    fake.existing([GMP_CRD], *([{"kind": "CustomResourceDefinition", "metadata": {"name": GMP_CRD}}] if gmp else []))
    fake.reg(fake.cp_argv("lws-system", "lws-controller-manager"), stderr="NotFound", rc=1)
    fake.record(None, "lws-system", "lws")


def test_status_on_gke_with_monitoring_needs_managed_prometheus_not_the_operator(cli, fp, fake):
    gke_status(fake, gmp=False)
    r = cli("prereqs", "status", "--context", CTX, "-e", "gke", "--monitoring", "--json")
    assert r.exit_code == 3, r.stderr
    data = json.loads(r.stdout)
    need = {p["name"]: (p["needed"], p["ok"]) for p in data["prerequisites"]}
    assert need["prometheus-operator"] == (False, False)
    assert need["gke-managed-prometheus"] == (True, False)
    assert data["missing"] == ["gke-managed-prometheus"]
    gke_status(fake, gmp=False)
    r = cli("prereqs", "status", "--context", CTX, "-e", "gke", "--monitoring")
    assert r.exit_code == 3
    assert "gke-managed-prometheus: enable GKE Managed Prometheus (`gcloud container clusters update" in r.stderr
    assert "llmd prereqs install" not in r.stderr  # it cannot install what GKE provides


def test_status_on_gke_with_monitoring_and_managed_prometheus_is_ok(cli, fp, fake):
    gke_status(fake, gmp=True)
    r = cli("prereqs", "status", "--context", CTX, "-e", "gke", "--monitoring", "--json")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["missing"] == []


# ---- uninstall ----------------------------------------------------------------------------------------------

def installed_by_llmd(fake, *, objects: list[dict], gateways: list[dict] | None = None) -> list[dict]:
    crds = [*gateway_api_docs(labels={**OURS, "llmd.ai/prereq": "gateway-api"}),
            *inference_docs(labels={**OURS, "llmd.ai/prereq": "inference-extension"})]
    fake.context()
    fake.reachable()
    sel = "app.kubernetes.io/managed-by=llmd,llmd.ai/prereq"
    fake.reg(fake.k("get", "customresourcedefinitions", "--selector", sel, "--output", "json", namespaced=False),
             lst(*crds))
    rec = {"kind": "ConfigMap", "metadata": {"name": "llmd-prereqs", "namespace": "istio-system",
                                             "labels": {**OURS, "llmd.ai/prereq": "istio"}},
           "data": {"releases": "istio-base,istiod", "namespace-created": "true", "version": "1.29.1"}}
    fake.reg(fake.k("get", "configmaps", "--all-namespaces", "--selector", sel, "--output", "json", namespaced=False),
             lst(rec))
    kinds = ",".join(f"{d['spec']['names']['plural']}.{d['spec']['group']}" for d in crds)
    fake.reg(fake.k("get", kinds, "--all-namespaces", "--output", "json", namespaced=False), lst(*objects))
    fake.reg(fake.k("get", "gateways.gateway.networking.k8s.io", "--all-namespaces", "--output", "json",
                    namespaced=False), lst(*(gateways or [])))
    return crds


def stack_objects() -> list[dict]:
    return [{"kind": "GatewayClass", "metadata": {"name": "istio"}},
            {"kind": "Gateway", "metadata": {"name": "infra-x-inference-gateway", "namespace": "team-a"},
             "spec": {"gatewayClassName": "istio"}},
            {"kind": "InferencePool", "metadata": {"name": "gaie-x", "namespace": "team-a"}}]


def test_uninstall_refuses_while_a_stack_uses_the_prerequisites_and_names_it(cli, fp, fake):
    objs = stack_objects()
    installed_by_llmd(fake, objects=objs, gateways=[objs[1]])
    r = cli("prereqs", "uninstall", "--context", CTX, "--yes")
    assert r.exit_code == 10, r.stderr
    assert ("refusing to uninstall: 2 object(s) still use the prerequisites llmd installed: Gateway "
            "team-a/infra-x-inference-gateway, InferencePool team-a/gaie-x; nothing was removed") in r.stderr
    assert "`llmd cleanup -n <namespace>` for team-a" in r.stderr
    assert not [c for c in tool_calls(fp) if "delete" in c or c[0] == "helm"]


def test_uninstall_removes_only_what_llmd_recorded_in_reverse_order(cli, fp, fake):
    crds = installed_by_llmd(fake, objects=[{"kind": "GatewayClass", "metadata": {"name": "istio"}}])
    for release in ("istiod", "istio-base"):
        fake.reg(["helm", "uninstall", release, "--kube-context", CTX, "--namespace", "istio-system"],
                 f'release "{release}" uninstalled\n')
    fake.reg(fake.k("delete", "namespace", "istio-system", "--ignore-not-found", "--wait=false", namespaced=False))
    fake.reg(fake.k("delete", "customresourcedefinitions", *names(crds), "--ignore-not-found", "--wait=true",
                    "--timeout=120s", namespaced=False))
    r = cli("prereqs", "uninstall", "--context", CTX, "--yes", "--json")
    assert r.exit_code == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["status"] == "removed"
    assert [(x["what"], x["name"]) for x in data["rows"]][:3] == [
        ("helm release", "istio-system/istiod"), ("helm release", "istio-system/istio-base"),
        ("namespace", "istio-system")]
    assert data["deleted_objects"] == ["GatewayClass istio"]  # named even though it does not block
    helm = [c for c in tool_calls(fp) if c[0] == "helm"]
    assert [c[2] for c in helm] == ["istiod", "istio-base"]


def test_uninstall_force_deletes_in_use_objects_and_names_them(cli, fp, fake):
    objs = stack_objects()
    crds = installed_by_llmd(fake, objects=objs, gateways=[objs[1]])
    for release in ("istiod", "istio-base"):
        fake.reg(["helm", "uninstall", release, "--kube-context", CTX, "--namespace", "istio-system"])
    fake.reg(fake.k("delete", "namespace", "istio-system", "--ignore-not-found", "--wait=false", namespaced=False))
    fake.reg(fake.k("delete", "customresourcedefinitions", *names(crds), "--ignore-not-found", "--wait=true",
                    "--timeout=120s", namespaced=False))
    r = cli("prereqs", "uninstall", "--context", CTX, "--yes", "--force")
    assert r.exit_code == 0, r.stderr
    assert ("deleted with their CRDs: GatewayClass istio, Gateway team-a/infra-x-inference-gateway, "
            "InferencePool team-a/gaie-x") in r.stderr


def test_uninstall_incomplete_is_exit_9(cli, fp, fake):
    crds = installed_by_llmd(fake, objects=[])
    fake.reg(["helm", "uninstall", "istiod", "--kube-context", CTX, "--namespace", "istio-system"],
             stderr="Error: uninstall: timed out waiting for the condition", rc=1)
    fake.reg(["helm", "uninstall", "istio-base", "--kube-context", CTX, "--namespace", "istio-system"])
    fake.reg(fake.k("delete", "namespace", "istio-system", "--ignore-not-found", "--wait=false", namespaced=False))
    fake.reg(fake.k("delete", "customresourcedefinitions", *names(crds), "--ignore-not-found", "--wait=true",
                    "--timeout=120s", namespaced=False))
    r = cli("prereqs", "uninstall", "--context", CTX, "--yes")
    assert r.exit_code == 9
    assert "uninstall incomplete: helm release istio-system/istiod remain" in r.stderr


def test_uninstall_with_nothing_recorded_is_a_no_op(cli, fp, fake):
    fake.context()
    fake.reachable()
    sel = "app.kubernetes.io/managed-by=llmd,llmd.ai/prereq"
    fake.reg(fake.k("get", "customresourcedefinitions", "--selector", sel, "--output", "json", namespaced=False),
             lst())
    fake.reg(fake.k("get", "configmaps", "--all-namespaces", "--selector", sel, "--output", "json", namespaced=False),
             lst())
    r = cli("prereqs", "uninstall", "--context", CTX, "--yes")
    assert r.exit_code == 0
    assert "nothing to uninstall: llmd installed no prerequisites on this cluster" in r.stderr


def test_uninstall_without_a_terminal_needs_yes(cli, fp, fake):
    r = cli("prereqs", "uninstall", "--context", CTX)
    assert r.exit_code == 10
    assert "needs confirmation but stdin is not a terminal" in r.stderr
    assert not fp.calls


def test_deploy_on_a_bare_cluster_names_prereqs_install_first(cli, fp, fake):
    fake.tools()
    fake.context()
    fake.reachable()
    fake.reg(fake.k("get", "customresourcedefinitions", *CRDS, "--ignore-not-found", "--output", "json",
                    namespaced=False), "")  # none
    r = cli("deploy", "--context", CTX, *SIM)
    assert r.exit_code == 3, r.stderr
    assert "missing cluster prerequisite(s): gateways.gateway.networking.k8s.io missing" in r.stderr
    hint = r.stderr[r.stderr.index("hint: install them, then re-run:"):]
    assert hint.splitlines()[1] == f"  llmd prereqs install --context {CTX}   (or by hand:)"
    assert 'kubectl apply -k "https://github.com/kubernetes-sigs/gateway-api/config/crd/?ref=v1.5.1"' in hint


def test_ctrl_c_while_waiting_says_what_is_installed_and_how_to_finish(cli, fp, fake, crd_dir, tmp_path, clock,
                                                                      monkeypatch):
    out = tmp_path / "out"
    bare_cluster_crds(fake)
    fake.ns_get("istio-system", exists=True)
    fake.prereqs_sync(out / "helmfile.yaml")
    fake.ssa()
    fake.istiod(istiod(available=0), record={"namespace-created": "false"})

    def interrupted_sleep(seconds):
        raise KeyboardInterrupt

    monkeypatch.setattr(clock, "sleep", interrupted_sleep)
    r = cli(*install_args(crd_dir, out))
    assert r.exit_code == 130, r.stderr
    assert "interrupted; installed so far: gateway-api, inference-extension, istio" in r.stderr
    assert "re-run the same `llmd prereqs install` to finish" in r.stderr


def test_uninstall_refuses_while_leaderworkersets_use_the_lws_llmd_installed(cli, fp, fake):
    fake.context()
    fake.reachable()
    sel = "app.kubernetes.io/managed-by=llmd,llmd.ai/prereq"
    fake.reg(fake.k("get", "customresourcedefinitions", "--selector", sel, "--output", "json", namespaced=False),
             lst())
    rec = {"kind": "ConfigMap", "metadata": {"name": "llmd-prereqs", "namespace": "lws-system",
                                             "labels": {**OURS, "llmd.ai/prereq": "lws"}},
           "data": {"releases": "lws", "namespace-created": "true", "version": "0.7.0"}}
    fake.reg(fake.k("get", "configmaps", "--all-namespaces", "--selector", sel, "--output", "json", namespaced=False),
             lst(rec))
    fake.reg(fake.k("get", "leaderworkersets.leaderworkerset.x-k8s.io", "--all-namespaces", "--output", "json",
                    namespaced=False),
             lst({"kind": "LeaderWorkerSet", "metadata": {"name": "ms-wide", "namespace": "team-b"}}))
    r = cli("prereqs", "uninstall", "--context", CTX, "--yes")
    assert r.exit_code == 10, r.stderr
    assert "LeaderWorkerSet team-b/ms-wide" in r.stderr and "(LeaderWorkerSets stop their pods)" in r.stderr
    assert not [c for c in tool_calls(fp) if c[0] == "helm"]
