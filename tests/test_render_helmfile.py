"""The rendered directory works with plain helmfile: real helmfile 0.166 drives a recording fake helm."""

from __future__ import annotations

import os
import subprocess

import pytest

from fakes import install_fake
from llmd.render import render_bundle, yamlsafe
from llmd.settings import load_settings

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("environment", ["istio", "gke"])
def test_plain_helmfile_sync_of_rendered_dir(real_tools, tmp_path, environment):
    settings = load_settings({"namespace": "team-b", "release_postfix": "rb", "environment": environment,
                              "accelerator": "sim"}, environ={})
    out = render_bundle(settings).write(tmp_path / "rendered")
    helm = install_fake(tmp_path / "bin", "helm", tmp_path / "fake")
    env = {**os.environ, **helm.env, "HOME": str(tmp_path / "home")}
    res = subprocess.run([str(real_tools / "helmfile"), "--helm-binary", str(helm.bin),
                          "-f", str(out / "helmfile.yaml"), "sync"],
                         check=False, env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    upgrades = [c for c in helm.calls() if c[:2] == ["upgrade", "--install"]]
    assert [c[2] for c in upgrades] == list(settings.releases)  # needs: infra, then gaie, then ms
    for call, (key, chart, version) in zip(upgrades, [
            ("infra", "llm-d-infra/llm-d-infra", "v1.4.0"),
            ("gaie", "inferencepool", "v1.4.0"),
            ("ms", "llm-d-modelservice/llm-d-modelservice", "v0.4.9")], strict=True):
        assert call[3].endswith(chart)
        assert call[call.index("--version") + 1] == version
        assert call[call.index("--namespace") + 1] == "team-b"
        captured = helm.captured(call[2])
        assert len(captured) == 1
        assert yamlsafe.load(captured[0].read_text()) == yamlsafe.load((out / "values" / f"{key}.yaml").read_text())
    repos = [c for c in helm.calls() if c[:2] == ["repo", "add"]]
    assert {c[2]: c[3] for c in repos} == {
        "llm-d-infra": "https://llm-d-incubation.github.io/llm-d-infra/",
        "llm-d-modelservice": "https://llm-d-incubation.github.io/llm-d-modelservice/"}
