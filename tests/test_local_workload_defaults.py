"""The local platform's shared-prefix defaults (presets/local.yaml `workload:`): sized from the same preset's
replicas and KV cache so that scheduling is visible without workload flags; explicit flags always win."""

from __future__ import annotations

import json

from llmd.cli.perf_options import _PERF_FLAGS, build_perf_options
from llmd.platform import local
from llmd.platform.kubernetes import KubernetesPlatform

SHARED = {"workload": "shared-prefix"}


def _blocks(opts) -> float:
    return opts.groups * opts.system_prompt_len / local.preset()["sim"]["block-size"]


def test_local_shared_prefix_defaults_are_about_6x_one_replica_and_fit_the_pool():
    preset = local.preset()
    replica = preset["sim"]["kv-cache-size"]  # blocks of one replica's prefix cache
    generic = build_perf_options(SHARED)
    assert _blocks(generic) <= replica  # why the platform needs its own: the generic set fits one replica's cache
    opts = build_perf_options(SHARED, local.LocalPlatform().perf_defaults())
    ratio = _blocks(opts) / replica
    assert 5.5 <= ratio <= 6.5, ratio  # upstream's benchmark: ~6x one pod
    assert _blocks(opts) < 0.8 * replica * preset["replicas"]  # and under the pool's (upstream: ~0.73)
    assert (opts.groups, opts.system_prompt_len) == (48, 1024)  # what README and docs/local-platform.md state
    helps = {f: text for f, _, _, text in _PERF_FLAGS}
    assert f"local: {opts.groups})" in helps["groups"] and f"local: {opts.system_prompt_len})" in helps[
        "system_prompt_len"]


def test_explicit_flags_win_and_other_workloads_and_platforms_keep_the_generic_defaults():
    defaults = local.perf_defaults()
    opts = build_perf_options({**SHARED, "groups": 4, "system_prompt_len": 64}, defaults)
    assert (opts.groups, opts.system_prompt_len) == (4, 64)
    opts = build_perf_options({**SHARED, "groups": 4}, defaults)
    assert (opts.groups, opts.system_prompt_len) == (4, 1024)  # one flag given: the other still comes from the preset
    generic = build_perf_options(SHARED)
    assert build_perf_options({"workload": "synthetic"}, defaults) == build_perf_options({"workload": "synthetic"})
    assert build_perf_options(SHARED, KubernetesPlatform().perf_defaults()) == generic


def test_an_embedded_sim_is_not_the_local_stack_so_it_keeps_the_generic_defaults(cli):
    r = cli("test", "--platform", "local", "--sim", "--perf", "--workload", "shared-prefix", "--requests", "2",
            "--output-tokens", "2", "--json")
    assert r.exit_code == 0, r.stderr
    config = json.loads(r.stdout)["perf"]["config"]
    assert (config["groups"], config["system_prompt_len"]) == (8, 512)
