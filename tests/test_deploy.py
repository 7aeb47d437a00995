"""`llmd deploy` end to end through the CLI against a strict fake process boundary (fault rows D, F11-F25)."""
# The IDs cited here (rule N, F##) are defined in docs/behaviours.md.

from __future__ import annotations

import json
import time

import pytest

from test_deploy_support import (  # noqa: F401  (*_fixture: fixtures used by name)
    CTX,
    NS,
    POSTFIX,
    SERVER,
    UNREACHABLE,
    Fake,
    clock_fixture,
    crd,
    deployment,
    fake_fixture,
    job,
    lst,
    no_killpg_fixture,
    pod,
    rendered_digest,
    route,
    stdin_capture_fixture,
    tool_calls,
)

SIM = ("--accelerator", "sim")



def _index(calls, argv):
    return calls.index(argv)


def test_first_deploy_runs_every_step_in_order_and_ends_with_next_commands(cli, fake, fp):
    fake.happy_deploy(first=True)
    r = cli("deploy", "--context", CTX, *SIM)
    assert r.exit_code == 0, r.stderr
    calls = tool_calls(fp)
    ns_apply = _index(calls, fake.k(*["apply", "--server-side", "--field-manager=llmd", "--force-conflicts",
                                      "--filename", "-"]))
    sync = _index(calls, fake.helmfile_sync())
    route_apply = _index(calls, fake.k("apply", "--server-side", "--field-manager=llmd", "--force-conflicts",
                                       "--filename", str(fake.rendered / "manifests/httproute.yaml")))
    assert ns_apply < sync < route_apply < _index(calls, fake.watch_argv())
    assert (fake.rendered / "helmfile.yaml").is_file()
    assert "Deployed infra-inference-scheduling, gaie-inference-scheduling, ms-inference-scheduling" in r.stderr
    assert f"on context {CTX} ({SERVER})" in r.stderr
    for verb in ("test", "status", "cleanup"):
        assert f"llmd {verb} -n {NS} --context {CTX}" in r.stderr


def test_json_prints_one_document_with_steps(cli, fake):
    fake.happy_deploy(first=True)
    r = cli("deploy", "--context", CTX, *SIM, "--json")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["status"] == "deployed" and doc["changed"] is True
    assert doc["target"] == {"namespace": NS, "context": CTX, "server": SERVER, "platform": "kubernetes"}
    assert [s["step"] for s in doc["steps"]] == ["preflight", "namespace", "hf token secret", "helmfile sync",
                                                  "httproute", "wait"]
    assert {c["component"]: c["ready"] for c in doc["readiness"]["components"]} == {
        "epp": 1, "gateway": 1, "decode": 4, "route": 1}
    assert doc["releases"]["ms-inference-scheduling"]["status"] == "deployed"


def test_second_identical_deploy_changes_nothing(cli, fake, fp):  # F25
    fake.happy_deploy(first=False, digest=rendered_digest(*SIM))
    r = cli("deploy", "--context", CTX, *SIM)
    assert r.exit_code == 0, r.stderr
    assert "no changes" in r.stderr and "Up to date" in r.stderr
    calls = tool_calls(fp)
    assert fake.helmfile_sync() not in calls
    # the existing namespace is neither re-created nor labelled
    assert not any(c[-1] == "-" and "apply" in c for c in calls)


@pytest.mark.parametrize("why", ["older bundle", "pool deleted"])
def test_resync_when_releases_are_deployed_but_settings_changed_or_a_chart_object_was_deleted(cli, fake, fp, why):
    """An InferencePool deleted by hand leaves every release deployed and the bundle unchanged (the route reports
    ResolvedRefs=False/BackendNotFound): the digest shortcut must not skip the sync that re-creates it."""
    fake.preflight(ns_exists=True)
    fake.releases(fake.all_deployed())
    if why == "older bundle":
        fake.state("0" * 64)
    else:
        fake.state(rendered_digest(*SIM))
        fake.chart_objects(without=(fake.s.pool_name,))
    fake.decode(None)
    fake.reg(fake.helmfile_sync(), "ok\n")
    fake.apply_stdin()
    fake.apply_file("manifests/httproute.yaml")
    fake.watch(fake.ready_items())
    fake.releases(fake.all_deployed())
    r = cli("deploy", "--context", CTX, *SIM, "--json")
    assert r.exit_code == 0, r.stderr
    assert fake.helmfile_sync() in tool_calls(fp)
    assert next(s for s in json.loads(r.stdout)["steps"] if s["step"] == "helmfile sync")["status"] == "done"
    missing = f"InferencePool {fake.s.pool_name} is missing from the cluster"
    assert (missing in r.stderr) is (why == "pool deleted"), r.stderr


def test_a_scheduler_change_waits_until_the_new_epp_has_replaced_the_old_one(cli, fake, fp, clock):  # F71
    """Right after the sync the old EPP pod is still Ready and the controller has not observed the new template:
    readyReplicas alone said "ready" while the old scheduler served. Deploy waits through every rollout phase."""
    fake.preflight(ns_exists=True)
    fake.releases(fake.all_deployed())
    fake.state(rendered_digest(*SIM))  # the default scheduler is deployed
    fake.decode(None)
    fake.reg(fake.helmfile_sync(), "Upgrading release=gaie-inference-scheduling\n")
    fake.apply_stdin()
    fake.apply_file("manifests/httproute.yaml")
    epp = fake.s.epp_name
    old, new = pod(f"{epp}-5d8f-old1", container="epp"), pod(f"{epp}-7c4b-new1", container="epp")
    starting = pod(f"{epp}-7c4b-new1", container="epp", waiting="ContainerCreating")
    rest = [i for i in fake.ready_items() if i["metadata"]["name"] != epp]
    fake.watch([deployment(epp, 1, generation=2, observed=1), old, *rest],  # the sync just bumped the template
               [deployment(epp, 1, generation=2, updated=0, old=1), old, *rest],  # Recreate: old pod terminating
               [deployment(epp, 0, generation=2), starting, *rest],
               [deployment(epp, 1, generation=2), new, *rest])
    fake.releases(fake.all_deployed())
    r = cli("deploy", "--context", CTX, *SIM, "--scheduler", "random", "--json")
    assert r.exit_code == 0, r.stderr
    assert tool_calls(fp).count(fake.watch_argv()) == 4 and len(clock.sleeps) == 3
    assert "epp 1/1 (rolling out (new spec not observed yet))" in r.stderr
    assert "epp 1/1 (rolling out (0/1 updated, 1 old pod left))" in r.stderr
    assert "epp 0/1" in r.stderr
    epp_row = next(c for c in json.loads(r.stdout)["readiness"]["components"] if c["component"] == "epp")
    assert epp_row == {"component": "epp", "name": epp, "ready": 1, "desired": 1, "rolled_out": True, "note": ""}


def _sim_selector(model: str) -> dict[str, str]:
    return {"llm-d.ai/inference-serving": "true", "llm-d.ai/guide": POSTFIX, "llm-d.ai/accelerator-variant": "sim",
            "llm-d.ai/model": model, "llm-d.ai/role": "decode"}


@pytest.mark.parametrize(("live_model", "replaced"), [("Llama-3.1-8B-Instruct", False), ("Qwen3-0.6B", True)])
def test_selector_change_replaces_the_decode_deployment_before_the_sync(cli, fake, fp, live_model, replaced):
    """Defect 5: a --model/--accelerator change alters the decode selector (immutable): replaced before the sync,
    with a message naming what changes; an unchanged selector is left to the normal upgrade."""
    fake.preflight(ns_exists=True)
    fake.releases(fake.all_deployed())
    fake.state("0" * 64)
    fake.decode(_sim_selector(live_model))
    delete = fake.k("delete", "deployments.apps", fake.s.decode_deployment, "--ignore-not-found",
                    "--cascade=foreground", "--wait=true", "--timeout=120s")
    if replaced:
        fake.reg(delete, "deleted\n")
    fake.reg(fake.helmfile_sync(), "ok\n")
    fake.apply_stdin()
    fake.apply_file("manifests/httproute.yaml")
    fake.watch(fake.ready_items())
    fake.releases(fake.all_deployed())
    r = cli("deploy", "--context", CTX, *SIM)
    assert r.exit_code == 0, r.stderr
    calls = tool_calls(fp)
    assert (delete in calls) is replaced
    if replaced:
        assert calls.index(delete) < calls.index(fake.helmfile_sync())
        assert f"decode Deployment {fake.s.decode_deployment} will be replaced" in r.stderr
        assert "llm-d.ai/model: Qwen3-0.6B -> Llama-3.1-8B-Instruct" in r.stderr
        report_steps = [s for s in r.stderr.splitlines() if "replace" in s]
        assert report_steps


BAD_INPUT = [
    (("-n", "Foo_Bar"), "DNS-1123"),  # F1
    (("-n", "a" * 64), "64 characters"),  # F2
    (("--namespace=--kubeconfig=/tmp/x",), "starts with '-'"),  # F3
    (("--release-postfix", "1abc"), "must start with a letter"),  # F5
    (("--release-postfix", "x" * 40), "too long"),  # F4
    (("--model", "{{ 7*7 }}"), "Hugging Face repo id"),  # F6
    (("--model", "../../etc/passwd"), "Hugging Face repo id"),  # F6
    (("--replicas", "-1"), "replicas"),
]


@pytest.mark.parametrize(("args", "needle"), BAD_INPUT)
def test_bad_input_exits_2_before_any_process(cli, fp, fake_tools_on_path, args, needle):  # F1-F6
    r = cli("deploy", *SIM, *args)
    assert r.exit_code == 2, r.stderr
    assert needle in r.stderr
    assert list(fp.calls) == []


@pytest.mark.parametrize("command", ["deploy", "status", "cleanup", "doctor"])
def test_bad_input_with_json_still_prints_one_failure_document(cli, fp, fake_tools_on_path, command):
    r = cli(command, *SIM, "-n", "Bad_NS", "--json")
    assert r.exit_code == 2, r.stderr
    doc = json.loads(r.stdout)
    assert doc["status"] == "failed" and doc["exit_code"] == 2 and "DNS-1123" in doc["error"]
    assert list(fp.calls) == []


@pytest.mark.parametrize("ns", ["default", "kube-system", "kube-flannel", "istio-system"])
def test_protected_namespace_is_refused_before_any_process(cli, fp, fake_tools_on_path, tmp_path, ns):
    """`llmd cleanup` refuses these namespaces, so a stack deployed there could never be removed by llmd."""
    r = cli("deploy", *SIM, "-n", ns, "--context", CTX)
    assert r.exit_code == 10, r.stderr
    assert f"refusing to deploy into protected namespace {ns!r}" in r.stderr
    assert list(fp.calls) == []
    assert not (tmp_path / "state" / "rendered" / ns).exists()


@pytest.mark.parametrize("token", [None, "", "   "])
def test_missing_or_empty_hf_token_exits_2_before_any_process(cli, fp, fake_tools_on_path, monkeypatch, token):  # F8/9
    if token is not None:
        monkeypatch.setenv("HF_TOKEN", token)
    r = cli("deploy", "--context", CTX)  # the default accelerator needs a token
    assert r.exit_code == 2
    assert "HF_TOKEN" in r.stderr or "empty" in r.stderr
    assert list(fp.calls) == []


def test_missing_tools_are_all_listed_with_exit_3(cli, fp, tmp_path, monkeypatch):  # F11
    bindir = tmp_path / "onlykubectl"
    bindir.mkdir()
    (bindir / "kubectl").write_text("#!/bin/sh\nexit 99\n")
    (bindir / "kubectl").chmod(0o755)
    monkeypatch.setenv("PATH", str(bindir))
    r = cli("deploy", "--context", CTX, *SIM)
    assert r.exit_code == 3
    assert "helm, helmfile" in r.stderr and "install helm" in r.stderr
    assert list(fp.calls) == []


def test_missing_kubeconfig_file_exits_4_naming_it(cli, fp, fake):  # F14
    fake.tools()
    r = cli("deploy", "--kubeconfig", "/nonexistent/kubeconfig", *SIM)
    assert r.exit_code == 4
    assert "/nonexistent/kubeconfig" in r.stderr
    assert all(c[0] != "kubectl" for c in tool_calls(fp))


def test_unreachable_cluster_exits_4_with_context_and_no_helm_calls(cli, fp, fake):  # F15
    fake.tools()
    fake.context()
    fake.reg(fake.k("version", "--output", "json", namespaced=False),
             json.dumps({"clientVersion": {"gitVersion": "v1.33.9"}}), stderr=UNREACHABLE, rc=1)
    r = cli("deploy", "--context", CTX, *SIM)
    assert r.exit_code == 4
    assert f"cluster unreachable: namespace {NS} on context {CTX} ({SERVER})" in r.stderr
    assert "was refused" in r.stderr
    assert not any(c[0] in ("helm", "helmfile") and "version" not in c[1] for c in tool_calls(fp))


def test_expired_credentials_exit_4_with_reauthenticate_hint(cli, fp, fake):  # F16
    fake.tools()
    fake.context()
    fake.reachable()
    fake.reg(fake.k("get", "customresourcedefinitions", "gateways.gateway.networking.k8s.io",
                    "httproutes.gateway.networking.k8s.io", "inferencepools.inference.networking.k8s.io",
                    "--ignore-not-found", "--output", "json", namespaced=False),
             stderr="error: You must be logged in to the server (Unauthorized)", rc=1)
    r = cli("deploy", "--context", CTX, *SIM)
    assert r.exit_code == 4
    assert "re-authenticate" in r.stderr


def test_current_context_is_resolved_once_and_pinned_in_every_call(cli, fp, fake):  # F17/F18
    fake.tools()
    fake.context(current=True)
    fake.reachable()
    fake.crds()
    fake.gateway_class()
    fake.namespace(False)
    fake.permissions(11)
    fake.releases({})
    fake.apply_stdin(2)
    fake.state(None)
    fake.reg(fake.helmfile_sync(), "")
    fake.apply_file("manifests/httproute.yaml")
    fake.watch(fake.ready_items())
    fake.releases(fake.all_deployed())
    r = cli("deploy", *SIM)  # no --context
    assert r.exit_code == 0, r.stderr
    calls = tool_calls(fp)
    assert sum("current-context" in c for c in calls) == 1
    for c in calls:
        if "current-context" in c or c[1:] in (["version", "--short"], ["--version"]):
            continue  # resolving the context itself, and local-only client version queries
        flag = "--kube-context" if c[0] in ("helm", "helmfile") else "--context"
        assert c[c.index(flag) + 1] == CTX, c


def test_missing_crds_exit_3_with_install_commands_and_no_helm(cli, fp, fake):  # F20
    fake.tools()
    fake.context()
    fake.reachable()
    fake.crds(crd("gateways.gateway.networking.k8s.io"), crd("httproutes.gateway.networking.k8s.io"),
              crd("inferencepools.inference.networking.k8s.io", version="v1alpha2"))
    r = cli("deploy", "--context", CTX, *SIM)
    assert r.exit_code == 3
    assert "inferencepools.inference.networking.k8s.io does not serve v1" in r.stderr
    assert "gateway-api-inference-extension/config/crd/?ref=v1.4.0" in r.stderr
    assert "gateway-api/config/crd" not in r.stderr  # the Gateway API CRDs are there
    assert not any(c[0] in ("helm", "helmfile") and "version" not in c[1] for c in tool_calls(fp))


def test_missing_gateway_control_plane_exit_3_with_provider_install(cli, fp, fake):
    fake.tools()
    fake.context()
    fake.reachable()
    fake.crds()
    fake.gateway_class(present=False)
    r = cli("deploy", "--context", CTX, *SIM)
    assert r.exit_code == 3
    assert "GatewayClass 'istio' not found" in r.stderr and "istiod" in r.stderr


def test_no_default_storage_class_exits_3(cli, fp, fake, monkeypatch):  # F22
    monkeypatch.setenv("HF_TOKEN", "hf_" + "x" * 30)
    fake.tools()
    fake.context()
    fake.reachable()
    fake.crds()
    fake.gateway_class()
    fake.storage(default=False)
    r = cli("deploy", "--context", CTX)
    assert r.exit_code == 3
    assert "no default StorageClass" in r.stderr and "--storage-class" in r.stderr


def test_terminating_namespace_is_waited_for_then_exit_5_with_conditions(cli, fp, fake, clock):  # F21
    fake.tools()
    fake.context()
    fake.reachable()
    fake.crds()
    fake.gateway_class()
    fake.namespace(terminating=30)
    r = cli("deploy", "--context", CTX, *SIM)
    assert r.exit_code == 5
    assert "still Terminating" in r.stderr and "Some resources are remaining" in r.stderr
    assert "being terminated" not in r.stderr
    assert sum(clock.sleeps) >= 120


def test_helmfile_failure_exits_5_with_redacted_tail_and_release_ledger(cli, fp, fake, monkeypatch):  # F23
    token = "hf_canaryCANARYcanary0123456789"
    monkeypatch.setenv("HF_TOKEN", token)
    fake.preflight()
    fake.releases({})
    fake.apply_stdin(2)  # namespace, secret
    fake.state(None)
    fake.reg(fake.helmfile_sync(), "Upgrading release=gaie-inference-scheduling\n",
             stderr=f"Error: UPGRADE FAILED: values don't meet the schema (token {token})\n", rc=1)
    fake.releases({"infra-inference-scheduling": "deployed", "gaie-inference-scheduling": "failed"})
    r = cli("deploy", "--context", CTX, "--accelerator", "cpu", "--model-cache", "emptydir")  # needs the token
    assert r.exit_code == 5, r.stderr
    assert "helmfile sync failed" in r.stderr
    assert "infra-inference-scheduling: deployed" in r.stderr and "ms-inference-scheduling: not installed" in r.stderr
    assert "values don't meet the schema" in r.stderr
    assert token not in r.stderr + r.stdout


def test_api_server_gone_during_sync_exits_4_with_the_resume_hint(cli, fp, fake):
    """The e2e outage scenario, at the process boundary: helm cannot reach the API server mid-sync."""
    fake.preflight()
    fake.releases({})
    fake.apply_stdin()  # namespace
    fake.state(None)
    refused = 'dial tcp 127.0.0.1:6443: connect: connection refused'
    fake.reg(fake.helmfile_sync(), 'Release "gaie-inference-scheduling" does not exist. Installing it now.\n',
             stderr=f"Error: failed to download openapi: {refused}\n", rc=1)
    fake.reg(fake.h("list", "--all", "--output", "json"), stderr=f"Error: Kubernetes cluster unreachable: {refused}",
             rc=1)
    r = cli("deploy", "--context", CTX, *SIM)
    assert r.exit_code == 4, r.stderr
    assert "the API server became unreachable during helmfile sync; releases: unknown" in r.stderr
    assert "re-run `llmd deploy` (it resumes)" in r.stderr and "--recover" in r.stderr


def test_pending_release_exits_5_with_recover_hint_and_touches_nothing(cli, fp, fake):  # F24
    fake.preflight()
    fake.releases({"infra-inference-scheduling": "deployed", "gaie-inference-scheduling": "pending-upgrade"})
    r = cli("deploy", "--context", CTX, *SIM)
    assert r.exit_code == 5
    assert "gaie-inference-scheduling (pending-upgrade" in r.stderr and "llmd deploy --recover" in r.stderr
    assert not any("apply" in c or c[:2] == ["helmfile", "--file"] for c in tool_calls(fp))


def test_recover_uninstalls_a_first_install_and_rolls_back_an_upgrade(cli, fp, fake):  # F24 --recover
    fake.preflight()
    fake.releases({"infra-inference-scheduling": "pending-install", "gaie-inference-scheduling": "pending-upgrade"})
    fake.reg(fake.h("history", "infra-inference-scheduling", "--max", "20", "--output", "json"),
             json.dumps([{"revision": 1, "status": "pending-install"}]))
    fake.reg(fake.h("uninstall", "infra-inference-scheduling"), "release uninstalled\n")
    fake.reg(fake.h("history", "gaie-inference-scheduling", "--max", "20", "--output", "json"),
             json.dumps([{"revision": 1, "status": "superseded"}, {"revision": 2, "status": "pending-upgrade"}]))
    fake.reg(fake.h("rollback", "gaie-inference-scheduling", "1"), "Rollback was a success!\n")
    fake.releases({"gaie-inference-scheduling": "deployed"})
    fake.apply_stdin(2)
    fake.state(None)
    fake.reg(fake.helmfile_sync(), "")
    fake.apply_file("manifests/httproute.yaml")
    fake.watch(fake.ready_items())
    fake.releases(fake.all_deployed())
    r = cli("deploy", "--context", CTX, *SIM, "--recover")
    assert r.exit_code == 0, r.stderr
    calls = tool_calls(fp)
    assert _index(calls, fake.h("uninstall", "infra-inference-scheduling")) < _index(calls, fake.helmfile_sync())


def _to_sync(fake):
    fake.preflight()
    fake.releases({})
    fake.apply_stdin(2)
    fake.state(None)
    fake.reg(fake.helmfile_sync(), "")
    fake.apply_file("manifests/httproute.yaml")


def test_unschedulable_pod_fails_after_the_grace_window_quoting_the_scheduler(cli, fp, fake, clock):  # F26
    _to_sync(fake)
    msg = "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."
    items = fake.ready_items(pod(f"{fake.s.decode_deployment}-abc-1", unschedulable=msg), decode_ready=3)
    fake.reg(fake.watch_argv(), lst(*items), n=40)
    r = cli("deploy", "--context", CTX, *SIM)
    assert r.exit_code == 6, r.stderr
    assert "cannot be scheduled" in r.stderr and msg in r.stderr and "--replicas" in r.stderr
    assert 120 <= sum(clock.sleeps) < 200


def test_image_pull_backoff_fails_fast_with_image_and_reason(cli, fp, fake, clock):  # F27
    _to_sync(fake)
    bad = pod(f"{fake.s.epp_name}-5d9-x", waiting="ImagePullBackOff", image="ghcr.io/llm-d/nope:v0",
              message='Back-off pulling image "ghcr.io/llm-d/nope:v0"', container="epp")
    fake.watch(fake.ready_items(bad))
    r = cli("deploy", "--context", CTX, *SIM)
    assert r.exit_code == 6
    assert "ImagePullBackOff" in r.stderr and "ghcr.io/llm-d/nope:v0" in r.stderr
    assert clock.sleeps == []


@pytest.mark.parametrize(("log", "last", "needle"), [
    ("ValueError: No available memory for the cache blocks. Try increasing `gpu_memory_utilization`", {},
     "--max-model-len"),
    ("", {"reason": "OOMKilled", "exitCode": 137}, "out of memory"),
    ("huggingface_hub.errors.GatedRepoError: 403 Client Error. Cannot access gated repo", {}, "accept the licence"),
])
def test_crashloop_log_signatures_give_the_matching_hint(cli, fp, fake, log, last, needle):  # F28/F29
    _to_sync(fake)
    name = f"{fake.s.decode_deployment}-7f-abc"
    crash = pod(name, waiting="CrashLoopBackOff", restarts=3, last=last or {"reason": "Error", "exitCode": 1})
    fake.watch(fake.ready_items(crash, decode_ready=3))
    fake.reg(fake.k("logs", name, "--tail", "60", "--container", "vllm", "--previous"), log + "\n")
    r = cli("deploy", "--context", CTX, *SIM)
    assert r.exit_code == 6, r.stderr
    assert "CrashLoopBackOff" in r.stderr and needle in r.stderr


def test_route_not_accepted_exits_5_with_condition_message(cli, fp, fake):  # F32
    _to_sync(fake)
    s = fake.s
    bad = route(s.httproute_name, resolved="False", message="InferencePool gaie-x not found")
    items = [i for i in fake.ready_items() if i["kind"] != "HTTPRoute"] + [bad]
    fake.watch(items, items)
    r = cli("deploy", "--context", CTX, *SIM)
    assert r.exit_code == 5, r.stderr
    assert "was not accepted" in r.stderr and "InferencePool gaie-x not found" in r.stderr


def test_readiness_timeout_exits_6_with_diagnostics(cli, fp, fake, clock):
    _to_sync(fake)
    stuck = pod(f"{fake.s.decode_deployment}-1", waiting="ContainerCreating")
    items = fake.ready_items(stuck, decode_ready=0)
    fake.reg(fake.watch_argv(), lst(*items), n=20)
    fake.reg(fake.k("get", "events", "--output", "json"), lst(
        {"kind": "Event", "type": "Warning", "reason": "FailedMount", "message": "MountVolume.SetUp failed",
         "involvedObject": {"name": f"{fake.s.decode_deployment}-1"}, "lastTimestamp": "2026-01-01T00:00:00Z"}))
    r = cli("deploy", "--context", CTX, *SIM, "--timeout", "32")
    assert r.exit_code == 6, r.stderr
    assert "not ready after 32s" in r.stderr and "decode 0/4" in r.stderr  # the last poll is at the deadline
    assert "ContainerCreating" in r.stderr and "FailedMount" in r.stderr


def test_ctrl_c_during_helmfile_exits_130_naming_the_pending_release(cli, fp, fake, no_killpg):  # F52
    import os
    import signal

    fake.preflight()
    fake.releases({})
    fake.apply_stdin()
    fake.state(None)

    def interrupt(process):
        os.kill(os.getpid(), signal.SIGINT)  # the user's Ctrl-C arrives while helmfile runs
        time.sleep(0.5)

    fake.reg(fake.helmfile_sync(), "Upgrading release=gaie-inference-scheduling, chart=x\n", callback=interrupt)
    r = cli("deploy", "--context", CTX, *SIM)
    assert r.exit_code == 130, r.stderr
    assert "may be pending" in r.stderr and "llmd deploy --recover" in r.stderr
    assert fake.watch_argv() not in tool_calls(fp)


def test_ctrl_c_the_moment_the_sync_line_shows_is_still_an_interrupted_sync(cli, fp, fake, monkeypatch, no_killpg):
    """The e2e Ctrl-C test sends SIGINT as soon as it reads `→ helmfile sync`: on a loaded machine that lands
    before helmfile starts. It is the same interrupted sync, with the same --recover message."""
    import os
    import signal

    from llmd.ui import Ui

    fake.preflight()
    fake.releases({})
    fake.apply_stdin()
    fake.state(None)
    fake.reg(fake.helmfile_sync(), "")
    step = Ui.step

    def step_then_ctrl_c(self, text: str) -> None:
        step(self, text)
        if text.startswith("helmfile sync"):
            os.kill(os.getpid(), signal.SIGINT)  # delivered before the next bytecode: before helmfile starts

    monkeypatch.setattr(Ui, "step", step_then_ctrl_c)
    r = cli("deploy", "--context", CTX, *SIM)
    assert r.exit_code == 130, r.stderr
    assert "interrupted during helmfile sync" in r.stderr and "llmd deploy --recover" in r.stderr
    assert fake.helmfile_sync() not in tool_calls(fp)  # helmfile never ran


def test_dry_run_starts_no_process_opens_no_socket_and_prints_the_plan(cli, fp, tmp_path, monkeypatch):  # F67
    import socket

    def no_socket(*a, **k):
        raise AssertionError("dry-run opened a socket")

    monkeypatch.setattr(socket.socket, "connect", no_socket)
    monkeypatch.setattr(socket, "create_connection", no_socket)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no tools and no kubeconfig at all
    monkeypatch.setenv("HF_TOKEN", "hf_dryrunDRYRUNdryrun0123456789")
    r = cli("deploy", "--dry-run")
    assert r.exit_code == 0, r.stderr
    assert list(fp.calls) == []
    assert "helmfile --file" in r.stderr and "sync" in r.stderr
    assert "(stdin: " in r.stderr and "hf_dryrun" not in r.stderr
    # each stdin apply says what it carries (argv alone does not)
    assert "not shown)  # apply Secret llm-d-hf-token-inference-scheduling" in r.stderr
    assert f"not shown)  # apply namespace {NS}" in r.stderr
    assert "not shown)  # RBAC check: " in r.stderr
    assert "rendered files in" in r.stderr
    assert (tmp_path / "state" / "rendered" / NS / "inference-scheduling" / "helmfile.yaml").is_file()


def test_out_dir_is_where_files_are_rendered(cli, fp, tmp_path):
    r = cli("deploy", "--dry-run", *SIM, "--out", str(tmp_path / "here"), "--json")
    assert r.exit_code == 0
    doc = json.loads(r.stdout)
    assert doc["rendered_dir"] == str(tmp_path / "here") and doc["dry_run"] is True and doc["status"] == "planned"
    assert {s["status"] for s in doc["steps"]} == {"planned", "skipped"}
    assert any(line.startswith("helmfile --file " + str(tmp_path / "here")) for line in doc["plan"])


def test_json_failure_is_still_one_document(cli, fp, fake):
    fake.preflight()
    fake.releases({"ms-inference-scheduling": "pending-install"})
    r = cli("deploy", "--context", CTX, *SIM, "--json")
    assert r.exit_code == 5
    doc = json.loads(r.stdout)
    assert doc["status"] == "failed" and doc["exit_code"] == 5 and "--recover" in doc["hint"]


def _full_pvc_deploy(fake, *, job_state: str = "complete"):
    """The default accelerator (GPU, token, model-cache PVC and download Job)."""
    fake.s = fake.s.__class__(namespace=NS, kube_context=CTX)
    fake.preflight(gpu=True, pvc=True)
    fake.releases({})
    fake.apply_stdin(2)  # namespace, secret
    fake.apply_file("manifests/model-cache-pvc.yaml")
    fake.not_found(fake.k("get", "jobs.batch", fake.s.download_job_name, "--output", "json"))
    fake.apply_file("manifests/model-download-job.yaml")
    fake.reg(fake.k("get", "jobs.batch,pods", "--output", "json"), lst(job(fake.s.download_job_name, job_state)))


def test_canary_token_only_travels_on_the_secret_apply_stdin(cli, fp, fake, monkeypatch, tmp_path, stdin_capture):
    """F68: neither the token nor its base64 in argv, output, transcripts or rendered files."""
    import base64

    canary = "hf_CANARYcanaryCANARY0123456789"
    b64 = base64.b64encode(canary.encode()).decode()
    monkeypatch.setenv("HF_TOKEN", canary)
    _full_pvc_deploy(fake)
    fake.state(None)
    fake.reg(fake.helmfile_sync(), f"helm --debug echo: {canary}\n")  # a child that leaks it gets redacted
    fake.apply_stdin()
    fake.apply_file("manifests/httproute.yaml")
    fake.watch(fake.ready_items())
    fake.releases(fake.all_deployed())
    r = cli("deploy", "--context", CTX)
    assert r.exit_code == 0, r.stderr
    for argv in tool_calls(fp):
        assert not any(canary in a or b64.rstrip("=") in a for a in argv)
    assert canary not in r.stdout + r.stderr and b64.rstrip("=") not in r.stdout + r.stderr
    files = [p for p in (tmp_path / "state").rglob("*") if p.is_file()]
    assert any(p.name == "commands.log" for p in files) and any(p.name == "ms.yaml" for p in files)
    for p in files:
        text = p.read_text(errors="replace")
        assert canary not in text and b64.rstrip("=") not in text, p
    secrets = [json.loads(b) for b in stdin_capture if b and b'"kind": "Secret"' in b]
    assert len(secrets) == 1 and secrets[0]["data"]["HF_TOKEN"] == b64
    assert secrets[0]["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "llmd"
    assert not any(canary.encode() in b or b64.encode() in b for b in stdin_capture if b'"Secret"' not in b)


def test_model_is_downloaded_once_before_the_charts(cli, fp, fake, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_" + "t" * 30)
    _full_pvc_deploy(fake)
    fake.state(None)
    fake.reg(fake.helmfile_sync(), "")
    fake.apply_stdin()
    fake.apply_file("manifests/httproute.yaml")
    fake.watch(fake.ready_items())
    fake.releases(fake.all_deployed())
    r = cli("deploy", "--context", CTX)
    assert r.exit_code == 0, r.stderr
    calls = tool_calls(fp)
    assert _index(calls, fake.k("get", "jobs.batch,pods", "--output", "json")) < _index(calls, fake.helmfile_sync())
    assert "downloading meta-llama/Llama-3.1-8B-Instruct" in r.stderr


def test_gated_model_download_fails_fast_with_the_licence_hint(cli, fp, fake, monkeypatch):  # F29
    monkeypatch.setenv("HF_TOKEN", "hf_" + "t" * 30)
    _full_pvc_deploy(fake, job_state="failed")
    fake.reg(fake.k("logs", f"job/{fake.s.download_job_name}", "--tail", "60"),
             "huggingface_hub.errors.GatedRepoError: 401 Client Error. Cannot access gated repo for url ...\n")
    r = cli("deploy", "--context", CTX)
    assert r.exit_code == 6, r.stderr
    assert "download failed (gated model)" in r.stderr
    assert "https://huggingface.co/meta-llama/Llama-3.1-8B-Instruct" in r.stderr
    assert fake.helmfile_sync() not in tool_calls(fp)


def test_gpu_shortfall_is_a_preflight_warning(cli, fp, fake, monkeypatch):  # F26 (preflight part)
    monkeypatch.setenv("HF_TOKEN", "hf_" + "t" * 30)
    fake.s = fake.s.__class__(namespace=NS, kube_context=CTX)
    fake.tools()
    fake.context()
    fake.reachable()
    fake.crds()
    fake.gateway_class()
    fake.storage()
    fake.nodes(gpus=2)
    fake.namespace(True)
    fake.permissions(12)
    fake.releases({"ms-inference-scheduling": "pending-install"})  # stop right after preflight
    r = cli("deploy", "--context", CTX)
    assert r.exit_code == 5
    assert "only 2 nvidia.com/gpu allocatable, 4 needed" in r.stderr


def test_polls_are_not_echoed_but_every_command_is_in_the_transcript(cli, fp, fake, tmp_path):
    _to_sync(fake)
    fake.watch(fake.ready_items(decode_ready=1), fake.ready_items(decode_ready=4))
    fake.releases(fake.all_deployed())
    r = cli("deploy", "--context", CTX, *SIM)
    assert r.exit_code == 0, r.stderr
    assert "get deployments.apps,pods" not in r.stderr
    assert "decode 1/4" in r.stderr and "starting model servers" in r.stderr
    log = next((tmp_path / "state" / "runs").rglob("commands.log")).read_text()
    assert log.count("get deployments.apps,pods") == 2


def test_a_failure_points_at_the_command_log(cli, fp, fake):
    fake.preflight()
    fake.releases({"ms-inference-scheduling": "pending-install"})
    r = cli("deploy", "--context", CTX, *SIM)
    assert r.exit_code == 5
    assert "log: " in r.stderr and "commands.log" in r.stderr


def test_ctrl_c_while_waiting_says_how_to_resume(cli, fp, fake, clock, monkeypatch):
    _to_sync(fake)
    fake.watch(fake.ready_items(decode_ready=1))

    def interrupted_sleep(seconds):
        raise KeyboardInterrupt

    monkeypatch.setattr(clock, "sleep", interrupted_sleep)
    r = cli("deploy", "--context", CTX, *SIM)
    assert r.exit_code == 130
    assert "interrupted while waiting for readiness" in r.stderr and "re-run `llmd deploy`" in r.stderr


def test_ctrl_c_while_the_model_downloads_says_what_remains_and_how_to_resume(cli, fp, fake, clock, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_" + "t" * 30)
    _full_pvc_deploy(fake, job_state="running")
    fake.reg(fake.k("get", "jobs.batch,pods", "--output", "json"), lst(job(fake.s.download_job_name, "running")))

    def interrupted_sleep(seconds):
        raise KeyboardInterrupt

    monkeypatch.setattr(clock, "sleep", interrupted_sleep)
    r = cli("deploy", "--context", CTX)
    assert r.exit_code == 130
    assert (f"interrupted while the model downloads; Job {fake.s.download_job_name} keeps filling PVC "
            f"{fake.s.pvc_name}") in r.stderr
    assert "re-run `llmd deploy` with the same flags to resume" in r.stderr
    assert f"`llmd cleanup -n {NS} --context {CTX}`" in r.stderr
    assert fake.helmfile_sync() not in tool_calls(fp)


def test_missing_permissions_exit_4_listing_each_and_nothing_changes(cli, fp, fake, stdin_capture):  # F19
    fake.tools()
    fake.context()
    fake.reachable()
    fake.crds()
    fake.gateway_class()
    fake.namespace(False)
    fake.permissions(11, denied=(0, 1))  # namespaces (cluster) and secrets
    r = cli("deploy", "--context", CTX, *SIM)
    assert r.exit_code == 4, r.stderr
    assert "missing permissions (RBAC): create namespaces (cluster), create secrets in " + NS in r.stderr
    assert not any("apply" in c or c[:2] == ["helm", "list"] for c in tool_calls(fp))
    reviews = json.loads(next(b for b in stdin_capture if b"SelfSubjectAccessReview" in b))["items"]
    assert [rv["spec"]["resourceAttributes"]["resource"] for rv in reviews][:3] == ["namespaces", "secrets",
                                                                                  "configmaps"]


def _job_redeploy(fake, existing: dict | None, *, immutable: bool = False):
    fake.s = fake.s.__class__(namespace=NS, kube_context=CTX)
    fake.preflight(gpu=True, pvc=True, ns_exists=True)
    fake.releases(fake.all_deployed())
    fake.apply_stdin()  # secret
    fake.apply_file("manifests/model-cache-pvc.yaml")
    get = fake.k("get", "jobs.batch", fake.s.download_job_name, "--output", "json")
    if existing is None:
        fake.not_found(get)
    else:
        fake.reg(get, json.dumps(existing))
    delete = fake.k("delete", "jobs.batch", fake.s.download_job_name, "--ignore-not-found", "--cascade=foreground",
                    "--wait=true")
    job_apply = fake.k("apply", "--server-side", "--field-manager=llmd", "--force-conflicts", "--filename",
                       str(fake.rendered / "manifests/model-download-job.yaml"))
    if immutable:
        fake.reg(job_apply, stderr='The Job "model-download-inference-scheduling" is invalid: spec.template: '
                                   "Invalid value: core.PodTemplateSpec{...}: field is immutable", rc=1)
    if immutable or (existing and existing["status"]["conditions"][0]["type"] == "Failed"):
        fake.reg(delete, "deleted\n")
    fake.reg(job_apply, "applied\n")
    fake.reg(fake.k("get", "jobs.batch,pods", "--output", "json"), lst(job(fake.s.download_job_name)))
    fake.state(None)
    fake.decode(None)
    fake.reg(fake.helmfile_sync(), "")
    fake.apply_stdin()
    fake.apply_file("manifests/httproute.yaml")
    fake.watch(fake.ready_items())
    fake.releases(fake.all_deployed())
    return delete


@pytest.mark.parametrize(("existing", "immutable", "replaced"), [
    ("failed", False, True),  # a failed download is retried with a fresh Job
    ("complete", False, False),  # a finished download is kept: nothing is downloaded again
    ("complete", True, True),  # a Job from another llmd version cannot be patched: replaced
])
def test_download_job_is_replaced_only_when_it_must_be(cli, fp, fake, monkeypatch, existing, immutable, replaced):
    monkeypatch.setenv("HF_TOKEN", "hf_" + "t" * 30)
    delete = _job_redeploy(fake, job("model-download-inference-scheduling", existing), immutable=immutable)
    r = cli("deploy", "--context", CTX)
    assert r.exit_code == 0, r.stderr
    assert (delete in tool_calls(fp)) is replaced
    # A kept, complete download is not announced (or waited for) as a new one.
    assert ("already downloaded into model-cache-inference-scheduling" in r.stderr) is not replaced
    assert ("downloading meta-llama" in r.stderr) is replaced


def test_slow_download_times_out_with_elapsed_time_and_last_progress_line(cli, fp, fake, clock, monkeypatch):  # F30
    monkeypatch.setenv("HF_TOKEN", "hf_" + "t" * 30)
    _full_pvc_deploy(fake, job_state="running")
    fake.reg(fake.k("get", "jobs.batch,pods", "--output", "json"), lst(job(fake.s.download_job_name, "running")),
             n=20)
    fake.reg(fake.k("logs", f"job/{fake.s.download_job_name}", "--tail", "60"),
             "Fetching 4 files:  50%|█████     | 2/4 [10:00<10:00]\n")
    fake.reg(fake.k("get", "events", "--output", "json"), lst())
    r = cli("deploy", "--context", CTX, "--timeout", "60")
    assert r.exit_code == 6, r.stderr
    assert "not ready after 6" in r.stderr and "download 0/1" in r.stderr
    assert "last download output: Fetching 4 files:  50%" in r.stderr
    assert fake.helmfile_sync() not in tool_calls(fp)


def test_namespace_that_finishes_terminating_is_recreated(cli, fp, fake, clock):  # F21 "then proceed"
    fake.tools()
    fake.context()
    fake.reachable()
    fake.crds()
    fake.gateway_class()
    fake.namespace(terminating=2)  # Terminating twice, then gone
    fake.permissions(11)
    fake.releases({})
    fake.apply_stdin(2)
    fake.state(None)
    fake.reg(fake.helmfile_sync(), "")
    fake.apply_file("manifests/httproute.yaml")
    fake.watch(fake.ready_items())
    fake.releases(fake.all_deployed())
    r = cli("deploy", "--context", CTX, *SIM)
    assert r.exit_code == 0, r.stderr
    assert len(clock.sleeps) == 2


def test_the_dry_run_plan_and_renders_by_hand_list_follow_the_one_step_order(cli, fp, tmp_path, monkeypatch):
    """llmd deploy's plan, llmd render's by-hand hint: both from llmd.ops.deploy_steps, so neither can drift."""
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setenv("HF_TOKEN", "hf_dryrunDRYRUNdryrun0123456789")
    doc = json.loads(cli("deploy", "--dry-run", "--json").stdout)
    marks = ("# apply namespace", "# apply Secret", "model-cache-pvc.yaml", "model-download-job.yaml", " sync",
             "httproute.yaml")
    plan = [next(i for i, line in enumerate(doc["plan"]) if mark in line) for mark in marks]
    assert plan == sorted(plan), doc["plan"]
    hint = cli("render", "--out", str(tmp_path / "r")).stderr.split("in this order:", 1)[1]
    by_hand = [hint.index(mark) for mark in ("create namespace", "create secret", "model-cache-pvc.yaml",
                                             "model-download-job.yaml", " sync", "httproute.yaml")]
    assert by_hand == sorted(by_hand), hint
