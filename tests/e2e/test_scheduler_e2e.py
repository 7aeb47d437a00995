"""`llmd scheduler` on a real API server with the real kubectl/helm/helmfile: show --running reads what the EPP was
started with; apply --dry-run changes nothing; apply syncs only the inferencepool release, rolls the EPP (new pod,
old gone), keeps every model-server pod (UIDs) and the EPP then reads the new config; a second apply is a no-op."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from e2e_support import kubectl_json

pytestmark = pytest.mark.e2e

SIM = ("--accelerator", "sim", "--no-hf-token", "--replicas", "2", "--timeout", "180")
EPP_SELECTOR = "inferencepool=gaie-inference-scheduling-epp"
MODEL_SELECTOR = "llm-d.ai/inference-serving=true"


def _uids(cluster, tools, ns: str, selector: str) -> set[str]:
    pods = kubectl_json(cluster, tools, "get", "pods", "-n", ns, "-l", selector)["items"]
    return {p["metadata"]["uid"] for p in pods if not p["metadata"].get("deletionTimestamp")}


def _revisions(cluster, tools, ns: str) -> dict[str, int]:
    """helm's revision per release: a sync that touches a release raises it."""
    res = subprocess.run([tools["helm"], "list", "-n", ns, "--output", "json",
                          f"--kubeconfig={cluster.kubeconfig_path}"],
                         capture_output=True, text=True, timeout=60, check=True, env={**os.environ, **cluster.env()})
    return {r["name"]: int(r["revision"]) for r in json.loads(res.stdout)}


def test_scheduler_show_and_apply(cluster, tools, crds, llmd, ns):
    r = llmd("deploy", "-n", ns, *SIM, "--json", timeout=300)
    assert r.code == 0, r.err

    shown = llmd("scheduler", "show", "--running", "-n", ns, "--json")
    assert shown.code == 0, shown.err
    doc = shown.json()
    assert doc["errors"] == [] and [p["plugin"] for p in doc["plugins"]][:3] == [
        "queue-scorer", "kv-cache-utilization-scorer", "prefix-cache-scorer"]
    before_file = doc["config_file"]

    dry = llmd("scheduler", "apply", "-n", ns, *SIM, "--scheduler", "random", "--dry-run", "--json")
    assert dry.code == 0, dry.err
    plan = dry.json()
    assert plan["status"] == "planned" and "+  - type: random-picker" in plan["diff"]
    assert llmd("scheduler", "show", "--running", "-n", ns, "--json").json()["config_file"] == before_file

    revisions = _revisions(cluster, tools, ns)
    models = _uids(cluster, tools, ns, MODEL_SELECTOR)
    epp = _uids(cluster, tools, ns, EPP_SELECTOR)
    assert len(models) == 2 and epp

    r = llmd("scheduler", "apply", "-n", ns, *SIM, "--scheduler", "random", "--json", timeout=300)
    assert r.code == 0, r.err
    applied = r.json()
    assert applied["status"] == "applied" and applied["changed"] is True
    after = _revisions(cluster, tools, ns)
    assert after["gaie-inference-scheduling"] == revisions["gaie-inference-scheduling"] + 1
    assert {k: v for k, v in after.items() if k != "gaie-inference-scheduling"} == \
        {k: v for k, v in revisions.items() if k != "gaie-inference-scheduling"}, "other releases were synced"
    assert _uids(cluster, tools, ns, MODEL_SELECTOR) == models, "model-server pods were restarted"
    new_epp = _uids(cluster, tools, ns, EPP_SELECTOR)
    assert new_epp and not (new_epp & epp), "the EPP did not roll"

    running = llmd("scheduler", "show", "--running", "-n", ns, "--json").json()
    assert running["config_file"] == applied["after_file"] != before_file
    assert [p["type"] for p in running["plugins"]] == ["random-picker"]

    again = llmd("scheduler", "apply", "-n", ns, *SIM, "--scheduler", "random", "--json", timeout=120)
    assert again.code == 0, again.err
    assert again.json()["status"] == "unchanged"

    r = llmd("cleanup", "-n", ns, "--force", timeout=300)
    assert r.code == 0, r.err
