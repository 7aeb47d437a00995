"""`llmd cleanup` through the CLI against a strict fake process boundary (fault rows F58-F66, F67)."""
# The IDs cited here (rule N, F##) are defined in docs/behaviours.md.

from __future__ import annotations

import io
import json

import pytest

from test_deploy_support import (  # noqa: F401  (*_fixture: fixtures used by name)
    CTX,
    NS,
    SERVER,
    Fake,
    clock_fixture,
    fake_fixture,
    lst,
    no_killpg_fixture,
    obj,
    tool_calls,
)

SEL = "app.kubernetes.io/managed-by=llmd,app.kubernetes.io/instance=inference-scheduling"
KINDS = {"httproute": "httproutes.gateway.networking.k8s.io", "job": "jobs.batch", "configmap": "configmaps",
         "secret": "secrets", "pvc": "persistentvolumeclaims"}
RELEASES = ("ms-inference-scheduling", "gaie-inference-scheduling", "infra-inference-scheduling")
PVC = "model-cache-inference-scheduling"
SECRET = "llm-d-hf-token-inference-scheduling"  # per release postfix: another stack's token is not ours



class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def inventory(fake, *, releases=RELEASES, owned: dict[str, list[str]] | None = None, ns_owned=True):
    fake.context()
    fake.reachable()
    fake.namespace(True, owned=ns_owned)
    fake.releases(dict.fromkeys(releases, "deployed"))
    owned = {"httproute": ["llm-d-inference-scheduling"], "configmap": ["llmd-inference-scheduling-state"],
             "secret": [SECRET], "pvc": [PVC], "job": []} if owned is None else owned
    for key, kind in KINDS.items():
        names = owned.get(key, [])
        fake.reg(fake.k("get", kind, "--selector", SEL, "--output", "json"),
                 lst(*[obj(kind, n) for n in names]))


def delete_argv(fake, key):
    extra = ["--cascade=background"] if key == "job" else []
    return fake.k("delete", KINDS[key], "--selector", SEL, "--ignore-not-found", "--wait=false", *extra)


def deletes(fake, *, skip=(), fail: dict[str, str] | None = None):
    for rel in RELEASES:
        if rel not in skip:
            fake.reg(fake.h("uninstall", rel), f'release "{rel}" uninstalled\n')
    for key in KINDS:
        if key in skip:
            continue
        if fail and key in fail:
            fake.reg(delete_argv(fake, key), stderr=fail[key], rc=1)
        else:
            fake.reg(delete_argv(fake, key), "deleted\n")


def pvc_argv(fake):
    return fake.k("get", "persistentvolumeclaims", PVC, "--output", "json")


def test_full_cleanup_removes_releases_and_owned_objects_only(cli, fp, fake):
    inventory(fake)
    deletes(fake)
    fake.not_found(pvc_argv(fake))
    r = cli("cleanup", "--context", CTX, "--force")
    assert r.exit_code == 0, r.stderr
    assert f"cleaned up {NS} on {CTX}" in r.stderr
    calls = tool_calls(fp)
    order = [calls.index(fake.h("uninstall", rel)) for rel in RELEASES]
    assert order == sorted(order)  # dependents first: ms, gaie, infra
    assert all(SEL in c for c in calls if "delete" in c)  # only what llmd labelled
    assert not any("namespace" in c and "delete" in c for c in calls)  # no --remove-namespace


def test_nothing_deployed_exits_0_with_nothing_to_clean(cli, fp, fake):  # F58
    fake.context()
    fake.reachable()
    fake.namespace(False)
    r = cli("cleanup", "--context", CTX, "--force")
    assert r.exit_code == 0
    assert f"nothing to clean up in {NS} on {CTX}" in r.stderr
    assert len(tool_calls(fp)) == 3 and "✗" not in r.stderr


def test_second_cleanup_is_a_no_op(cli, fp, fake):  # F59
    inventory(fake, releases=(), owned={})
    r = cli("cleanup", "--context", CTX, "--force")
    assert r.exit_code == 0
    assert "nothing to clean up" in r.stderr
    assert not any("delete" in c or "uninstall" in c for c in tool_calls(fp))


def test_partial_leftovers_are_removed_and_releases_reported_absent(cli, fp, fake):  # F60
    inventory(fake, releases=(), owned={"pvc": [PVC], "secret": [SECRET],
                                        "httproute": ["llm-d-inference-scheduling"]})
    deletes(fake, skip=(*RELEASES, "job", "configmap"))
    fake.not_found(pvc_argv(fake))
    r = cli("cleanup", "--context", CTX, "--force", "--json")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["status"] == "complete" and doc["exit_code"] == 0
    rows = {(s["what"], s["name"]): s["status"] for s in doc["steps"]}
    assert all(rows[("helm release", rel)] == "absent" for rel in RELEASES)
    assert rows[("pvc", PVC)] == rows[("secret", SECRET)] == "removed"
    assert not any("uninstall" in c for c in tool_calls(fp))


def test_unowned_namespace_is_kept_and_said_so(cli, fp, fake):  # F61
    inventory(fake, ns_owned=False)
    deletes(fake)
    fake.not_found(pvc_argv(fake))
    r = cli("cleanup", "--context", CTX, "--force", "--remove-namespace")
    assert r.exit_code == 0, r.stderr
    assert "not created by llmd" in r.stderr
    assert not any(c[-4:-2] == ["namespace", NS] and "delete" in c for c in tool_calls(fp))


def test_owned_namespace_is_removed_with_remove_namespace(cli, fp, fake):
    inventory(fake)
    deletes(fake)
    fake.not_found(pvc_argv(fake))
    fake.reg(fake.k("delete", "namespace", NS, "--ignore-not-found", "--wait=false", namespaced=False), "deleted\n")
    fake.namespace(False)  # gone on the first poll
    r = cli("cleanup", "--context", CTX, "--force", "--remove-namespace")
    assert r.exit_code == 0, r.stderr
    assert f"namespace {NS}" in r.stderr and "removed" in r.stderr


def test_ctrl_c_during_cleanup_says_what_went_and_how_to_finish(cli, fp, fake, clock, monkeypatch):
    inventory(fake)
    deletes(fake)
    fake.reg(pvc_argv(fake), json.dumps(obj("PersistentVolumeClaim", PVC)))  # still Terminating: cleanup waits

    def interrupted_sleep(seconds):
        raise KeyboardInterrupt

    monkeypatch.setattr(clock, "sleep", interrupted_sleep)
    r = cli("cleanup", "--context", CTX, "--force")
    assert r.exit_code == 130, r.stderr
    assert f"interrupted during cleanup; removed so far: helm release {RELEASES[0]}" in r.stderr
    assert f"re-run `llmd cleanup -n {NS} --context {CTX}` to remove the rest" in r.stderr


def test_remove_namespace_keeps_a_namespace_another_stack_still_lives_in(cli, fp, fake):
    """Two stacks (postfixes) in one llmd-created namespace: removing one must not delete the other's releases
    with the namespace."""
    inventory(fake, releases=[*RELEASES, "ms-other"])
    deletes(fake)
    fake.not_found(pvc_argv(fake))
    r = cli("cleanup", "--context", CTX, "--force", "--remove-namespace", "--json")
    assert r.exit_code == 0, r.stderr
    rows = {(s["what"], s["name"]): s for s in json.loads(r.stdout)["steps"]}
    assert rows[("namespace", NS)]["status"] == "kept"
    assert "other Helm releases still live in it (ms-other)" in rows[("namespace", NS)]["detail"]
    assert not [c for c in fp.calls if "delete" in c and "namespace" in c]


@pytest.mark.parametrize("ns", ["default", "kube-system", "kube-anything", "istio-system", "agentgateway-system"])
def test_protected_namespaces_are_refused_even_with_force(cli, fp, fake_tools_on_path, ns):  # F62
    r = cli("cleanup", "-n", ns, "--force")
    assert r.exit_code == 10
    assert "protected namespace" in r.stderr
    assert list(fp.calls) == []


def test_non_interactive_without_force_is_refused_with_no_calls(cli, fp, fake_tools_on_path, monkeypatch):  # F63
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    r = cli("cleanup", "--context", CTX)
    assert r.exit_code == 10
    assert "--force" in r.stderr
    assert list(fp.calls) == []


def test_interactive_question_names_context_server_and_namespace_and_no_stops(cli, fp, fake, monkeypatch):
    monkeypatch.setattr("sys.stdin", Tty("n\n"))
    inventory(fake)
    r = cli("cleanup", "--context", CTX)
    assert r.exit_code == 10
    assert f"namespace {NS} on context {CTX} ({SERVER})?" in r.stderr
    assert "helm release ms-inference-scheduling" in r.stderr and f"pvc {PVC}" in r.stderr
    assert not any("delete" in c or "uninstall" in c for c in tool_calls(fp))


def test_interactive_yes_proceeds(cli, fp, fake, monkeypatch):
    monkeypatch.setattr("sys.stdin", Tty("y\n"))
    inventory(fake)
    deletes(fake)
    fake.not_found(pvc_argv(fake))
    r = cli("cleanup", "--context", CTX)
    assert r.exit_code == 0, r.stderr


def test_namespace_stuck_terminating_exits_9_with_conditions(cli, fp, fake, clock):  # F64
    inventory(fake)
    deletes(fake)
    fake.not_found(pvc_argv(fake))
    fake.reg(fake.k("delete", "namespace", NS, "--ignore-not-found", "--wait=false", namespaced=False), "deleted\n")
    fake.namespace(terminating=40)
    r = cli("cleanup", "--context", CTX, "--force", "--remove-namespace", "--json")
    assert r.exit_code == 9, r.stderr
    row = next(s for s in json.loads(r.stdout)["steps"] if s["what"] == "namespace")
    assert row["status"] == "failed" and "still Terminating after 120s" in row["detail"]
    assert "Some resources are remaining" in row["detail"] and "finalizers are never stripped" in row["detail"]
    assert 120 <= sum(clock.sleeps) < 130


def test_pvc_held_by_a_pod_exits_9_naming_the_pod(cli, fp, fake, clock):  # F65
    inventory(fake)
    deletes(fake)
    terminating = json.dumps(obj("PersistentVolumeClaim", PVC, metadata={"deletionTimestamp": "2026-01-01T00:00:00Z"}))
    fake.reg(pvc_argv(fake), terminating, n=20)
    holder = obj("Pod", "debug-shell", spec={"volumes": [{"name": "m", "persistentVolumeClaim": {"claimName": PVC}}]})
    fake.reg(fake.k("get", "pods", "--output", "json"), lst(holder, obj("Pod", "other", spec={})))
    r = cli("cleanup", "--context", CTX, "--force")
    assert r.exit_code == 9, r.stderr
    assert "held by pods: debug-shell" in r.stderr and "other" not in r.stderr.split("held by pods:")[1][:40]


def test_one_failing_step_does_not_stop_the_others(cli, fp, fake):  # F66
    inventory(fake)
    deletes(fake, fail={"pvc": 'Error from server (Forbidden): persistentvolumeclaims is forbidden: User "dev" '
                               'cannot delete resource'})
    r = cli("cleanup", "--context", CTX, "--force", "--json")
    assert r.exit_code == 9
    doc = json.loads(r.stdout)
    rows = {s["what"]: s for s in doc["steps"]}
    assert rows["pvc"]["status"] == "failed" and "forbidden" in rows["pvc"]["detail"]
    assert rows["secret"]["status"] == "removed" and rows["configmap"]["status"] == "removed"
    assert doc["status"] == "incomplete"


def test_keep_pvc_keeps_the_model_cache(cli, fp, fake):
    inventory(fake)
    deletes(fake, skip=("pvc",))
    r = cli("cleanup", "--context", CTX, "--force", "--keep-pvc")
    assert r.exit_code == 0, r.stderr
    assert delete_argv(fake, "pvc") not in tool_calls(fp)
    assert "kept" in r.stderr and "--keep-pvc" in r.stderr


def test_dry_run_lists_what_would_go_and_runs_nothing(cli, fp, fake_tools_on_path):  # F67
    r = cli("cleanup", "--dry-run", "--remove-namespace")
    assert r.exit_code == 0, r.stderr
    assert list(fp.calls) == []
    assert "helm uninstall ms-inference-scheduling" in r.stderr and f"delete namespace {NS}" in r.stderr
    assert SEL in r.stderr
