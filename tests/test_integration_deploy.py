"""`llmd deploy` / `status` / `cleanup` end to end: the real CLI, the REAL helmfile 0.166.0, a recording fake
helm and a fake kubectl backed by a small JSON cluster (tests/fakes). Skipped when `make tools` was not run.

What only this level shows: the rendered files reach helm through the real helmfile with our context pinned,
the HF token travels on stdin only (never in any argv, output or log), the mutations happen in order, and a
second identical deploy changes nothing (the digest recorded in the state ConfigMap makes it skip helmfile).
"""
# The IDs cited here (rule N, F##) are defined in docs/behaviours.md.

from __future__ import annotations

import base64
import contextlib
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fakes import FakeTool, install_fake
from llmd.presets import facts
from llmd.render import bundle as B
from llmd.settings import load_settings

pytestmark = pytest.mark.integration

NS = "team-a"
CONTEXT = "kind-llmd"
TOKEN = "hf_FAKEtestTOKEN0123456789abcdef"


def ready_deployment(name: str, replicas: int) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": NS, "generation": 1},
            "spec": {"replicas": replicas}, "status": {"observedGeneration": 1, "replicas": replicas,
                                                         "updatedReplicas": replicas, "readyReplicas": replicas,
                                                         "availableReplicas": replicas}}


def seed_cluster(settings) -> dict:
    """A cluster with the prerequisites installed, and the objects the three charts create already ready."""
    crds = [{"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": n},
             "spec": {"versions": [{"name": "v1", "served": True, "storage": True}]},
             "status": {"conditions": [{"type": "Established", "status": "True"}]}}
            for n in ("gateways.gateway.networking.k8s.io", "httproutes.gateway.networking.k8s.io",
                      "inferencepools.inference.networking.k8s.io")]
    objects = [
        *crds,
        {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
         "metadata": {"name": facts.environment(settings.environment).gateway_class}},
        {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {
            "name": "standard", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}}},
        {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "gpu-node-1"},
         "status": {"allocatable": {"nvidia.com/gpu": "8"}}},
        ready_deployment(settings.epp_name, 1),
        ready_deployment(settings.decode_deployment, settings.replicas),
        {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
         "metadata": {"name": settings.gateway_name, "namespace": NS},
         "status": {"conditions": [{"type": "Programmed", "status": "True"}]}},
    ]
    accepted = [{"type": "Accepted", "status": "True"}]
    objects.append({"apiVersion": "inference.networking.k8s.io/v1", "kind": "InferencePool",
                    "metadata": {"name": settings.pool_name, "namespace": NS},
                    "status": {"parents": [{"parentRef": {"name": settings.gateway_name}, "conditions": accepted}]}})
    if settings.gateway_service:
        objects.append(ready_deployment(settings.gateway_service, 1))
        objects.append({"apiVersion": "v1", "kind": "Service",
                        "metadata": {"name": settings.gateway_service, "namespace": NS},
                        "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.80", "ports": [{"port": 80}]}})
    return {"contexts": {CONTEXT: "https://127.0.0.1:6443"}, "current": CONTEXT, "objects": objects}


@pytest.fixture
def stack(tmp_path, monkeypatch, real_tools):
    """Fake helm + fake kubectl + real helmfile wired into llmd through LLMD_HELM/LLMD_KUBECTL/LLMD_HELMFILE."""
    helm = install_fake(tmp_path / "fakebin", "helm", tmp_path / "fake")
    kubectl = install_fake(tmp_path / "fakebin", "kubectl", tmp_path / "fake")
    for tool in (helm, kubectl):
        for key, value in tool.env.items():
            monkeypatch.setenv(key, value)
    for var in ("HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME"):
        monkeypatch.setenv(var, str(tmp_path / "helm-home"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    monkeypatch.setenv("LLMD_HELM", str(helm.bin))
    monkeypatch.setenv("LLMD_KUBECTL", str(kubectl.bin))
    monkeypatch.setenv("LLMD_HELMFILE", str(real_tools / "helmfile"))
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    settings = load_settings({"namespace": NS, "kube_context": CONTEXT}, environ={})
    kubectl.state.write_text(json.dumps(seed_cluster(settings)))
    return settings, helm, kubectl


def applied(kubectl: FakeTool) -> list[str]:
    """What each `kubectl apply` carried, in order: a rendered file name, or the kind read from stdin."""
    stdin_docs = iter(json.loads(p.read_text()) for p in sorted(kubectl.capture.glob("stdin.*.json"),
                                                               key=lambda p: int(p.name.split(".")[1])))
    out = []
    for argv in kubectl.calls():
        if "apply" in argv:
            source = argv[argv.index("--filename") + 1]
            out.append(next(stdin_docs)["kind"] if source == "-" else "/".join(source.split("/")[-2:]))
    return out


def test_deploy_end_to_end_then_again_without_changes(cli, stack):
    settings, helm, kubectl = stack
    first = cli("deploy", "-n", NS, "--context", CONTEXT, "--json")
    assert first.exit_code == 0, first.stderr
    report = json.loads(first.stdout)
    assert report["status"] == "deployed" and report["changed"] is True
    assert report["target"] == {"namespace": NS, "context": CONTEXT, "server": "https://127.0.0.1:6443",
                                "platform": "kubernetes"}

    # helm, through the real helmfile: the three releases, in order, pinned to our context and namespace.
    upgrades = [c for c in helm.calls() if "upgrade" in c]
    assert [c[c.index("--install") + 1] for c in upgrades] == list(settings.releases)
    for c in upgrades:
        assert c[c.index("--namespace") + 1] == NS and c[c.index("--kube-context") + 1] == CONTEXT
    rendered = report["rendered_dir"]
    for kind, release in zip(("infra", "gaie", "ms"), settings.releases, strict=True):
        assert [p.read_text() for p in helm.captured(release)] == [open(f"{rendered}/{B.VALUES[kind]}").read()]

    # kubectl: every call pinned to the context; mutations in dependency order.
    for argv in kubectl.calls():
        assert argv[argv.index("--context") + 1] == CONTEXT, argv
    assert applied(kubectl) == ["Namespace", "Secret", B.PVC, B.DOWNLOAD_JOB, "ConfigMap", B.HTTPROUTE]

    # The token: on stdin in the Secret, nowhere else.
    secret = json.loads((kubectl.capture / "stdin.1.json").read_text())
    assert base64.b64decode(secret["data"]["HF_TOKEN"]).decode() == TOKEN
    assert secret["metadata"]["name"] == settings.hf_secret_name
    for text in (helm.log.read_text(), kubectl.log.read_text(), first.stdout, first.stderr):
        assert TOKEN not in text
    assert os.listdir(os.environ["TMPDIR"]) == [], "temporary files left behind (F70)"

    # Second identical deploy: the recorded digest matches and all releases are deployed -> helmfile is skipped.
    helm.reset()
    second = cli("deploy", "-n", NS, "--context", CONTEXT, "--json")
    assert second.exit_code == 0, second.stderr
    again = json.loads(second.stdout)
    assert again["changed"] is False and again["digest"] == report["digest"]
    assert {"step": "helmfile sync", "status": "unchanged", "detail": "no changes"} in again["steps"]
    assert {"step": "model download", "status": "unchanged", "detail": "already in the cache"} in again["steps"]
    assert not [c for c in helm.calls() if "upgrade" in c]


def test_failed_chart_is_exit_5_with_a_ledger_of_releases(cli, stack, monkeypatch):
    settings, helm, kubectl = stack
    monkeypatch.setenv("FAKE_HELM_FAIL", f"upgrade:{settings.ms_release}")
    res = cli("deploy", "-n", NS, "--context", CONTEXT)
    assert res.exit_code == 5, res.stderr
    assert "helmfile sync failed" in res.stderr
    assert f"{settings.infra_release}: deployed" in res.stderr
    assert f"{settings.ms_release}: not installed" in res.stderr
    # No state ConfigMap recorded: the next deploy must run helmfile again.
    assert "ConfigMap" not in applied(kubectl)
    assert TOKEN not in res.stderr + res.stdout + helm.log.read_text() + kubectl.log.read_text()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie waiting for its (re)parent to reap it is gone for our purposes
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def wait_for_hang(helm: FakeTool, proc: subprocess.Popen, timeout: float = 30.0) -> dict:
    path = Path(f"{helm.log}.hang.json")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):
            return json.loads(path.read_text())
        time.sleep(0.05)
    raise AssertionError("helm never started the release that should hang")


def test_ctrl_c_during_helmfile_leaves_no_process_and_recover_repairs(cli, stack, tmp_path):
    """F52 then F24, with real processes: SIGINT to llmd while the real helmfile waits on helm."""
    settings, helm, _ = stack
    env = {**os.environ, "FAKE_HELM_HANG": f"upgrade:{settings.gaie_release}"}
    # Its own session, like a terminal's foreground job: the signal reaches llmd only, llmd must pass it on.
    proc = subprocess.Popen([sys.executable, "-m", "llmd", "deploy", "-n", NS, "--context", CONTEXT], env=env,
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    hung: dict = {}
    try:
        hung = wait_for_hang(helm, proc)
        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=45)
        took = time.monotonic() - started
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        for pid in hung.values():
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
    assert proc.returncode == 130, err
    assert took < 30
    assert os.listdir(os.environ["TMPDIR"]) == [], "temporary values files left behind (F70)"
    assert f"{settings.gaie_release} may be pending" in err and "llmd deploy --recover" in err
    assert not alive(hung["pid"]), "fake helm survived the interrupt"
    assert not alive(hung["ppid"]), "helmfile survived the interrupt"
    assert TOKEN not in err

    # The next deploy refuses to paper over the pending release ...
    blocked = cli("deploy", "-n", NS, "--context", CONTEXT)
    assert blocked.exit_code == 5, blocked.stderr
    assert f"{settings.gaie_release} (pending-install, revision 1)" in blocked.stderr
    assert "--recover" in blocked.stderr

    # ... and --recover uninstalls it (revision 1 has nothing to roll back to), then deploys everything.
    helm.reset()
    fixed = cli("deploy", "-n", NS, "--context", CONTEXT, "--recover", "--json")
    assert fixed.exit_code == 0, fixed.stderr
    calls = helm.calls()
    uninstall = [c for c in calls if c[0] in ("uninstall", "delete")]
    assert [c[1] for c in uninstall] == [settings.gaie_release]
    assert calls.index(uninstall[0]) < min(calls.index(c) for c in calls if "upgrade" in c)
    assert {r: v["status"] for r, v in json.loads(fixed.stdout)["releases"].items()} == dict.fromkeys(
        settings.releases, "deployed")


def cluster_objects(kubectl: FakeTool) -> list[tuple[str, str]]:
    return [(o["kind"], o["metadata"]["name"]) for o in json.loads(kubectl.state.read_text())["objects"]]


def labelled_ours(kubectl: FakeTool, settings) -> list[tuple[str, str]]:
    want = {"app.kubernetes.io/managed-by": "llmd", "app.kubernetes.io/instance": settings.release_postfix}
    return [(o["kind"], o["metadata"]["name"]) for o in json.loads(kubectl.state.read_text())["objects"]
            if want.items() <= (o["metadata"].get("labels") or {}).items()]


def test_deploy_status_cleanup_lifecycle_removes_only_what_llmd_created(cli, stack):
    settings, helm, kubectl = stack
    seeded = json.loads(kubectl.state.read_text())
    seeded["objects"].append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "user-notes",
                                                                                   "namespace": NS}})
    kubectl.state.write_text(json.dumps(seeded))
    assert cli("deploy", "-n", NS, "--context", CONTEXT).exit_code == 0
    created = {kind for kind, _ in labelled_ours(kubectl, settings)}
    assert created == {"Secret", "PersistentVolumeClaim", "Job", "ConfigMap", "HTTPRoute"}
    status = cli("status", "-n", NS, "--context", CONTEXT, "--json")
    assert status.exit_code == 0, status.stdout
    assert json.loads(status.stdout)["verdict"] == "healthy"

    helm.reset()
    res = cli("cleanup", "-n", NS, "--context", CONTEXT, "--force", "--json")
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)["status"] == "complete"
    uninstalled = [c[1] for c in helm.calls() if c[0] in ("uninstall", "delete")]
    assert uninstalled == [settings.ms_release, settings.gaie_release, settings.infra_release]
    assert json.loads(helm.state.read_text()) == {}
    assert labelled_ours(kubectl, settings) == []
    left = cluster_objects(kubectl)
    assert ("ConfigMap", "user-notes") in left and ("Namespace", NS) in left  # not ours / not asked for
    status = cli("status", "-n", NS, "--context", CONTEXT, "--json")
    assert status.exit_code == 6 and json.loads(status.stdout)["verdict"] == "not deployed"

    # The namespace llmd created goes only when asked; after that there is nothing left to do.
    gone = cli("cleanup", "-n", NS, "--context", CONTEXT, "--force", "--remove-namespace", "--json")
    assert gone.exit_code == 0, gone.stderr
    assert ("Namespace", NS) not in cluster_objects(kubectl)
    again = cli("cleanup", "-n", NS, "--context", CONTEXT, "--force", "--json")
    assert again.exit_code == 0 and json.loads(again.stdout)["status"] == "nothing to do"


def test_next_commands_printed_by_deploy_reach_the_stack_just_deployed(cli, stack):
    """Deployed with a non-default postfix, gateway and model: the printed `llmd status` / `llmd cleanup` must
    find that stack (not the default postfix's), and `llmd test` must ask for the model that is served."""
    _, helm, kubectl = stack
    chosen = {"release_postfix": "demo", "environment": "agentgateway", "model": "Qwen/Qwen3-0.6B"}
    settings = load_settings({"namespace": NS, "kube_context": CONTEXT, **chosen}, environ={})
    kubectl.state.write_text(json.dumps(seed_cluster(settings)))
    res = cli("deploy", "-n", NS, "--context", CONTEXT, "--release-postfix", "demo", "-e", "agentgateway",
              "--model", "Qwen/Qwen3-0.6B")
    assert res.exit_code == 0, res.stderr
    printed = [shlex.split(line) for line in res.stderr.split("Next:", 1)[1].splitlines() if line.strip()]
    assert [argv[:2] for argv in printed] == [["llmd", "test"], ["llmd", "status"], ["llmd", "cleanup"]]
    test_argv, status_argv, cleanup_argv = printed
    assert shlex.join(test_argv).endswith("--release-postfix demo -e agentgateway --model Qwen/Qwen3-0.6B")

    status = cli(*status_argv[1:], "--json")
    assert status.exit_code == 0, status.stdout
    assert json.loads(status.stdout)["verdict"] == "healthy"
    cleanup = cli(*cleanup_argv[1:], "--force", "--json")
    assert cleanup.exit_code == 0, cleanup.stderr
    assert json.loads(cleanup.stdout)["status"] == "complete"
    assert json.loads(helm.state.read_text()) == {}


def test_missing_rbac_permission_is_exit_4_before_any_change(cli, stack):
    """F19: a user who may not create Secrets is told so in preflight; nothing is applied or installed."""
    from llmd.ops import preflight

    if not hasattr(preflight, "check_permissions"):
        pytest.skip("this llmd has no RBAC preflight (check_permissions)")
    _, helm, kubectl = stack
    cluster = json.loads(kubectl.state.read_text())
    cluster["forbidden"] = ["create secrets", "create httproutes.gateway.networking.k8s.io"]
    kubectl.state.write_text(json.dumps(cluster))
    res = cli("deploy", "-n", NS, "--context", CONTEXT)
    assert res.exit_code == 4, res.stderr
    assert "create secrets in team-a" in res.stderr
    assert "create httproutes.gateway.networking.k8s.io in team-a" in res.stderr
    assert not [c for c in kubectl.calls() if "apply" in c or "delete" in c]
    assert not [c for c in helm.calls() if "upgrade" in c]
