"""`llmd version [--json]` and `llmd render --list-images`: the pinned stack, and every image it pulls."""

from __future__ import annotations

import json

import pytest
import yaml

from llmd import __version__, presets
from llmd.render import layers
from llmd.settings import ACCELERATORS


def test_version_json_names_llmd_the_llm_d_release_charts_and_images(cli):
    r = cli("version", "--json")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["llmd"] == __version__ and doc["llm_d"]["release"] == "v0.6.0"
    assert {k: v["version"] for k, v in doc["charts"].items()} == {"infra": "v1.4.0", "gaie": "v1.4.0", "ms": "v0.4.9"}
    images = [e["image"] for e in doc["images"]]
    assert "ghcr.io/llm-d/llm-d-inference-scheduler:v0.7.1" in images  # the EPP
    assert "ghcr.io/llm-d/llm-d-cuda:v0.6.0" in images  # vLLM on the default nvidia-l40s
    assert set(doc["model_server_images"]) == set(ACCELERATORS)


def test_version_text_is_on_stdout(cli):
    r = cli("version")
    assert r.exit_code == 0 and r.stdout.startswith(f"llmd {__version__}\n") and "llm-d v0.6.0" in r.stdout
    assert "llm-d-modelservice" in r.stdout and "v0.4.9" in r.stdout


def test_dash_dash_version_stays_the_bare_version(cli):
    assert cli("--version").stdout == f"llmd {__version__}\n"


@pytest.mark.parametrize("accelerator", ACCELERATORS)
def test_list_images_has_the_model_server_image_of_each_accelerator(cli, accelerator, tmp_path):
    r = cli("render", "--list-images", "--accelerator", accelerator, "--out", str(tmp_path / "never"))
    assert r.exit_code == 0, r.stderr
    images = r.stdout.split()
    assert layers.ms(accelerator)["decode"]["containers"][0]["image"] in images
    assert "ghcr.io/llm-d/llm-d-inference-scheduler:v0.7.1" in images
    assert not (tmp_path / "never").exists()  # a listing writes nothing


def test_list_images_follows_overrides_and_the_scheduler(cli):
    r = cli("render", "--list-images", "-o", "yaml", "--scheduler", "precise-prefix",
            "--set", "values.ms.decode.containers[0].image=mirror.example/vllm:1")
    doc = yaml.safe_load(r.stdout)
    by_image = {e["image"]: e["files"] for e in doc}
    assert by_image["mirror.example/vllm:1"] == ["values/ms.yaml"]
    assert "ghcr.io/llm-d/llm-d-uds-tokenizer:v0.7.1" in by_image  # the precise-prefix sidecar
    assert "ghcr.io/llm-d/llm-d-cuda:v0.6.0" not in by_image


def test_the_model_download_image_is_listed_with_a_pvc_cache_only(cli):
    pvc = cli("render", "--list-images").stdout.split()
    empty = cli("render", "--list-images", "--model-cache", "emptydir").stdout.split()
    download = presets.load("defaults")["model_download"]["image"]
    assert download in pvc and download not in empty
