"""Air-gapped / mirrored installs: chart sources and the image registry rewrite (llmd.render.mirror)."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from llmd.errors import ConfigError
from llmd.render import mirror, render_bundle, yamlsafe
from llmd.settings import load_settings
from test_deploy_support import clock_fixture, fake_fixture, no_killpg_fixture  # noqa: F401

CHARTS = Path(__file__).parent / "e2e" / "charts"


def settings(**flags):
    return load_settings(flags, environ={})


def helmfile(**flags) -> dict:
    return yamlsafe.load(render_bundle(settings(**flags)).files["helmfile.yaml"])


def _release(doc: dict, key: str) -> dict:
    return next(r for r in doc["releases"] if r["labels"]["component"] == key)


def test_default_sources_are_the_pins():
    doc = helmfile()
    assert [r["name"] for r in doc["repositories"]] == ["llm-d-infra", "llm-d-modelservice"]
    assert _release(doc, "gaie")["chart"].startswith("oci://registry.k8s.io/")


def test_oci_repo_and_local_sources_in_the_helmfile(tmp_path):
    doc = helmfile(chart_source_infra="oci://registry.corp/charts/llm-d-infra",
                   chart_source_gaie=str(CHARTS / "inferencepool"),
                   chart_source_ms="https://charts.corp/llm-d")
    infra, gaie, ms = (_release(doc, k) for k in ("infra", "gaie", "ms"))
    assert infra["chart"] == "oci://registry.corp/charts/llm-d-infra" and infra["version"] == "v1.4.0"
    assert gaie["chart"] == str((CHARTS / "inferencepool").resolve()) and "version" not in gaie
    assert ms["chart"] == "llmd-mirror-ms/llm-d-modelservice" and ms["version"] == "v0.4.9"
    # only the repository still used: nothing points at the unreachable upstream repos
    assert doc["repositories"] == [{"name": "llmd-mirror-ms", "url": "https://charts.corp/llm-d"}]


def test_helmfile_header_names_every_source_and_a_local_chart_digest(tmp_path):
    chart = tmp_path / "llm-d-infra"
    chart.mkdir()
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: llm-d-infra\nversion: v1.4.0\n")
    a = render_bundle(settings(chart_source_infra=str(chart), image_mirror="ghcr.io=registry.corp/ghcr"))
    text = a.files["helmfile.yaml"]
    assert f"# chart infra: local chart {chart} (llm-d-infra v1.4.0, content " in text
    assert "# image mirror: ghcr.io -> registry.corp/ghcr" in text
    (chart / "values.yaml").write_text("x: 1\n")  # an edited local chart changes the bundle: the next deploy syncs
    assert render_bundle(settings(chart_source_infra=str(chart))).digest() != a.digest()


def test_packaged_tgz_chart(tmp_path):
    tgz = tmp_path / "llm-d-modelservice-v0.4.9.tgz"
    with tarfile.open(tgz, "w:gz") as tar:
        data = b"apiVersion: v2\nname: llm-d-modelservice\nversion: v0.4.9\n"
        info = tarfile.TarInfo("llm-d-modelservice/Chart.yaml")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    assert _release(helmfile(chart_source_ms=str(tgz)), "ms")["chart"] == str(tgz)


@pytest.mark.parametrize(("flags", "needle"), [
    ({"chart_source_infra": "oci://registry.corp/charts"}, "must end with the chart name"),
    ({"chart_source_infra": "oci://Registry.corp/x/llm-d-infra"}, "not an OCI chart reference"),
    ({"chart_source_ms": "ftp://x/y"}, "use oci://, https://"),
    ({"chart_source_ms": "/nonexistent/chart"}, "does not exist"),
    ({"chart_source_ms": str(CHARTS / "inferencepool")}, "is chart 'inferencepool', not 'llm-d-modelservice'"),
    ({"chart_source_gaie": str(CHARTS)}, "without Chart.yaml"),
    ({"image_mirror": "ghcr.io"}, "not a from=to rule"),
    ({"image_mirror": "https://ghcr.io=registry.corp"}, "not a registry/path prefix"),
    ({"image_mirror": "ghcr.io=a.corp,ghcr.io=b.corp"}, "given twice"),
])
def test_bad_sources_are_refused_with_the_fix(flags, needle):
    with pytest.raises(ConfigError) as err:
        settings(**flags)
    assert needle in str(err.value)


def test_image_mirror_rewrites_every_image_longest_prefix_first():
    bundle = render_bundle(settings(image_mirror="ghcr.io=mirror.corp/ghcr,ghcr.io/llm-d=registry.corp/llm-d,"
                                                 "docker.io=registry.corp/docker"))
    gaie = yamlsafe.load(bundle.files["values/gaie.yaml"])
    ms = yamlsafe.load(bundle.files["values/ms.yaml"])
    job = yamlsafe.load(bundle.files["manifests/model-download-job.yaml"])
    assert gaie["inferenceExtension"]["image"]["hub"] == "registry.corp/llm-d"
    assert gaie["inferenceExtension"]["image"]["name"] == "llm-d-inference-scheduler"
    assert ms["decode"]["containers"][0]["image"] == "registry.corp/llm-d/llm-d-cuda:v0.6.0"
    assert job["spec"]["template"]["spec"]["containers"][0]["image"] == \
        "registry.corp/docker/library/python:3.12-slim"
    assert not any("ghcr.io" in t or "docker.io" in t for k, t in bundle.files.items() if k != "helmfile.yaml")


def test_mirror_applies_to_images_given_with_set_and_matches_whole_elements():
    s = load_settings({"image_mirror": "ghcr.io/llm=other.corp"}, sets=["values.ms.decode.containers.0.image="
                                                                        "ghcr.io/llm/x:1"], environ={})
    ms = yamlsafe.load(render_bundle(s).files["values/ms.yaml"])
    assert ms["decode"]["containers"][0]["image"] == "other.corp/x:1"
    assert mirror.rewrite_image("ghcr.io/llm-d/x:1", [("ghcr.io/llm", "other.corp")]) == "ghcr.io/llm-d/x:1"


def test_render_and_dry_run_show_the_sources(cli, tmp_path):
    r = cli("render", "--out", str(tmp_path / "out"), "--accelerator", "sim", "--chart-source-ms",
            str(CHARTS / "llm-d-modelservice"), "--image-mirror", "ghcr.io=registry.corp/ghcr")
    assert r.exit_code == 0, r.stderr
    assert "chart ms: local chart" in r.stderr and "image mirror: ghcr.io -> registry.corp/ghcr" in r.stderr



def test_deploy_dry_run_shows_the_sources_and_plans_the_mirrored_helmfile(cli, fp, fake):
    from test_deploy_support import CTX

    fake.preflight(ns_exists=True)
    r = cli("deploy", "--context", CTX, "--accelerator", "sim", "--dry-run", "--chart-source-gaie",
            "oci://registry.corp/charts/inferencepool", "--image-mirror", "ghcr.io=registry.corp/ghcr")
    assert r.exit_code == 0, r.stderr
    assert "chart gaie: oci://registry.corp/charts/inferencepool v1.4.0 (OCI mirror)" in r.stderr
    assert "image mirror: ghcr.io -> registry.corp/ghcr" in r.stderr
    rendered = yamlsafe.load((fake.rendered / "helmfile.yaml").read_text())
    assert _release(rendered, "gaie")["chart"] == "oci://registry.corp/charts/inferencepool"
