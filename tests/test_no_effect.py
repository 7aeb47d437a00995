"""A flag with no effect in its combination is an error or a warning, never silently ignored."""

from __future__ import annotations

import json

import pytest


@pytest.mark.parametrize(("args", "needle"), [
    (("--concurrency", "4"), "--concurrency takes effect only with --perf"),
    (("--requests", "9", "--workload", "shared-prefix"), "--requests, --workload take effect only with --perf"),
    (("--perf", "--groups", "4"), "--groups applies only to --workload shared-prefix (this run: --workload synthetic)"),
    (("--perf", "--workload", "shared-prefix", "--input-tokens", "9"), "--input-tokens applies only to --workload "
                                                                         "synthetic"),
])
def test_inert_perf_flags_are_bad_input_before_anything_starts(cli, fp, args, needle):
    r = cli("test", "--sim", "--json", *args)  # fp is strict: the simulator never starts
    assert r.exit_code == 2, r.stderr
    doc = json.loads(r.stdout)
    assert needle in doc["error"]["message"] and doc["smoke"] is None


def test_deployment_settings_warn_on_test_sim(cli):
    r = cli("test", "--sim", "--replicas", "3", "--tp", "1", "--max-tokens", "4")
    assert r.exit_code == 0, r.stderr
    assert "! --replicas, --tensor-parallel have no effect on llmd test with --sim" in r.stderr


def test_settings_test_reads_do_not_warn(cli):
    r = cli("test", "--sim", "--model", "org/tiny", "--max-model-len", "2048", "--max-tokens", "4")
    assert r.exit_code == 0 and "no effect" not in r.stderr


def test_replicas_zero_is_warned(cli):
    r = cli("render", "--replicas", "0", "--out", "-")
    assert r.exit_code == 0 and "replicas 0: no decode pods" in r.stderr

