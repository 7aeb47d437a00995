"""`llmd completion bash|zsh|fish` and the choices <TAB> offers (kubeconfig read locally, no cluster call)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REAL_POPEN

KUBECONFIG = """apiVersion: v1
kind: Config
contexts:
- name: kind-llmd
  context: {cluster: c, namespace: team-a}
- name: prod-east
  context: {cluster: c}
"""


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_prints_the_hook_for_each_shell(cli, shell):
    r = cli("completion", shell)
    assert r.exit_code == 0, r.stderr
    assert "_LLMD_COMPLETE=complete_" + shell in r.stdout


def test_completion_refuses_an_unknown_shell(cli):
    assert cli("completion", "tcsh").exit_code == 2


def _complete(cli, monkeypatch, words: str) -> list[str]:
    monkeypatch.setenv("_LLMD_COMPLETE", "complete_bash")
    monkeypatch.setenv("COMP_WORDS", words)
    monkeypatch.setenv("COMP_CWORD", str(len(words.split(" ")) - 1))
    r = cli()
    assert r.exit_code == 0, r.stderr
    return r.stdout.split()


@pytest.mark.parametrize(("words", "expected"), [
    ("llmd st", ["status"]),
    ("llmd deploy --accelerator nv", ["nvidia-a100", "nvidia-h100", "nvidia-l40s"]),
    ("llmd status -e ", ["agentgateway", "gke", "istio", "kgateway"]),
    ("llmd test --workload s", ["shared-prefix", "synthetic"]),
])
def test_fixed_choices(cli, monkeypatch, words, expected):
    assert _complete(cli, monkeypatch, words) == expected


def test_scheduler_choices_are_the_profiles(cli, monkeypatch):
    from llmd.settings import SCHEDULERS

    assert _complete(cli, monkeypatch, "llmd deploy --scheduler ") == sorted(SCHEDULERS)


def test_contexts_and_namespaces_come_from_the_kubeconfig(cli, fp, monkeypatch, tmp_path):
    kc = tmp_path / "kc.yaml"
    kc.write_text(KUBECONFIG)
    monkeypatch.setenv("KUBECONFIG", str(kc))
    assert _complete(cli, monkeypatch, "llmd status --context ") == ["kind-llmd", "prod-east"]
    assert _complete(cli, monkeypatch, "llmd status -n ") == ["llm-d-inference-scheduling", "team-a"]
    other = tmp_path / "other.yaml"
    other.write_text(KUBECONFIG.replace("kind-llmd", "lab").replace("team-a", "team-b"))
    got = _complete(cli, monkeypatch, f"llmd cleanup --kubeconfig {other} --context ")
    assert got == ["lab", "prod-east"]  # --kubeconfig on the same line wins over $KUBECONFIG
    assert not fp.calls  # fp is strict: no kubectl, no cluster call


def test_an_unreadable_kubeconfig_completes_nothing_and_does_not_fail(cli, monkeypatch, tmp_path):
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    assert _complete(cli, monkeypatch, "llmd status --context ") == []


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash not installed")
def test_real_bash_sources_the_script_and_completes(tmp_path):
    llmd = Path(sys.executable).with_name("llmd")
    script = (f'source <("{llmd}" completion bash)\n'
              'COMP_WORDS=(llmd deploy --accelerator nv); COMP_CWORD=3\n'
              '_llmd_completion llmd\nprintf "%s\\n" "${COMPREPLY[@]}"\n')
    env = {**os.environ, "PATH": f"{llmd.parent}:{os.environ['PATH']}"}
    env.pop("_LLMD_COMPLETE", None)
    with REAL_POPEN(["bash", "--norc", "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                    text=True) as p:
        out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    assert out.split() == ["nvidia-a100", "nvidia-h100", "nvidia-l40s"]
