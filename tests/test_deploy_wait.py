"""Readiness evaluation, log signatures and the progress display, without a CLI around them."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from llmd.cli.readiness_view import ReadinessTable
from llmd.errors import DeployError, NotReadyError
from llmd.ops import diagnose, wait
from llmd.settings import Settings
from test_deploy_support import deployment, gateway, job, pod, route

S = Settings(accelerator="sim", replicas=2)


class NoKubectl:
    """The Watcher only calls kubectl for logs of crashing pods; these tests have none."""

    runner = None

    def run(self, *a, **k):
        raise AssertionError(f"unexpected kubectl call {a}")


def named(*objs):
    return {(o["kind"], o["metadata"]["name"]): o for o in objs}


def evaluate(keys, *objs, now=0.0, watcher=None):
    w = watcher or wait.Watcher(S, NoKubectl(), keys)
    snap: dict[str, list[dict]] = {}
    for o in objs:
        snap.setdefault(o["kind"], []).append(o)
    return {c.key: c for c in w.evaluate(snap, now)}


def test_gateway_needs_programmed_and_its_deployment_ready():
    comps = evaluate(("gateway",), gateway(S.gateway_name, programmed=False, message="waiting for address"),
                     deployment(S.gateway_service, 1))
    assert not comps["gateway"].done and "waiting for address" in comps["gateway"].note
    comps = evaluate(("gateway",), gateway(S.gateway_name), deployment(S.gateway_service, 1))
    assert comps["gateway"].done


def test_gke_gateway_is_ready_on_programmed_alone():
    gke = Settings(accelerator="sim", environment="gke")
    w = wait.Watcher(gke, NoKubectl(), ("gateway",))
    assert evaluate(("gateway",), gateway(gke.gateway_name), watcher=w)["gateway"].done


def test_decode_counts_ready_over_desired_and_scaled_to_zero_is_done():
    assert evaluate(("decode",), deployment(S.decode_deployment, 1, 2))["decode"].ready == 1
    assert not evaluate(("decode",))["decode"].done  # not created yet
    assert evaluate(("decode",), deployment(S.decode_deployment, 0, 0))["decode"].done


def rollout(**kw):
    return wait.deployment_rollout(deployment(S.epp_name, **{"ready": 1, "desired": 1, **kw}))


def test_a_deployment_is_ready_only_when_rolled_out_as_kubectl_rollout_status_judges():  # rule 15, F71
    """Each of kubectl's DeploymentStatusViewer rules on its own keeps the component pending, Ready pods or not."""
    assert rollout() == wait.Rollout(1, 1, True, "")
    # the controller has not seen the new spec: status (and readyReplicas) still describe the old template
    assert rollout(generation=2, observed=1) == wait.Rollout(1, 1, False, "rolling out (new spec not observed yet)")
    assert rollout(generation=2, updated=0, old=1).note == "rolling out (0/1 updated, 1 old pod left)"
    assert rollout(desired=4, ready=4, updated=2, old=2).note == "rolling out (2/4 updated, 2 old pods left)"
    assert rollout(desired=2, ready=2, old=1).note == "rolling out (2/2 updated, 1 old pod left)"
    short = deployment(S.epp_name, 1, 2)
    short["status"]["availableReplicas"] = 1  # minReadySeconds not over yet for one updated pod
    assert wait.deployment_rollout(short).note == "rolling out (2/2 updated, 1 available)"
    assert wait.deployment_rollout(None) == wait.Rollout(0, 1, False, "not created yet")
    assert rollout(desired=0, ready=0) == wait.Rollout(0, 0, True, "scaled to 0")
    assert not rollout(desired=0, ready=0, old=1).rolled_out  # scaled down, an old pod still terminating


def test_a_missed_progress_deadline_is_shown_but_not_a_failure():
    """kubectl gives up on ProgressDeadlineExceeded; a model server may load for longer than 600 s and still come
    up, so the note says it and the wait goes on (deploy's --timeout decides)."""
    dep = deployment(S.decode_deployment, 0, 2, updated=1, old=1)
    dep["status"]["conditions"] = [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]
    r = wait.deployment_rollout(dep)
    assert not r.rolled_out and r.note == "rolling out (1/2 updated, 1 old pod left, progress deadline exceeded)"


def test_the_old_epp_still_ready_during_a_rollout_keeps_the_component_pending():
    comps = evaluate(("epp", "decode"), deployment(S.epp_name, 1, generation=2, observed=1),
                     deployment(S.decode_deployment, 2, 2))
    assert (comps["epp"].ready, comps["epp"].desired) == (1, 1) and not comps["epp"].done
    assert comps["epp"].to_dict()["rolled_out"] is False and comps["decode"].done
    line = wait.Readiness(list(comps.values()), 0, "starting the endpoint picker").line()
    assert line.startswith("epp 1/1 (rolling out (new spec not observed yet)) · decode 2/2 —")


def test_a_gateway_deployment_rolling_out_is_not_ready_even_when_programmed():
    comps = evaluate(("gateway",), gateway(S.gateway_name), deployment(S.gateway_service, 1, updated=0, old=1))
    assert not comps["gateway"].done and comps["gateway"].note == "rolling out (0/1 updated, 1 old pod left)"


def test_download_job_states():
    assert evaluate(("download",), job(S.download_job_name, "complete"))["download"].done
    assert evaluate(("download",), job(S.download_job_name, "running"))["download"].note == "downloading"


def test_route_rejection_is_confirmed_on_a_second_poll_before_failing():
    w = wait.Watcher(S, NoKubectl(), ("route",))
    bad = route(S.httproute_name, accepted="False", message="no matching parent")
    assert "re-checking" in evaluate(("route",), bad, watcher=w)["route"].note
    with pytest.raises(DeployError) as err:
        evaluate(("route",), bad, watcher=w)
    assert err.value.exit_code == 5 and "no matching parent" in err.value.details


def test_unschedulable_is_tolerated_within_the_grace_window():
    w = wait.Watcher(S, NoKubectl(), ("decode",))
    p = pod(f"{S.decode_deployment}-1", unschedulable="0/1 nodes are available: 1 Insufficient cpu.")
    comps = evaluate(("decode",), deployment(S.decode_deployment, 0, 2), p, now=0, watcher=w)
    assert "Insufficient cpu" in comps["decode"].note
    evaluate(("decode",), deployment(S.decode_deployment, 0, 2), p, now=wait.UNSCHEDULABLE_GRACE_S - 1, watcher=w)
    with pytest.raises(NotReadyError):
        evaluate(("decode",), deployment(S.decode_deployment, 0, 2), p, now=wait.UNSCHEDULABLE_GRACE_S, watcher=w)


def test_no_accelerator_anywhere_fails_after_the_short_grace():
    """Preflight counted 0 GPUs: deploy passes the short grace, and the Unschedulable verdict comes at once."""
    w = wait.Watcher(S, NoKubectl(), ("decode",), unschedulable_grace_s=wait.NO_ACCELERATOR_GRACE_S)
    p = pod(f"{S.decode_deployment}-1", unschedulable="0/3 nodes are available: 3 Insufficient nvidia.com/gpu.")
    evaluate(("decode",), deployment(S.decode_deployment, 0, 2), p, now=0, watcher=w)
    with pytest.raises(NotReadyError) as err:
        evaluate(("decode",), deployment(S.decode_deployment, 0, 2), p, now=wait.NO_ACCELERATOR_GRACE_S, watcher=w)
    assert "not enough free accelerators" in err.value.hint
    assert wait.NO_ACCELERATOR_GRACE_S < wait.UNSCHEDULABLE_GRACE_S


def test_a_pod_waiting_for_the_cache_pvc_gets_the_storage_hint_not_the_capacity_one():
    w = wait.Watcher(S, NoKubectl(), ("download",))
    p = pod(f"{S.download_job_name}-x1", unschedulable="0/3 nodes are available: pod has unbound immediate "
                                                      "PersistentVolumeClaims. preemption: 0/3 nodes are available")
    evaluate(("download",), job(S.download_job_name, "running"), p, now=0, watcher=w)
    with pytest.raises(NotReadyError) as err:
        evaluate(("download",), job(S.download_job_name, "running"), p, now=wait.UNSCHEDULABLE_GRACE_S, watcher=w)
    assert f"model-cache PVC {S.pvc_name} is not bound" in err.value.hint
    assert "ReadWriteMany" in err.value.hint and "--storage-class" in err.value.hint
    assert "--replicas" not in err.value.hint


def test_pods_of_other_stacks_are_ignored():
    other = pod("someone-elses-app-1", waiting="ImagePullBackOff")
    assert not evaluate(("decode",), deployment(S.decode_deployment, 2, 2), other)["decode"].note


@pytest.mark.parametrize(("log", "name"), [
    ("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB", "out of memory"),
    ("ValueError: The model's max seq len (32768) is larger than the maximum number of tokens that can be stored "
     "in KV cache (12000).", "KV cache"),
    ("huggingface_hub.errors.HfHubHTTPError: 429 Client Error: Too Many Requests for url", "rate limited"),
    ("OSError: You are trying to access a gated repo. Cannot access gated repo for url", "gated model"),
    ("plugin type 'custom-scorer' is not found in registry", "EPP config"),
    ('no matches for kind "InferenceObjective" in version "inference.networking.x-k8s.io/v1alpha2"', "missing CRD"),
    ("INFO: Started server process", None),
])
def test_log_signatures(log, name):
    found = diagnose.match_logs(log, S)
    assert (found[0] if found else None) == name


def test_live_display_renders_on_a_terminal(monkeypatch):
    from llmd.ui import Ui

    monkeypatch.setenv("TERM", "xterm")

    ui = Ui()
    buf = io.StringIO()
    ui.err = Console(file=buf, force_terminal=True, width=120)
    assert ui.interactive
    state = wait.Readiness([wait.Component("decode", S.decode_deployment, 1, 2, "")], 12.0, "starting model servers")
    with ReadinessTable(ui) as display:
        display.update(state)
    assert "starting model servers" in buf.getvalue()


def test_live_display_elapsed_time_ticks_between_polls(monkeypatch):
    from llmd.ui import Ui

    monkeypatch.setenv("TERM", "xterm")

    class Clock:
        t = 100.0

        def now(self):
            return self.t

    clock = Clock()
    monkeypatch.setattr(wait, "CLOCK", clock)
    ui = Ui()
    buf = io.StringIO()
    ui.err = Console(file=buf, force_terminal=True, width=120)
    state = wait.Readiness([wait.Component("decode", S.decode_deployment, 1, 2, "")], 12.0, "starting model servers")
    with ReadinessTable(ui) as display:
        display.update(state)
        assert "starting model servers — 12s" in buf.getvalue()
        clock.t += 3  # no new poll yet: the next refresh still shows the time going on
        display.live.refresh()
        assert "starting model servers — 15s" in buf.getvalue()


def test_plain_display_prints_only_changes(capsys):
    from llmd.ui import Ui

    ui = Ui()
    comps = [wait.Component("decode", S.decode_deployment, 1, 2, "")]
    with ReadinessTable(ui) as display:
        for elapsed in (0.0, 5.0, 10.0):
            display.update(wait.Readiness(comps, elapsed, "starting model servers"))
    assert capsys.readouterr().err.count("decode 1/2") == 1


def test_dumb_terminal_gets_plain_lines(capsys, monkeypatch):
    from llmd.ui import Ui

    ui = Ui()
    ui.err = Console(file=io.StringIO(), force_terminal=True, width=120)  # TERM=dumb from the test isolation
    with ReadinessTable(ui) as display:
        assert display.live is None
