"""Golden files: the full rendered text of a few representative configurations.

A diff here is a change in what users deploy: review it, then regenerate with
`UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_render_golden.py`.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from llmd import __version__
from llmd.render import render_bundle
from llmd.settings import load_settings

GOLDEN = Path(__file__).parent / "golden" / "render"
CASES = {
    "istio-nvidia-l40s-default": {},
    "agentgateway-sim-random": {"environment": "agentgateway", "accelerator": "sim", "scheduler": "random",
                                "namespace": "llmd-sim", "release_postfix": "sim", "replicas": 2},
    "gke-tpu-v6e-optimized": {"environment": "gke", "accelerator": "tpu-v6e", "scheduler": "optimized-baseline",
                              "tensor_parallel": 8, "model_cache": "emptydir", "monitoring": True,
                              "model": "meta-llama/Llama-3.1-70B-Instruct"},
    "kgateway-amd-prefix-pvc": {"environment": "kgateway", "accelerator": "amd", "scheduler": "prefix",
                                "storage_class": "nfs-rwx", "no_hf_token": True, "model": "Qwen/Qwen3-0.6B"},
    "istio-nvidia-h100-precise-prefix": {"accelerator": "nvidia-h100", "scheduler": "precise-prefix",
                                         "hf_token_file": "token"},
}


def _normalise(text: str) -> str:
    return text.replace(f"llmd {__version__}", "llmd <version>")


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden(name, tmp_path):
    (tmp_path / "token").write_text("hf_golden")
    (tmp_path / "token").chmod(0o600)
    bundle = render_bundle(load_settings(CASES[name], environ={}))
    root = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN") == "1":
        for old in root.rglob("*.yaml") if root.exists() else []:
            old.unlink()
        for rel, text in bundle.files.items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_text(_normalise(text))
    expected = {p.relative_to(root).as_posix(): p.read_text() for p in sorted(root.rglob("*.yaml"))}
    assert sorted(expected) == sorted(bundle.files), "file set changed; regenerate with UPDATE_GOLDEN=1"
    for rel, text in bundle.files.items():
        assert _normalise(text) == expected[rel], f"{name}/{rel} changed; review, then UPDATE_GOLDEN=1"
