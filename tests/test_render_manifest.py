"""`llmd render --out DIR` over an earlier render: its own stale files go (from the manifest it wrote), nothing
else does."""

from __future__ import annotations

import json

from llmd.render.bundle import MANIFEST, PVC


def test_a_second_render_removes_only_its_own_stale_files(cli, tmp_path):
    out = tmp_path / "r"
    assert cli("render", "--out", str(out)).exit_code == 0
    assert (out / PVC).is_file()
    (out / "notes.txt").write_text("mine")
    (out / "manifests" / "extra.yaml").write_text("kind: ConfigMap\n")  # the user's, in our folder
    r = cli("render", "--out", str(out), "--model-cache", "emptydir")
    assert r.exit_code == 0, r.stderr
    assert not (out / PVC).exists() and not (out / "manifests" / "model-download-job.yaml").exists()
    assert (out / "notes.txt").read_text() == "mine" and (out / "manifests" / "extra.yaml").is_file()
    listed = json.loads((out / MANIFEST).read_text())["llmd_rendered"]
    assert PVC not in listed and "helmfile.yaml" in listed
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == sorted(
        [*listed, MANIFEST, "notes.txt", "manifests/extra.yaml"])


def test_a_file_listed_by_the_last_render_only_goes_with_its_folder(cli, tmp_path):
    out = tmp_path / "r"
    assert cli("render", "--out", str(out)).exit_code == 0
    (out / "epp").mkdir()
    (out / "epp" / "config.yaml").write_text("x")  # as if an earlier render had written it
    doc = json.loads((out / MANIFEST).read_text())
    doc["llmd_rendered"].append("epp/config.yaml")
    (out / MANIFEST).write_text(json.dumps(doc))
    assert cli("render", "--out", str(out)).exit_code == 0
    assert not (out / "epp").exists()


def test_a_tampered_manifest_never_reaches_outside_the_directory(cli, tmp_path):
    out = tmp_path / "r"
    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    assert cli("render", "--out", str(out)).exit_code == 0
    (out / MANIFEST).write_text(json.dumps({"llmd_rendered": ["../victim.txt", str(victim), MANIFEST]}))
    assert cli("render", "--out", str(out)).exit_code == 0
    assert victim.read_text() == "keep"
