"""`--platform local` end to end: real `llmd sim` processes, the real gateway process, real sockets on 127.0.0.1.

deploy -> status -> test -> kill -9 a replica under load (failures by class, the gateway stops picking it) ->
second deploy detection -> cleanup after kill -9 of the gateway -> nothing left running; stale state recognised.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest
import yaml

from llmd import proc

pytestmark = pytest.mark.timeout(90)
LOCAL = ("--platform", "local", "--replicas", "2")


def state_file(tmp_path: Path) -> Path:
    return tmp_path / "state" / "local" / "llm-d-inference-scheduling" / "inference-scheduling" / "state.json"


def processes(tmp_path: Path) -> list[dict]:
    return json.loads(state_file(tmp_path).read_text())["processes"]


def kubernetes_apply_keys() -> list[str]:
    """The keys of `scheduler apply --json` on Kubernetes (KubernetesPlatform.apply_scheduler)."""
    from llmd.ops.scheduler_apply import ApplyReport
    from llmd.ops.target import Target

    return [*ApplyReport(Target("ns", None, None), "profile x", "a", "b", "", []).to_dict(), "profile", "platform"]


def gateway_url(tmp_path: Path) -> str:
    return next(p["url"] for p in processes(tmp_path) if p["role"] == "gateway")


def gateway(tmp_path: Path) -> dict:
    """The running gateway's own state (GET /llmd/gateway)."""
    return httpx.get(gateway_url(tmp_path) + "/llmd/gateway", timeout=5).json()


@pytest.fixture
def reaper(tmp_path):
    """Whatever a failing test leaves behind is stopped (the test itself asserts cleanup does it)."""
    yield
    if state_file(tmp_path).exists():
        for p in processes(tmp_path):
            proc.stop_pid(p["pid"], p["start"], grace=1.0)


def test_local_lifecycle_end_to_end(cli, tmp_path, reaper):
    r = cli("deploy", *LOCAL, "--json")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["target"]["platform"] == "local" and doc["changed"] is True
    assert [c["component"] for c in doc["readiness"]["components"]] == ["replica", "replica", "gateway"]
    procs = processes(tmp_path)
    assert all(proc.pid_alive(p["pid"], p["start"]) for p in procs)

    r = cli("status", *LOCAL, "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["verdict"] == "healthy"

    r = cli("deploy", *LOCAL)  # a second identical deploy: detected, nothing restarted
    assert r.exit_code == 0 and "already running" in r.stderr
    assert [p["pid"] for p in processes(tmp_path)] == [p["pid"] for p in procs]
    r = cli("deploy", "--platform", "local", "--replicas", "3")  # another shape while one runs: refused
    assert r.exit_code == 5 and "already running" in r.stderr

    r = cli("test", *LOCAL, "--json")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["smoke"]["ok"] is True

    # scheduler apply / show --running go through the same platform seam and give the cluster's report: the running
    # config diffed against the new one, --dry-run PUTs nothing, an identical apply is "unchanged"
    since = gateway(tmp_path)["scheduler_since"]
    queue5 = ("--scheduler", "queue", "--scorer-weight", "queue-scorer=5")
    r = cli("scheduler", "apply", *LOCAL, *queue5, "--dry-run", "--json")
    assert r.exit_code == 0, r.stderr
    planned = json.loads(r.stdout)
    assert planned["status"] == "planned" and planned["changed"] is False and planned["platform"] == "local"
    assert set(planned) == set(kubernetes_apply_keys())  # the same document as on the cluster
    assert "-  - type: prefix-cache-scorer\n" in planned["diff"] and "+        weight: 5\n" in planned["diff"]
    assert {"plugin": "default/queue-scorer", "before": "2", "after": "5"} in planned["weights"]
    assert planned["plan"] == [f"PUT {gateway_url(tmp_path)}/llmd/scheduler (profile queue, config "
                               f"{planned['after_file']})"]
    assert gateway(tmp_path)["scheduler_since"] == since and gateway(tmp_path)["profile"] == "default"
    r = cli("scheduler", "apply", *LOCAL, *queue5)  # the human view: the diff's weight table, then the outcome
    assert r.exit_code == 0, r.stderr
    assert "default/queue-scorer" in r.stderr and "EPP now runs profile queue" in r.stderr
    assert "2 model-server pods untouched" in r.stderr
    applied = gateway(tmp_path)
    assert applied["scheduler_since"] > since and applied["profile"] == "queue"
    r = cli("scheduler", "apply", *LOCAL, *queue5, "--json")
    again = json.loads(r.stdout)
    assert r.exit_code == 0 and again["status"] == "unchanged" and again["diff"] == ""
    assert again["before_file"] == again["after_file"] == planned["after_file"]
    assert gateway(tmp_path)["scheduler_since"] == applied["scheduler_since"]  # nothing was PUT
    for key in ("before_file", "after_file"):  # both configs are kept under the stack's state dir
        f = Path(planned[key])
        assert f.parent == state_file(tmp_path).parent / "epp-configs" and yaml.safe_load(f.read_text())
    assert yaml.safe_load(Path(planned["after_file"]).read_text()) == applied["config"]
    r = cli("scheduler", "show", "--running", *LOCAL, "--json")
    shown = json.loads(r.stdout)
    assert r.exit_code == 0 and "local gateway" in shown["source"]
    assert shown["config"]["schedulingProfiles"][0]["plugins"] == [{"pluginRef": "queue-scorer", "weight": 5}]
    r = cli("scheduler", "apply", *LOCAL, "--scheduler", "default", "--json")
    back = json.loads(r.stdout)
    assert r.exit_code == 0 and back["status"] == "applied" and back["before_file"] == planned["after_file"]
    assert back["model_pods_kept"] == ["replica-0", "replica-1"]
    r = cli("scheduler", "metrics", *LOCAL, "--json")
    snap = json.loads(r.stdout)
    assert r.exit_code == 0 and [x["pod"].split()[0] for x in snap["replicas"]] == ["replica-0", "replica-1"]
    assert snap["epp"]["ready_pods"] == 2 and snap["epp"]["requests"] >= 4  # the smoke test's generations
    assert all(x["error"] is None and x["waiting"] == 0 for x in snap["replicas"])

    # A replica killed -9 while serving: in-flight requests fail (by class in the report), the rest keep flowing.
    victim = procs[0]
    killer = threading.Timer(1.0, os.kill, (victim["pid"], signal.SIGKILL))
    killer.start()
    out = tmp_path / "perf.json"
    r = cli("test", *LOCAL, "--perf", "--concurrency", "8", "--duration", "3s", "--output-tokens", "64",
            "--report-file", str(out))
    killer.join()
    report = json.loads(out.read_text())
    stage = report["stages"][0]
    assert stage["requests"]["failed"] >= 1 and sum(stage["failures"].values()) == stage["requests"]["failed"]
    # only what was running or queued on it (at most --concurrency) and what was picked before it left the pool
    assert stage["requests"]["failed"] <= 2 * 8, stage["failures"]
    assert stage["requests"]["ok"] >= 2 * stage["requests"]["failed"], stage
    print("failures by class:", stage["failures"], "ok:", stage["requests"]["ok"])
    assert r.exit_code == 8  # above --max-error-rate 1 %
    r = cli("status", *LOCAL, "--json")
    st = json.loads(r.stdout)
    assert r.exit_code == 6 and st["verdict"] == "degraded" and "replica-0" in st["problems"][0]

    gw = processes(tmp_path)[-1]
    os.kill(gw["pid"], signal.SIGKILL)  # the gateway too
    deadline = time.monotonic() + 5
    while proc.pid_alive(gw["pid"], gw["start"]) and time.monotonic() < deadline:  # SIGKILL is asynchronous
        time.sleep(0.02)
    r = cli("cleanup", *LOCAL, "--force", "--json")
    assert r.exit_code == 0, r.stdout + r.stderr
    rows = {s["name"].split()[0] if s["what"] == "process" else s["what"]: s["status"]
            for s in json.loads(r.stdout)["steps"]}
    assert rows == {"gateway": "absent", "replica-0": "absent", "replica-1": "removed", "state": "removed"}
    assert not any(proc.pid_alive(p["pid"], p["start"]) for p in procs)
    assert not state_file(tmp_path).exists()
    assert cli("cleanup", *LOCAL, "--force").exit_code == 0  # nothing to do


def test_stale_state_is_recognised_and_replaced(cli, tmp_path, reaper):
    assert cli("deploy", *LOCAL).exit_code == 0
    for p in processes(tmp_path):
        os.kill(p["pid"], signal.SIGKILL)
    deadline = time.monotonic() + 5
    while any(proc.pid_alive(p["pid"], p["start"]) for p in processes(tmp_path)) and time.monotonic() < deadline:
        time.sleep(0.05)
    r = cli("status", *LOCAL, "--json")
    st = json.loads(r.stdout)
    assert r.exit_code == 6 and st["verdict"] == "not deployed" and "stale state" in st["problems"][0]
    old = [p["pid"] for p in processes(tmp_path)]
    r = cli("deploy", *LOCAL)
    assert r.exit_code == 0 and "stale state of a dead run" in r.stderr
    assert not set(old) & {p["pid"] for p in processes(tmp_path)}
    assert cli("cleanup", *LOCAL, "--force").exit_code == 0


def test_nothing_deployed_is_reported(cli):
    r = cli("status", "--platform", "local", "--json")
    assert r.exit_code == 6 and json.loads(r.stdout)["verdict"] == "not deployed"
    r = cli("test", "--platform", "local")
    assert r.exit_code == 7 and "nothing is deployed on the local platform" in r.stderr
    for verb in (("scheduler", "metrics"), ("scheduler", "apply"), ("scheduler", "show", "--running")):
        assert cli(*verb, "--platform", "local").exit_code == 6  # the scheduler verbs' "not deployed"
    r = cli("deploy", "--platform", "nowhere")
    assert r.exit_code == 2 and "platform" in r.stderr


def test_ctrl_c_during_deploy_leaves_nothing_running(tmp_path):
    """SIGINT while the replicas start: every process already started is stopped, exit 130, no state left."""
    import subprocess
    import sys

    env = {**os.environ, "LLMD_STATE_DIR": str(tmp_path / "state")}
    p = subprocess.Popen([sys.executable, "-m", "llmd", "deploy", *LOCAL], env=env, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (state_file(tmp_path).exists() and processes(tmp_path)):
        time.sleep(0.01)
    started = processes(tmp_path)
    assert started, "deploy never recorded a process"
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=30)
    assert p.returncode == 130, err
    assert not any(proc.pid_alive(q["pid"], q["start"]) for q in started)
    assert not state_file(tmp_path).exists()
    time.sleep(0.2)
    assert not with_env(f"LLMD_STATE_DIR={tmp_path / 'state'}")  # also none started after the state was read


def with_env(entry: str) -> list[int]:
    """Live processes whose environment holds `entry` (children started for this test's state dir)."""
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if entry.encode() in env and proc.pid_alive(int(pid)):
            out.append(int(pid))
    return out


def test_sim_flag_overrides_reach_every_replica(cli, tmp_path, reaper):
    """--set local.sim.<flag>=V is what the replicas run with (their own /metrics say so), and a deploy that asks for
    other flags while the stack runs is refused like any other change of shape."""
    cfg = tmp_path / "llmd.yaml"
    cfg.write_text("local:\n  sim:\n    kv-cache-size: 1024\n    block-size: 64\n")
    local = (*LOCAL, "--config", str(cfg), "--set", "local.sim.kv-cache-size=256")  # --set wins over the file
    r = cli("deploy", *local)
    assert r.exit_code == 0, r.stderr
    for p in processes(tmp_path):
        if p["role"] == "replica":
            metrics = httpx.get(p["url"] + "/metrics", timeout=5).text
            assert 'vllm:cache_config_info{block_size="64",num_gpu_blocks="256"} 1' in metrics
    recorded = " ".join(json.loads(state_file(tmp_path).read_text())["sim_flags"])
    assert "--kv-cache-size 256 " in recorded and "--block-size 64" in recorded
    r = cli("deploy", *local)
    assert r.exit_code == 0 and "already running" in r.stderr
    r = cli("deploy", *LOCAL)  # the preset's flags: another shape
    assert r.exit_code == 5 and "(local.sim)" in r.stderr and "--kv-cache-size 256" in r.stderr
    assert cli("cleanup", *LOCAL, "--force").exit_code == 0
