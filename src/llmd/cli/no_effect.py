"""Flags that would do nothing in this combination: an error when a whole option group is inert (perf flags
without --perf, a workload's flags with another workload), a warning when `llmd test` is given a setting that
only describes a deployment (it deploys nothing)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from llmd.errors import ConfigError

WORKLOAD_ONLY = {  # flags read by one workload only (loadgen/workloads.py)
    "shared-prefix": ("groups", "prompts_per_group", "system_prompt_len", "question_len"),
    "synthetic": ("input_tokens", "dist", "dist_spread"),
    "file": ("dataset",),
}
# Settings `llmd test` reads per endpoint: everything else describes a deployment it does not make.
TEST_READS = {
    "cluster": {"namespace", "kube_context", "kubeconfig", "environment", "release_postfix", "model", "platform"},
    "sim": {"model", "max_model_len"},
    "url": {"model"},
}


def _flag(field: str) -> str:
    return "--" + field.replace("_", "-")


def check_perf_flags(perf: bool, perf_values: dict[str, Any]) -> None:
    given = [f for f, v in perf_values.items() if v is not None]
    if given and not perf:
        raise ConfigError(f"{', '.join(_flag(f) for f in given)} {'takes' if len(given) == 1 else 'take'} effect "
                          "only with --perf",
                          hint="add --perf to run the load test, or drop them")
    workload = perf_values.get("workload") or "synthetic"
    if workload == "file":
        return  # --dataset without --workload file is PerfOptions' error, with its own message
    for owner, fields in WORKLOAD_ONLY.items():
        stray = [f for f in fields if perf_values.get(f) is not None]
        if owner != workload and stray and owner != "file":
            raise ConfigError(f"{', '.join(_flag(f) for f in stray)} {'applies' if len(stray) == 1 else 'apply'} "
                              f"only to --workload {owner} "
                              f"(this run: --workload {workload})",
                              hint=f"add --workload {owner}, or drop {', '.join(_flag(f) for f in stray)}")


def warn_test_settings(flags: dict[str, Any], flag_names: dict[str, str], endpoint: str,
                       warn: Callable[[str], None]) -> None:
    """`llmd test --replicas 3 --sim`: the simulator does not read --replicas; say so instead of ignoring it."""
    inert = [flag_names.get(f, _flag(f)) for f, v in flags.items() if v is not None and f not in TEST_READS[endpoint]]
    if inert:
        what = {"cluster": "the deployed stack", "sim": "--sim", "url": "--url"}[endpoint]
        warn(f"{', '.join(inert)} {'has' if len(inert) == 1 else 'have'} no effect on llmd test with {what}: "
             "llmd test deploys nothing (pass deployment settings to llmd deploy)")
