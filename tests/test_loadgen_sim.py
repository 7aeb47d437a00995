"""The load engine against the real `llmd sim` and its fault injection (x-llmd-fault header), plus prefix-cache
hits reported by the sim for the shared-prefix workload."""
# The IDs cited here (rule N, F##) are defined in docs/behaviours.md.

from __future__ import annotations

import asyncio
import json
from time import perf_counter_ns

import pytest

from llmd.loadgen import workloads
from llmd.loadgen.client import Client, Target, Timeouts
from llmd.loadgen.engine import Progress, Stage, run_stage
from llmd.ops.endpoint import Endpoint

pytestmark = pytest.mark.timeout(30)

sim_server = pytest.importorskip("llmd.sim.server")
sim_config = pytest.importorskip("llmd.sim.config")


@pytest.fixture(scope="module")
def sim():
    cfg = sim_config.SimConfig(port=0, max_num_seqs=64, stall_cap=3.0, enable_kvcache=True)
    with sim_server.run_in_thread(cfg) as s:
        yield s


def request(url: str, fault: str = "", *, read_s: float = 5.0):
    body = workloads.synthetic(api="chat", model="random", input_tokens=8, output_tokens=6, pool=1).body(0)

    async def go():
        client = Client(Target(url, "/v1/chat/completions"), Timeouts(connect_s=2, read_s=read_s, total_s=10))
        try:
            hdr = f"x-llmd-fault: {fault}\r\n".encode() if fault else b""
            return await client.request(body.render("n"), "sim-1", headers=hdr)
        finally:
            client.close()
    return asyncio.run(go())


def test_sim_stream_ok_with_usage(sim):
    res = request(sim.url)
    assert res.ok, res.error
    assert res.usage["completion_tokens"] == 6 and res.content_events >= 1 and res.finish_reason


@pytest.mark.parametrize(("fault", "failure"), [
    ("status=503", "http_5xx"),
    ("rate_limit", "http_4xx"),
    ("error_frame", "stream_error"),
    ("early_close", "truncated"),
    ("malformed_frame", "malformed_stream"),
    ("html_200", "malformed_stream"),
    ("no_choices", "malformed_stream"),
])
def test_sim_faults_are_classified(sim, fault, failure):
    res = request(sim.url, fault)
    assert not res.ok and res.failure == failure, (res.failure, res.error)


@pytest.mark.parametrize("fault", ["crlf", "split_frames"])
def test_sim_crlf_and_split_frames_parse(sim, fault):  # F46
    res = request(sim.url, fault)
    assert res.ok, res.error


def test_sim_stall_is_stalled(sim):  # F49
    res = request(sim.url, "stall", read_s=0.4)
    assert res.failure in ("stalled", "timeout") and "0.4" in res.error


def test_shared_prefix_hits_the_sim_prefix_cache(sim):
    wl = workloads.shared_prefix(api="chat", model="random", groups=2, prompts_per_group=4, system_prompt_len=64,
                                 question_len=8, output_tokens=2, seed=1)

    async def go():
        return await run_stage(Endpoint("sim", "test sim", base_url=sim.url),
                               "/v1/chat/completions", Timeouts(), wl, Stage("c1", "closed", concurrency=1,
                                                                            requests=8),
                               run_id="sp", seed=1, t0_ns=perf_counter_ns(), progress=Progress(),
                               stop=asyncio.Event())
    run = asyncio.run(go())
    assert all(r["ok"] for r in run.records), json.dumps(run.records[0])
    hits = [r["cached_tokens"] for r in run.records]
    if all(h is None for h in hits):
        pytest.skip("this sim build does not report usage.prompt_tokens_details.cached_tokens")
    # after the first request of each group, its system prompt is cached
    assert sum(1 for h in hits if h and h >= 48) >= 5


def test_shared_prefix_stages_and_runs_start_cold(sim, tmp_path):
    # each stage of a sweep (and each run) gets its own group prefixes: a later stage must not inherit the
    # previous stage's (or run's) cached prefixes, or its hit rate and TTFT are not comparable with the first
    from llmd.ops.perf import PerfOptions, run_perf
    from llmd.ui import Ui

    def run(name):
        opts = PerfOptions(model="random", workload="shared-prefix", groups=2, prompts_per_group=3,
                           system_prompt_len=64, question_len=8, output_tokens=2, sweep="1,2", requests=6,
                           output=str(tmp_path / name))
        return run_perf(Endpoint("sim", "test sim", base_url=sim.url), opts, Ui())

    for report in (run("a.json"), run("b.json")):
        for stage in report.stages:
            recs = [r for r in report.records if r["stage"] == stage["name"]]
            # at concurrency 2 two prompts of one group race, so which one the simulator sees first is not the lowest
            # index; a cold stage means some request of every group found nothing cached
            coldest: dict[int, int] = {}
            for r in recs:
                coldest[r["group"]] = min(coldest.get(r["group"], r["cached_tokens"]), r["cached_tokens"])
            assert len(coldest) == 2
            assert all(c == 0 for c in coldest.values()), stage["name"]
            assert sum(1 for r in recs if r["cached_tokens"] >= 48) >= 3  # later prompts of each group hit
