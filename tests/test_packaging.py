"""The built wheel ships the top-level data folders (templates/, charts-values/) inside the package, with py.typed,
and llmd finds them there when it is installed from the wheel rather than run from the checkout."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    pytest.importorskip("hatchling")  # the dev extra has it: built offline, without build isolation
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--wheel-dir", str(out), str(REPO)], check=True, timeout=300, capture_output=True)
    return next(out.glob("llmd-*.whl"))


def test_the_wheel_contains_the_templates_the_values_layers_and_py_typed(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for folder in ("templates", "charts-values"):
        shipped = {p.relative_to(REPO).as_posix() for p in (REPO / folder).rglob("*") if p.is_file()}
        assert shipped, folder
        assert {f"llmd/{p}" for p in shipped} <= names, folder
    assert "llmd/py.typed" in names and "llmd/presets/environments.yaml" in names


def test_an_installed_wheel_reads_its_own_data_folders(wheel, tmp_path):
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    code = ("from llmd.paths import data_dir\n"
            "from llmd.render import layers\n"
            "print(data_dir('templates'))\n"
            "print(layers.layer('infra', 'istio')['gateway']['provider'])\n")
    out = subprocess.run([sys.executable, "-c", code], env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"},
                         cwd=tmp_path, capture_output=True, text=True, timeout=60, check=True).stdout.splitlines()
    assert out == [str(site / "llmd" / "templates"), "istio"]
