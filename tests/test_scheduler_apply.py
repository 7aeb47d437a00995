"""`llmd scheduler apply` and `show --running` against a strict fake process boundary: command order, the
helmfile selector, the EPP-roll wait, model-server pods untouched, dry-run diff, refusals."""

from __future__ import annotations

import json

import pytest
import yaml

from test_deploy_support import (  # noqa: F401  (*_fixture: fixtures used by name)
    CTX,
    NS,
    Fake,
    clock_fixture,
    lst,
    no_killpg_fixture,
    obj,
    settings_for,
    tool_calls,
)

SIM = ("--accelerator", "sim")
EPP_SELECTOR = "inferencepool=gaie-inference-scheduling-epp"
MODEL_SELECTOR = "llm-d.ai/guide=inference-scheduling,llm-d.ai/inference-serving=true"


@pytest.fixture
def fake(fp, tmp_path, fake_tools_on_path, clock, no_killpg):
    return Fake(fp, tmp_path)


def gaie_config(*args: str) -> tuple[str, str]:
    """(pluginsConfigFile, text) that llmd renders for these CLI flags."""
    from llmd.render import render_bundle

    ext = render_bundle(settings_for(*SIM, *args)).manifest_docs("values/gaie.yaml")[0]["inferenceExtension"]
    return ext["pluginsConfigFile"], ext["pluginsCustomConfig"][ext["pluginsConfigFile"]]


def epp_deployment(config_file: str) -> dict:
    return obj("Deployment", "gaie-inference-scheduling-epp", spec={
        "replicas": 1, "selector": {"matchLabels": {"inferencepool": "gaie-inference-scheduling-epp"}},
        "template": {"spec": {"containers": [{"name": "epp", "args": [
            "--pool-name", "gaie-inference-scheduling", "--config-file", f"/config/{config_file}"]}]}}})


def epp_configmap(config_file: str, text: str) -> dict:
    return obj("ConfigMap", "gaie-inference-scheduling-epp", data={"default-plugins.yaml": "x", config_file: text})


def pod(name: str, uid: str, ready: bool = True, waiting: str | None = None) -> dict:
    cs = {"name": "epp", "ready": ready, "restartCount": 0,
          "state": {"waiting": {"reason": waiting, "message": "back-off"}} if waiting else {"running": {}}}
    return obj("Pod", name, metadata={"uid": uid}, status={
        "phase": "Running", "containerStatuses": [cs],
        "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]})


MODEL_PODS = [pod(f"ms-inference-scheduling-decode-abc-{i}", f"m{i}") for i in range(2)]


class Cluster:
    def __init__(self, fake: Fake) -> None:
        self.f = fake

    def running(self, config_file: str, text: str) -> None:
        self.f.reg(self.f.k("get", "deployments.apps", "gaie-inference-scheduling-epp", "--output", "json"),
                   json.dumps(epp_deployment(config_file)))
        self.f.reg(self.f.k("get", "configmaps", "gaie-inference-scheduling-epp", "--output", "json"),
                   json.dumps(epp_configmap(config_file, text)))

    def model_pods(self, items=MODEL_PODS) -> None:
        self.f.reg(self.f.k("get", "pods", "--selector", MODEL_SELECTOR, "--output", "json"), lst(*items))

    def epp_pods(self, *items: dict) -> None:
        self.f.reg(self.f.k("get", "pods", "--selector", EPP_SELECTOR, "--output", "json"), lst(*items))

    def sync_argv(self) -> list[str]:
        return [*self.f.helmfile_sync()[:-1], "--selector", "component=gaie", "sync"]

    def up_to_sync(self, config: tuple[str, str], epp: dict, sync_out: str = "", **sync_reg) -> None:
        """What an apply reads before it changes anything (tools, context, the running config, the model-server
        and EPP pods), then its gaie-only sync."""
        self.f.tools()
        self.f.context()
        self.running(*config)
        self.model_pods()
        self.epp_pods(epp)
        self.f.reg(self.sync_argv(), sync_out, **sync_reg)

    def rolled(self, config: tuple[str, str], epp: dict, model_pods=MODEL_PODS) -> None:
        """After the sync: the new EPP pod, the new config read back, the model-server pods compared."""
        self.epp_pods(epp)
        self.running(*config)
        self.model_pods(model_pods)


@pytest.fixture
def cluster(fake) -> Cluster:
    return Cluster(fake)


def test_apply_syncs_only_the_inferencepool_release_waits_for_the_roll_and_keeps_the_model_servers(
        cli, fake, fp, cluster, clock):
    old_file, old_text = gaie_config("--scheduler", "default")
    new_file, new_text = gaie_config("--scheduler", "random")
    cluster.up_to_sync((old_file, old_text), pod("gaie-inference-scheduling-epp-aaa", "old"),
                       "Upgrading release=gaie-inference-scheduling\n")
    cluster.epp_pods(pod("gaie-inference-scheduling-epp-aaa", "old", ready=False))  # Recreate: old one terminating
    cluster.epp_pods(pod("gaie-inference-scheduling-epp-bbb", "new", ready=False))
    cluster.rolled((new_file, new_text), pod("gaie-inference-scheduling-epp-bbb", "new"))
    fake.apply_stdin()  # the state ConfigMap: the next deploy must not skip as "no changes"
    r = cli("scheduler", "apply", "--context", CTX, *SIM, "--scheduler", "random")
    assert r.exit_code == 0, r.stderr
    calls = tool_calls(fp)
    sync = calls.index(cluster.sync_argv())
    first_model = calls.index(fake.k("get", "pods", "--selector", MODEL_SELECTOR, "--output", "json"))
    last_model = len(calls) - 1 - calls[::-1].index(fake.k("get", "pods", "--selector", MODEL_SELECTOR, "--output",
                                                           "json"))
    assert first_model < sync < last_model  # UIDs read before the sync and compared after the roll
    assert [c for c in calls if c[0] == "helmfile" and "sync" in c] == [cluster.sync_argv()]
    assert "EPP now runs profile random" in r.stderr
    assert "gaie-inference-scheduling-epp-aaa → gaie-inference-scheduling-epp-bbb" in r.stderr
    assert "2 model-server pods untouched (same UIDs)" in r.stderr
    assert "default/prefix-cache-scorer" in r.stderr and "absent" in r.stderr  # the weights table
    assert clock.sleeps, "the roll was polled, not assumed"


def test_apply_json_document(cli, fake, cluster):
    old_file, old_text = gaie_config()
    new_file, new_text = gaie_config("--scheduler", "queue")
    cluster.up_to_sync((old_file, old_text), pod("gaie-inference-scheduling-epp-aaa", "old"))
    cluster.rolled((new_file, new_text), pod("gaie-inference-scheduling-epp-bbb", "new"))
    fake.apply_stdin()
    r = cli("scheduler", "apply", "--context", CTX, *SIM, "--scheduler", "queue", "--json")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["status"] == "applied" and doc["after_file"] == new_file and doc["before_file"] == old_file
    assert doc["model_pods_kept"] == [p["metadata"]["name"] for p in MODEL_PODS]
    assert {"plugin": "default/queue-scorer", "before": "2", "after": "1"} in doc["weights"]


def test_model_server_pod_replaced_during_apply_is_reported(cli, fake, cluster):
    old_file, old_text = gaie_config()
    new_file, new_text = gaie_config("--scheduler", "random")
    cluster.up_to_sync((old_file, old_text), pod("gaie-inference-scheduling-epp-aaa", "old"))
    cluster.rolled((new_file, new_text), pod("gaie-inference-scheduling-epp-bbb", "new"),
                   [MODEL_PODS[0], pod("ms-inference-scheduling-decode-abc-1", "changed")])
    r = cli("scheduler", "apply", "--context", CTX, *SIM, "--scheduler", "random")
    assert r.exit_code == 5
    assert "model-server pods changed during the scheduler apply: ms-inference-scheduling-decode-abc-1" in r.stderr


def test_new_epp_pod_crash_loop_fails_fast(cli, fake, cluster):
    old_file, old_text = gaie_config()
    cluster.up_to_sync((old_file, old_text), pod("gaie-inference-scheduling-epp-aaa", "old"))
    crashing = pod("gaie-inference-scheduling-epp-bbb", "new", ready=False, waiting="CrashLoopBackOff")
    cluster.epp_pods(crashing)
    fake.reg(fake.k("logs", "gaie-inference-scheduling-epp-bbb", "--tail", "60", "--container", "epp", "--previous"),
             "plugin type 'x' is not found in registry\n")
    r = cli("scheduler", "apply", "--context", CTX, *SIM, "--scheduler", "random")
    assert r.exit_code == 6, r.stderr
    assert "new EPP pod gaie-inference-scheduling-epp-bbb" in r.stderr


def test_roll_timeout_is_exit_6(cli, fake, cluster, clock):
    old_file, old_text = gaie_config()
    cluster.up_to_sync((old_file, old_text), pod("gaie-inference-scheduling-epp-aaa", "old"))
    fake.reg(fake.k("get", "pods", "--selector", EPP_SELECTOR, "--output", "json"),
             lst(pod("gaie-inference-scheduling-epp-aaa", "old")), n=1000)  # the old pod never goes
    r = cli("scheduler", "apply", "--context", CTX, *SIM, "--scheduler", "random", "--timeout", "30")
    assert r.exit_code == 6, r.stderr
    assert "the EPP did not roll within 30s (EPP roll: old pods left 1" in r.stderr


def test_dry_run_shows_the_config_diff_and_changes_nothing(cli, fake, fp, cluster):
    old_file, old_text = gaie_config()
    fake.tools()
    fake.context()
    cluster.running(old_file, old_text)
    r = cli("scheduler", "apply", "--context", CTX, *SIM, "--scheduler", "random", "--dry-run")
    assert r.exit_code == 0, r.stderr
    assert f"--- running: {old_file}" in r.stdout
    assert "-  - type: queue-scorer" in r.stdout and "+  - type: random-picker" in r.stdout
    assert "would run: helmfile" in r.stderr and "--selector component=gaie sync" in r.stderr
    assert not any(c[0] == "helmfile" and "sync" in c for c in tool_calls(fp))


def test_same_config_is_a_no_op(cli, fake, fp, cluster):
    f, text = gaie_config("--scheduler", "random")
    fake.tools()
    fake.context()
    cluster.running(f, text)
    r = cli("scheduler", "apply", "--context", CTX, *SIM, "--scheduler", "random")
    assert r.exit_code == 0, r.stderr
    assert "already runs this config" in r.stderr
    assert not any(c[0] == "helmfile" and "sync" in c for c in tool_calls(fp))


def test_precise_prefix_needs_a_deploy_not_an_apply(cli, fake, fp, cluster):
    f, text = gaie_config()
    fake.tools()
    fake.context()
    cluster.running(f, text)
    r = cli("scheduler", "apply", "--context", CTX, *SIM, "--scheduler", "precise-prefix", "--no-hf-token")
    assert r.exit_code == 10, r.stderr
    assert "also changes the model servers" in r.stderr and "llmd deploy" in r.stderr
    assert not any(c[0] == "helmfile" and "sync" in c for c in tool_calls(fp))


def test_not_deployed_is_exit_6(cli, fake, cluster):
    fake.tools()
    fake.context()
    fake.not_found(fake.k("get", "deployments.apps", "gaie-inference-scheduling-epp", "--output", "json"),
                   "deployments.apps", "gaie-inference-scheduling-epp")
    r = cli("scheduler", "apply", "--context", CTX, *SIM, "--scheduler", "random")
    assert r.exit_code == 6 and "no endpoint picker Deployment" in r.stderr


def test_bad_profile_exits_2_before_any_process(cli, fp, fake_tools_on_path):
    r = cli("scheduler", "apply", *SIM, "--scheduler", "round-robin")
    assert r.exit_code == 2 and "use --scheduler random" in r.stderr
    assert list(fp.calls) == []


# ---- show --running -----------------------------------------------------------------------------

def test_show_running_reads_the_file_the_epp_was_started_with(cli, fake, cluster):
    f, text = gaie_config("--scheduler", "optimized-baseline")
    fake.context()
    cluster.running(f, text)
    r = cli("scheduler", "show", "--running", "--context", CTX, "--json")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["config_file"] == f and doc["errors"] == []
    assert [(p["plugin"], p["weight"]) for p in doc["plugins"]] == [
        ("queue-scorer", 2.0), ("kv-cache-utilization-scorer", 2.0), ("prefix-cache-scorer", 3.0),
        ("no-hit-lru-scorer", 2.0), ("max-score-picker", None)]
    assert doc["plugins"][-1]["implicit"] is True


def test_show_running_flags_a_config_the_epp_rejects(cli, fake, cluster):
    bad = "apiVersion: inference.networking.x-k8s.io/v1alpha1\nkind: EndpointPickerConfig\nplugins:\n" \
          "- type: kv-cache-scorer\n"
    fake.context()
    cluster.running("custom-plugins.yaml", bad)
    r = cli("scheduler", "show", "--running", "--context", CTX)
    assert r.exit_code == 0
    assert "ConfigMap gaie-inference-scheduling-epp/custom-plugins.yaml:4:9: error" in r.stderr
    assert yaml.safe_load(r.stdout)["plugins"] == [{"type": "kv-cache-scorer"}]


def test_show_profile_and_running_exclude_each_other(cli):
    r = cli("scheduler", "show", "--profile", "random", "--running")
    assert r.exit_code == 2 and "exclude each other" in r.stderr


def test_show_profile_prints_the_table_and_the_yaml(cli):
    r = cli("scheduler", "show", "--profile", "default", "--scorer-weight", "prefix-cache-scorer=5")
    assert r.exit_code == 0, r.stderr
    doc = yaml.safe_load(r.stdout)
    assert doc["schedulingProfiles"][0]["plugins"][2] == {"pluginRef": "prefix-cache-scorer", "weight": 5}
    assert "prefix-cache-scorer" in r.stderr and "picker (added by the EPP)" in r.stderr


@pytest.mark.parametrize("args", [("show", "--profile", "round-robin"), ("show", "--profile", "random", "--running"),
                                  ("apply", "--scheduler", "kv-cahce"), ("metrics", "-n", "Bad_NS")])
def test_json_failures_are_one_document(cli, fp, fake_tools_on_path, args):
    r = cli("scheduler", *args, "--json")
    assert r.exit_code == 2, r.stderr
    doc = json.loads(r.stdout)
    assert doc["status"] == "failed" and doc["exit_code"] == 2 and doc["error"]
    assert list(fp.calls) == []
