"""One reachability budget for every cluster verb, and `llmd test` resolving the context as the others do.
Real kubectl (`make tools`) against real sockets on 127.0.0.1."""

from __future__ import annotations

import json
import time

import pytest

from conftest import write_kubeconfig


@pytest.mark.integration
@pytest.mark.parametrize("argv", [("status",), ("cleanup", "--force"), ("test",), ("doctor",)])
def test_a_server_that_never_answers_costs_one_budget_with_a_line_saying_why(cli, silent_cluster, argv):
    kc, server = silent_cluster
    t0 = time.monotonic()
    r = cli(*argv, "--kubeconfig", str(kc))
    elapsed = time.monotonic() - t0
    assert r.exit_code == 4, r.stderr
    assert elapsed < 15, f"{argv[0]} took {elapsed:.1f} s"
    assert f"waiting for the API server {server} of context deadctx" in r.stderr
    assert "cluster unreachable" in r.stderr and "deadctx" in r.stderr


@pytest.mark.integration
def test_llmd_test_without_a_current_context_says_so_and_offers_sim_and_url(cli, real_tools, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", f"{real_tools}:/usr/bin:/bin")
    monkeypatch.setenv("HOME", str(tmp_path))
    kc = write_kubeconfig(tmp_path / "kubeconfig", "https://127.0.0.1:9", current=False)
    r = cli("test", "--kubeconfig", str(kc), "--json")
    assert r.exit_code == 4, r.stderr
    err = json.loads(r.stdout)["error"]
    assert "no current context" in err["message"] and "localhost:8080" not in r.stderr
    assert "--context" in err["hint"] and "--sim" in err["hint"] and "--url" in err["hint"]


@pytest.mark.integration
def test_llmd_test_names_the_resolved_context_not_current(cli, dead_cluster):
    kc, _ = dead_cluster
    r = cli("test", "--kubeconfig", str(kc))
    assert r.exit_code == 4, r.stderr
    assert "context deadctx" in r.stderr and "(current" not in r.stderr
    assert "--sim" in r.stderr
