"""`llmd render` end to end through the real CLI boundary."""

from __future__ import annotations

import json
from pathlib import Path

from llmd.render import yamlsafe


def test_render_to_default_dir(cli, tmp_path):
    res = cli("render", "-n", "team-a", "--release-postfix", "demo", "--accelerator", "sim")
    assert res.exit_code == 0, res.stderr
    out = tmp_path / "rendered"  # cwd is tmp_path (isolation fixture)
    helmfile = yamlsafe.load((out / "helmfile.yaml").read_text())
    assert [r["name"] for r in helmfile["releases"]] == ["infra-demo", "gaie-demo", "ms-demo"]
    assert "rendered/values/ms.yaml" in res.stderr
    assert "rendered 5 files" in res.stderr
    assert res.stdout == ""


def test_render_out_dir_and_json(cli, tmp_path):
    target = tmp_path / "x" / "bundle"
    res = cli("render", "--out", str(target), "--json", "--model-cache", "pvc")
    assert res.exit_code == 0, res.stderr
    written = json.loads(res.stdout)
    assert [Path(p).relative_to(target).as_posix() for p in written] == [
        "helmfile.yaml", "values/infra.yaml", "values/gaie.yaml", "values/ms.yaml", "manifests/httproute.yaml",
        "manifests/model-cache-pvc.yaml", "manifests/model-download-job.yaml"]
    assert all(Path(p).is_file() for p in written)


def test_render_to_stdout(cli, tmp_path):
    res = cli("render", "--out", "-", "-e", "gke", "--scheduler", "random")
    assert res.exit_code == 0, res.stderr
    assert res.stdout.startswith("---\n# file: helmfile.yaml\n")
    assert "# file: manifests/httproute.yaml" in res.stdout
    docs = yamlsafe.load_all(res.stdout)
    assert docs[1]["gateway"]["provider"] == "gke-l7-regional-external-managed"
    ext = docs[2]["inferenceExtension"]
    assert "random-picker" in ext["pluginsCustomConfig"][ext["pluginsConfigFile"]]
    assert not (tmp_path / "rendered").exists()


def test_bad_settings_exit_2_and_write_nothing(cli, tmp_path):
    res = cli("render", "--out", str(tmp_path / "o"), "--release-postfix", "9bad")
    assert res.exit_code == 2
    assert "release_postfix" in res.stderr and "DNS-1035" in res.stderr
    assert not (tmp_path / "o").exists()
    res = cli("render", "--out", str(tmp_path / "o"), "--set", "values.gaie.inferenceExtension.imag.tag=x")
    assert res.exit_code == 2
    assert "inferenceExtension.imag" in res.stderr
    assert not (tmp_path / "o").exists()


def test_render_never_prints_the_token(cli, tmp_path, monkeypatch):
    canary = "hf_CANARYrender0123456789abcdef"
    monkeypatch.setenv("HF_TOKEN", canary)
    res = cli("render", "--out", "-")
    assert res.exit_code == 0, res.stderr
    assert canary not in res.stdout + res.stderr
    assert "secretKeyRef" in res.stdout


def test_render_stdout_json(cli):
    res = cli("render", "--out", "-", "--json", "--model-cache", "emptydir")
    assert res.exit_code == 0, res.stderr
    files = json.loads(res.stdout)
    assert [f["path"] for f in files] == ["helmfile.yaml", "values/infra.yaml", "values/gaie.yaml", "values/ms.yaml",
                                          "manifests/httproute.yaml"]
    assert yamlsafe.load(files[3]["content"])["decode"]["replicas"] == 4


def test_unwritable_out_is_a_usage_error(cli, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a dir")
    res = cli("render", "--out", str(blocker))
    assert res.exit_code == 2
    assert "cannot write the rendered files" in res.stderr and str(blocker) in res.stderr
    assert blocker.read_text() == "not a dir"
    res = cli("render", "--out", " ")
    assert res.exit_code == 2 and "--out is empty" in res.stderr


def test_short_out_alias_and_help(cli, tmp_path):
    res = cli("render", "--out", str(tmp_path / "short"), "--accelerator", "cpu")
    assert res.exit_code == 0, res.stderr
    assert (tmp_path / "short" / "values" / "ms.yaml").is_file()
    res = cli("render", "--help")
    assert res.exit_code == 0
    text = " ".join(res.stdout.split())  # help wraps at 80 columns
    assert "YAML stream on stdout" in text and "JSON list of the files" in text


def test_by_hand_hint_creates_what_the_charts_read_before_helmfile_sync(cli, tmp_path):
    """The ms chart reads the token Secret and (PVC cache) the downloaded model: following the printed commands
    in order must give the pods both, as `llmd deploy` does; the token never appears in an argv."""
    res = cli("render", "--out", "b", "-n", "team-a")
    assert res.exit_code == 0, res.stderr
    steps = [line.strip() for line in res.stderr.split("by hand in this order:", 1)[1].splitlines() if line.strip()]
    assert steps == [
        "kubectl create namespace team-a",
        'printf %s "$HF_TOKEN" | kubectl create secret generic llm-d-hf-token-inference-scheduling -n team-a '
        "--from-file=HF_TOKEN=/dev/stdin",
        "kubectl apply -n team-a -f b/manifests/model-cache-pvc.yaml -f b/manifests/model-download-job.yaml",
        "kubectl wait -n team-a --for=condition=complete job/model-download-inference-scheduling --timeout=4h",
        "helmfile -f b/helmfile.yaml sync",
        "kubectl apply -n team-a -f b/manifests/httproute.yaml",
    ]
    sim = cli("render", "--out", "s", "--accelerator", "sim")
    assert [s.strip().split(" ")[:2] for s in sim.stderr.split("in this order:", 1)[1].splitlines() if s.strip()] == [
        ["kubectl", "create"], ["helmfile", "-f"], ["kubectl", "apply"]]
