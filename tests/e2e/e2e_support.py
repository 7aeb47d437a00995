"""Helpers of the e2e tests (imported by bare name; tests/e2e/conftest.py puts this directory on sys.path)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass

import yaml
from cluster import LocalCluster

# A token-shaped dummy: every llmd run asserts it never appears in its output.
HF_TOKEN = "hf_e2eDummyTokenThatMustNeverBeShown0123"


@dataclass
class Run:
    argv: list[str]
    code: int
    out: str
    err: str

    def json(self):
        return json.loads(self.out)


def kubectl_json(cluster: LocalCluster, tools, *args: str) -> dict:
    return json.loads(cluster.kubectl(tools["kubectl"], *args, "-o", "json").stdout)


def namespaced_objects(cluster: LocalCluster, tools, ns: str, selector: str | None = None) -> list[str]:
    """Every object of every listable namespaced kind in `ns` (what cleanup must have removed), or only those
    matching the label `selector`."""
    k = tools["kubectl"]
    kinds = cluster.kubectl(k, "api-resources", "--namespaced=true", "--verbs=list", "-o", "name").stdout.split()
    skip = {"events", "events.events.k8s.io"}
    labels = ("-l", selector) if selector else ()
    out = cluster.kubectl(k, "get", ",".join(x for x in kinds if x not in skip), "-n", ns, *labels,
                          "--ignore-not-found", "-o", "json", timeout=120).stdout
    items = yaml.safe_load(out).get("items", []) if out.strip() else []
    return [f"{i['kind']}/{i['metadata']['name']}" for i in items]


def interrupt(p: subprocess.Popen, when: str, timeout: float = 120) -> tuple[int, str, str]:
    """Send SIGINT to `llmd` once `when` appears on its stderr; return (exit code, stdout, stderr)."""
    import selectors

    assert p.stderr is not None
    sel = selectors.DefaultSelector()
    sel.register(p.stderr, selectors.EVENT_READ)
    seen = ""
    deadline = time.monotonic() + timeout
    while when not in seen:
        if time.monotonic() > deadline or p.poll() is not None:
            break
        for _key, _ in sel.select(timeout=0.5):
            line = p.stderr.readline()
            seen += line
    os.killpg(p.pid, signal.SIGINT) if p.poll() is None else None
    out, err = p.communicate(timeout=60)
    return p.returncode, out, seen + err
