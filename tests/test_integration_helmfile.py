"""The rendered bundle driven by the REAL helmfile 0.166.0 / helm 3.15.3 / kubectl 1.33.9 from `make tools`.

No cluster: helmfile runs llmd's rendered helmfile.yaml against a recording fake helm (tests/fakes/fake_helm.py),
so these tests pin what helmfile really asks helm to do with our files (release order, charts, versions, scope,
the exact values files). The real helm and kubectl binaries are used only for what they do offline: helm's
JSON-schema check and Go-YAML reading of our values, kubectl's Go-YAML reading of our manifests.
Skipped when the binaries are absent (run `make tools`).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from fakes import FakeTool, install_fake
from llmd.errors import CommandFailed, ExitCode
from llmd.kube.helm import Helm, Helmfile
from llmd.kube.kubectl import Scope
from llmd.proc import Cmd, Runner
from llmd.render import bundle as B
from llmd.render import render_bundle, yamlsafe
from llmd.settings import ACCELERATORS, ENVIRONMENTS, SCHEDULERS, load_settings

pytestmark = pytest.mark.integration

NS = "team-a"
CONTEXT = "kind-llmd"
CHARTS = {  # release kind -> (chart reference in the helmfile, version): the llm-d v0.6.0 set
    "infra": ("llm-d-infra/llm-d-infra", "v1.4.0"),
    "gaie": ("oci://registry.k8s.io/gateway-api-inference-extension/charts/inferencepool", "v1.4.0"),
    "ms": ("llm-d-modelservice/llm-d-modelservice", "v0.4.9"),
}
REPOS = {
    "llm-d-infra": "https://llm-d-incubation.github.io/llm-d-infra/",
    "llm-d-modelservice": "https://llm-d-incubation.github.io/llm-d-modelservice/",
}
TIMEOUT_S = 60


@pytest.fixture
def offline_home(tmp_path, monkeypatch):
    """Keep the real binaries away from the user's helm config/cache and put helmfile's temp dirs in tmp_path."""
    for var in ("HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME"):
        monkeypatch.setenv(var, str(tmp_path / "helm-home"))
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))


@pytest.fixture
def fake_helm(tmp_path, monkeypatch, offline_home) -> FakeTool:
    tool = install_fake(tmp_path / "fakebin", "helm", tmp_path / "fake-helm")
    for key, value in tool.env.items():
        monkeypatch.setenv(key, value)
    return tool


def settings_for(**flags):
    return load_settings({"namespace": NS, "kube_context": CONTEXT, "release_postfix": "it", **flags}, environ={})


@pytest.fixture
def deployed(tmp_path, real_tools, fake_helm):
    """Settings, rendered dir and a Helmfile wired to real helmfile + fake helm, the way `llmd deploy` runs it."""
    settings = settings_for()
    rendered = render_bundle(settings).write(tmp_path / "rendered")
    runner = Runner(tools={"helmfile": str(real_tools / "helmfile"), "helm": str(fake_helm.bin)})
    scope = Scope.from_settings(settings)
    return settings, rendered, runner, Helmfile(runner, scope), Helm(runner, scope)


def opt(argv: list[str], flag: str) -> str | None:
    return argv[argv.index(flag) + 1] if flag in argv else None


def subcommand(argv: list[str]) -> list[str]:
    """helm argv without the global scope flags helmfile prepends (`--kube-context X`)."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--kube-context":
            skip = True
        else:
            out.append(a)
    return out


# ------------------------------------------------------------------------------------------ helmfile -> helm


def test_sync_runs_the_three_charts_in_dependency_order_with_our_values(deployed, fake_helm):
    settings, rendered, _, helmfile, helm = deployed
    helmfile.sync(rendered / B.HELMFILE)

    calls = fake_helm.calls()
    upgrades = [c for c in calls if "upgrade" in c]
    got = [(subcommand(c)[2], subcommand(c)[3], opt(c, "--version")) for c in upgrades]
    assert [r for r, _, _ in got] == [settings.infra_release, settings.gaie_release, settings.ms_release]
    assert got[0][1:] == CHARTS["infra"]
    assert got[2][1:] == CHARTS["ms"]
    # The OCI chart is pulled (exact version) and installed from the pulled directory.
    pulls = [c for c in calls if "pull" in c]
    assert [(subcommand(p)[1], opt(p, "--version")) for p in pulls] == [CHARTS["gaie"]]
    assert got[1][1] == f"{opt(pulls[0], '--destination')}/inferencepool" and got[1][2] == "v1.4.0"
    assert calls.index(pulls[0]) < calls.index(upgrades[1])

    for c in upgrades:
        assert "--install" in c
        assert opt(c, "--namespace") == NS
        assert opt(c, "--kube-context") == CONTEXT
    # Every call that can touch a cluster is pinned to our context (only `helm version` is local).
    for c in calls:
        if subcommand(c)[0] != "version":
            assert opt(c, "--kube-context") == CONTEXT, c
    adds = {subcommand(c)[2]: subcommand(c)[3] for c in calls if subcommand(c)[:2] == ["repo", "add"]}
    assert adds == REPOS

    # helmfile hands helm exactly the files llmd rendered: one values file per release, byte for byte.
    for kind, release in zip(("infra", "gaie", "ms"), settings.releases, strict=True):
        files = fake_helm.captured(release)
        assert [f.read_text() for f in files] == [(rendered / B.VALUES[kind]).read_text()], release

    assert {n: (r.status, r.revision) for n, r in helm.releases().items()} == {
        r: ("deployed", 1) for r in settings.releases
    }


def test_sync_again_upgrades_in_place(deployed, fake_helm):
    settings, rendered, _, helmfile, helm = deployed
    helmfile.sync(rendered / B.HELMFILE)
    helmfile.sync(rendered / B.HELMFILE)
    assert {n: r.revision for n, r in helm.releases().items()} == dict.fromkeys(settings.releases, 2)


def test_failed_release_stops_its_dependents(deployed, fake_helm, monkeypatch):
    """`needs:` in the rendered helmfile: when gaie fails, ms is never attempted and the failure is exit 5."""
    settings, rendered, _, helmfile, helm = deployed
    monkeypatch.setenv("FAKE_HELM_FAIL", f"upgrade:{settings.gaie_release}")
    with pytest.raises(CommandFailed) as err:
        helmfile.sync(rendered / B.HELMFILE)
    assert err.value.exit_code == ExitCode.DEPLOY_FAILED
    assert "fake failure injected for upgrade" in str(err.value)
    attempted = [subcommand(c)[2] for c in fake_helm.calls() if "upgrade" in c]
    assert attempted == [settings.infra_release, settings.gaie_release]
    assert set(helm.releases()) == {settings.infra_release}


def test_destroy_removes_releases_in_reverse_order(deployed, fake_helm):
    settings, rendered, runner, helmfile, helm = deployed
    helmfile.sync(rendered / B.HELMFILE)
    fake_helm.reset()
    runner.run(helmfile.cmd(rendered / B.HELMFILE, "destroy"), check=True)
    deletes = [subcommand(c) for c in fake_helm.calls() if subcommand(c)[0] in ("delete", "uninstall")]
    assert [d[1] for d in deletes] == [settings.ms_release, settings.gaie_release, settings.infra_release]
    for c in fake_helm.calls():
        if subcommand(c)[0] != "version":
            assert opt(c, "--kube-context") == CONTEXT and opt(c, "--namespace") in (NS, None), c
    assert helm.releases() == {}


def test_kubeconfig_reaches_helm_through_the_environment(tmp_path, real_tools, fake_helm):
    """helmfile has no --kubeconfig flag; llmd passes KUBECONFIG to that one child and helm must see it."""
    kubeconfig = tmp_path / "kc.yaml"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
    settings = load_settings({"namespace": NS, "kubeconfig": str(kubeconfig)}, environ={})
    rendered = render_bundle(settings).write(tmp_path / "rendered")
    probe = tmp_path / "fakebin" / "helm-env"
    probe.write_text(f'#!/bin/sh\necho "$KUBECONFIG" >> {tmp_path}/kubeconfig-seen\nexec {fake_helm.bin} "$@"\n')
    probe.chmod(0o755)
    runner = Runner(tools={"helmfile": str(real_tools / "helmfile"), "helm": str(probe)})
    Helmfile(runner, Scope.from_settings(settings)).sync(rendered / B.HELMFILE)
    seen = set((tmp_path / "kubeconfig-seen").read_text().split())
    assert seen == {str(kubeconfig)}
    assert os.environ.get("KUBECONFIG") is None  # only the child got it


# ------------------------------------------------------------------------------------------ real helm, offline


def combos():
    """Every environment and every accelerator at least once, schedulers cycled (7 bundles)."""
    return [(ENVIRONMENTS[i % len(ENVIRONMENTS)], acc, SCHEDULERS[i % len(SCHEDULERS)])
            for i, acc in enumerate(ACCELERATORS)]


def helm_template(real_tools: Path, chart: Path, values: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(real_tools / "helm"), "template", "probe", str(chart), "--values", str(values)],
                          capture_output=True, text=True, timeout=TIMEOUT_S, check=False)


def stub_chart(root: Path, name: str, version: str, upstream_dir: Path | None) -> Path:
    """A chart with the upstream defaults + schema (or none) and one template that prints .Values as JSON."""
    chart = root / name
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text(f"apiVersion: v2\nname: {name}\nversion: {version}\n")
    (chart / "templates" / "values.yaml").write_text("{{ toJson .Values }}\n")
    if upstream_dir is not None:
        for f in ("values.yaml", "values.schema.json"):
            (chart / f).write_bytes((upstream_dir / f).read_bytes())
    return chart


def template_json(out: str) -> dict:
    body = [line for line in out.splitlines() if line and not line.startswith(("---", "#"))]
    return json.loads("\n".join(body))


@pytest.mark.parametrize(("environment", "accelerator", "scheduler"), combos())
def test_real_helm_reads_our_values_as_meant_and_the_chart_schemas_accept_them(
    tmp_path, real_tools, offline_home, upstream, environment, accelerator, scheduler
):
    settings = settings_for(environment=environment, accelerator=accelerator, scheduler=scheduler)
    rendered = render_bundle(settings).write(tmp_path / "rendered")
    echo = stub_chart(tmp_path / "charts", "echo", "0.0.1", None)
    for kind, rel in B.VALUES.items():
        res = helm_template(real_tools, echo, rendered / rel)
        assert res.returncode == 0, res.stderr
        # Go YAML (what helm reads) and llmd's Go-like reader agree on every value: no yes/no/on/octal surprises.
        assert template_json(res.stdout) == yamlsafe.load((rendered / rel).read_text()), kind
    schemas = {"infra": upstream / "llm-d-infra-v1.4.0", "ms": upstream / "llm-d-modelservice-v0.4.9"}
    for kind, src in schemas.items():
        name, version = CHARTS[kind][0].split("/")[-1], CHARTS[kind][1]
        chart = stub_chart(tmp_path / "schema" / kind, name, version, src)
        res = helm_template(real_tools, chart, rendered / B.VALUES[kind])
        assert res.returncode == 0, f"{kind}: helm rejects our values:\n{res.stderr}"


def test_real_helm_schema_check_does_reject_bad_values(tmp_path, real_tools, offline_home, upstream):
    """Control for the test above: the same stub chart fails on values the real chart would refuse."""
    chart = stub_chart(tmp_path / "schema", "llm-d-infra", "v1.4.0", upstream / "llm-d-infra-v1.4.0")
    bad = tmp_path / "bad.yaml"
    bad.write_text("gateway:\n  gatewayClassName: istio\nmodelservice: {}\n")
    res = helm_template(real_tools, chart, bad)
    assert res.returncode != 0
    assert "Additional property modelservice is not allowed" in res.stderr


# ------------------------------------------------------------------------------------------ real kubectl, offline


@pytest.mark.parametrize("model_cache", ["pvc", "emptydir"])
def test_real_kubectl_reads_our_manifests_as_meant(tmp_path, real_tools, model_cache):
    """kubectl's own loader (`kubectl kustomize`, no cluster) parses every manifest to the objects llmd meant.

    `apply --dry-run=client` needs API discovery, so it cannot run offline; kustomize uses the same Go YAML and
    resource loading, and fails on anything that is not a Kubernetes object (missing kind/name, bad YAML).
    """
    settings = settings_for(model_cache=model_cache)
    rendered = render_bundle(settings).write(tmp_path / "rendered")
    manifests = sorted(p.relative_to(rendered).as_posix() for p in (rendered / "manifests").glob("*.yaml"))
    assert B.HTTPROUTE in manifests
    assert (B.PVC in manifests) == (model_cache == "pvc")
    (rendered / "kustomization.yaml").write_text("resources:\n" + "".join(f"- {m}\n" for m in manifests))
    res = subprocess.run([str(real_tools / "kubectl"), "kustomize", str(rendered)], capture_output=True, text=True,
                         timeout=TIMEOUT_S, check=False, env={**os.environ, "KUBECONFIG": os.devnull})
    assert res.returncode == 0, res.stderr

    def key(doc):
        return doc["kind"], doc["metadata"]["name"]

    seen = sorted((d for d in yamlsafe.load_all(res.stdout) if d), key=key)
    meant = sorted((d for m in manifests for d in yamlsafe.load_all((rendered / m).read_text()) if d), key=key)
    assert seen == meant
    assert {d["metadata"].get("namespace") for d in seen} == {NS}


def test_real_tools_answer_the_version_probes_llmd_uses(real_tools):
    """llmd's preflight parses these outputs; pin them to the real binaries."""
    from llmd.kube.helm import helm_version, helmfile_version, parse_version

    runner = Runner(tools={"helm": str(real_tools / "helm"), "helmfile": str(real_tools / "helmfile")})
    assert parse_version(helm_version(runner)) == (3, 15)
    assert parse_version(helmfile_version(runner)) == (0, 166)
    res = runner.run(Cmd((str(real_tools / "kubectl"), "version", "--client", "--output", "json"), timeout=30))
    assert json.loads(res.stdout)["clientVersion"]["gitVersion"] == "v1.33.9"


def test_scheduler_apply_selector_syncs_only_the_inferencepool_release(deployed, fake_helm):
    """`llmd scheduler apply` runs `helmfile --selector component=gaie sync`: real helmfile then upgrades only the
    gaie release (its `needs` on infra are not synced) and never touches the model servers' release."""
    from llmd.ops.scheduler_apply import GAIE_SELECTOR

    settings, rendered, _, helmfile, _ = deployed
    helmfile.sync(rendered / B.HELMFILE, selector=GAIE_SELECTOR)
    upgrades = [subcommand(c) for c in fake_helm.calls() if "upgrade" in c]
    assert [c[2] for c in upgrades] == [settings.gaie_release]
