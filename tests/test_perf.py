"""run_perf end to end on 127.0.0.1: report schema, CSV, sweep, goodput/SLO, breaches (exit 8), Ctrl-C partial
report (exit 130/143), port-forward labelling, client self-measurement, multi-process workers."""
# The IDs cited here (rule N, F##) are defined in docs/behaviours.md.

from __future__ import annotations

import csv
import io
import json
import os
import signal
import threading
from pathlib import Path

import jsonschema
import pytest
from rich.console import Console

import test_loadgen_server
from llmd.cli.perf_view import PerfTable
from llmd.errors import ExitCode, Interrupted, ThresholdBreached
from llmd.loadgen.engine import Stage, StageRun
from llmd.loadgen.metrics import METRICS
from llmd.loadgen.report import CSV_FIELDS, SCHEMA, summarize_stage
from llmd.loadgen.report_schema import REPORT_SCHEMA
from llmd.ops.perf import PerfOptions, check_thresholds, run_perf
from llmd.ui import THEME, Ui

pytestmark = pytest.mark.timeout(30)
stream_server = test_loadgen_server.stream_server  # fixture


class EP:  # a llmd.loadgen.endpoint.LiveEndpoint that counts its revivals and never loses its tunnel
    def __init__(self, url: str, via_port_forward: bool = False) -> None:
        self.url, self.via_port_forward, self.generation = url, via_port_forward, 0
        self.headers: dict[str, str] = {}
        self.ensured = 0

    def ensure_alive(self) -> None:
        self.ensured += 1

    def lost_during(self, sent_ns, end_ns) -> bool:
        return False


def opts(**kw) -> PerfOptions:
    base = {"model": "m", "input_tokens": 8, "output_tokens": 4, "stall_timeout": 0.5, "request_timeout": 5.0}
    base.update(kw)
    return PerfOptions(**base)


def test_report_json_schema_and_csv(stream_server, tmp_path):
    srv = stream_server(ttft_s=0.01, tokens=4, cached=3)
    out, csv_path = tmp_path / "r.json", tmp_path / "r.csv"
    ep = EP(srv.url)
    report = run_perf(ep, opts(concurrency=3, requests=12, output=str(out), csv=str(csv_path)), Ui())
    doc = json.loads(out.read_text())
    jsonschema.validate(doc, REPORT_SCHEMA)
    assert doc["schema"] == SCHEMA and doc["complete"] is True and doc["breaches"] == []
    assert doc["metric_definitions"] == METRICS
    assert doc["config"]["concurrency"] == 3 and doc["config"]["model"] == "m"
    assert doc["environment"]["via_port_forward"] is False and doc["environment"]["event_loop"] in ("uvloop", "asyncio")
    (stage,) = doc["stages"]
    assert stage["requests"] == {"measured": 12, "ok": 12, "failed": 0, "warmup_excluded": 0, "cancelled": 0}
    for metric in ("ttft_ms", "itl_ms", "tpot_ms", "e2e_ms", "queue_ms"):
        assert set(stage[metric]) == {"count", "mean", "p50", "p90", "p95", "p99", "max", "min"}
    assert stage["ttft_ms"]["p50"] >= 10
    assert stage["tokens"]["output"] == 48 and stage["tokens"]["output_source"] == "usage"
    assert stage["tokens"]["cached"]["cached_tokens"] == 36
    assert stage["throughput"]["request_rate"] > 0 and stage["client"]["cpu_s"] >= 0
    assert len(doc["records"]) == 12 and "sent_ns" not in doc["records"][0]
    rows = list(csv.DictReader(csv_path.open()))
    assert len(rows) == 12 and tuple(rows[0]) == CSV_FIELDS
    assert report.files == {"json": str(out), "csv": str(csv_path)}
    assert ep.ensured == 1  # checked between stages
    assert oct(out.stat().st_mode & 0o777) == "0o600"


def test_default_report_goes_to_state_dir(stream_server):
    srv = stream_server(tokens=2)
    report = run_perf(EP(srv.url), opts(requests=2), Ui())
    path = Path(report.files["json"])
    assert path.is_file() and path.parent == Path(os.environ["LLMD_STATE_DIR"]) / "perf"


def test_sweep_one_stage_each(stream_server, tmp_path):
    srv = stream_server(tokens=2)
    report = run_perf(EP(srv.url), opts(sweep="1,3", requests=6), Ui())
    assert [s["label"] for s in report.stages] == ["c=1", "c=3"]
    assert [s["requests"]["ok"] for s in report.stages] == [6, 6]
    report = run_perf(EP(srv.url), opts(sweep="rate=40,80", requests=4), Ui())
    assert [s["mode"] for s in report.stages] == ["open", "open"] and report.stages[1]["rate"] == 80


def test_error_rate_breach_and_failure_classes(stream_server):  # F41
    srv = stream_server(fault="status=503")
    report = run_perf(EP(srv.url), opts(concurrency=2, requests=6), Ui())
    jsonschema.validate(report.to_dict(), REPORT_SCHEMA)
    (stage,) = report.stages
    assert stage["failures"] == {"http_5xx": 6} and stage["error_rate"] == 1.0
    assert report.breaches and "error rate 100.00% > --max-error-rate 1.00%" in report.breaches[0]
    with pytest.raises(ThresholdBreached) as exc:
        check_thresholds(report)
    assert exc.value.exit_code == ExitCode.THRESHOLD == 8


def test_429_counted_as_shed(stream_server):  # F42
    srv = stream_server(fault="rate_limit")
    report = run_perf(EP(srv.url), opts(requests=3, max_error_rate=1.0), Ui())
    (stage,) = report.stages
    assert stage["shed_429"] == 3 and stage["failures"] == {"http_4xx": 3}
    assert report.breaches == []  # within --max-error-rate 1.0
    assert all(r["retry_after"] == "2" for r in report.records)


def test_goodput_and_slo_breach(stream_server):
    srv = stream_server(ttft_s=0.03, tokens=3)
    good = run_perf(EP(srv.url), opts(concurrency=2, requests=6, slo="ttft=1s,e2e=2s"), Ui())
    jsonschema.validate(good.to_dict(), REPORT_SCHEMA)
    slo = good.stages[0]["slo"]
    assert slo["attainment"] == 1.0 and slo["goodput"] > 0 and good.breaches == []
    bad = run_perf(EP(srv.url), opts(concurrency=2, requests=6, slo="ttft=5ms,attainment=0.5"), Ui())
    assert bad.stages[0]["slo"]["attainment"] == 0.0 and bad.stages[0]["slo"]["goodput"] == 0.0
    assert "SLO attainment 0.0% < target 50%" in bad.breaches[0]


def test_port_forward_is_labelled(stream_server, tmp_path):
    srv = stream_server(tokens=2)
    report = run_perf(EP(srv.url, via_port_forward=True), opts(requests=2), Ui())
    assert report.environment["via_port_forward"] is True
    assert any("port-forward" in w for w in report.warnings)


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupt_writes_partial_report(stream_server, tmp_path, signum, code):  # F53
    srv = stream_server(tokens=3, fault="stall")  # streams never finish by themselves
    out = tmp_path / "partial.json"
    timer = threading.Timer(0.4, os.kill, (os.getpid(), signum))
    timer.start()
    with pytest.raises(Interrupted) as exc:
        run_perf(EP(srv.url), opts(concurrency=2, duration=20, stall_timeout=30, output=str(out)), Ui())
    timer.cancel()
    assert exc.value.exit_code == code and str(out) in exc.value.message
    doc = json.loads(out.read_text())
    jsonschema.validate(doc, REPORT_SCHEMA)
    assert doc["complete"] is False and doc["stages"][0]["complete"] is False
    assert doc["stages"][0]["requests"]["cancelled"] == 2
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers restored


def test_client_bound_warning_from_self_measurement():
    stage = Stage("c1", "closed", concurrency=1)
    rec = {"warmup": False, "ok": True, "failure": None, "status": 200, "sent_ns": 1, "end_ns": 10**9,
           "ttft_ms": 1.0, "queue_ms": 0.0, "tpot_ms": 1.0, "e2e_ms": 5.0, "output_tokens": 3, "input_tokens": 5,
           "token_source": "usage", "cached_tokens": None, "itl_max_ms": 1.0}
    busy = StageRun(stage, [rec], [1.0], 0, 0, 10**9, cpu_s=0.95, loop_lag_ms=[0.1], cancelled=0, interrupted=False)
    idle = StageRun(stage, [rec], [1.0], 0, 0, 10**9, cpu_s=0.10, loop_lag_ms=[0.1], cancelled=0, interrupted=False)
    assert summarize_stage([busy], {}, 0.0)["client"]["client_bound"] is True
    assert summarize_stage([idle], {}, 0.0)["client"]["client_bound"] is False


def test_multi_process_workers_merge(stream_server):
    srv = stream_server(tokens=2)
    report = run_perf(EP(srv.url), opts(concurrency=4, requests=10, workers=2), Ui())
    (stage,) = report.stages
    assert stage["requests"]["ok"] == 10 and stage["client"]["workers"] == 2
    assert {r["worker"] for r in report.records} == {0, 1}
    assert len({r["id"] for r in report.records}) == 10


def test_benchmark_report_v02_export(stream_server, tmp_path):
    srv = stream_server(tokens=3)
    br = tmp_path / "br.json"
    ui = Ui()
    ui.err = Console(file=io.StringIO(), force_terminal=False, width=400, theme=THEME)
    report = run_perf(EP(srv.url), opts(sweep="1,2", requests=4, benchmark_report=str(br)), ui, view=PerfTable(ui))
    paths = [Path(p) for p in report.files["benchmark_report"]]
    assert [p.name for p in paths] == ["br-c1.json", "br-c2.json"]
    # one file per stage, named after the stage: the user asked for br.json, so say where they went
    assert f"benchmark reports (v0.2): {paths[0]}, {paths[1]}" in ui.err.file.getvalue()
    doc = json.loads(paths[1].read_text())
    assert set(doc) == {"version", "run", "scenario", "results"} and doc["version"] == "0.2"
    assert doc["run"]["eid"] == report.environment["run_id"] and doc["run"]["time"]["duration"].startswith("PT")
    std = doc["scenario"]["load"]["standardized"]
    assert std["tool"] == "llmd" and std["concurrency"] == 2 and std["stage"] == 1 and std["source"] == "random"
    assert std["input_seq_len"] == {"distribution": "fixed", "value": 8}
    agg = doc["results"]["request_performance"]["aggregate"]
    assert set(agg) == {"requests", "latency", "throughput"}
    assert agg["requests"]["total"] == 4 and agg["requests"]["failures"] == 0
    units = {"time_to_first_token": "ms", "time_per_output_token": "ms/token", "inter_token_latency": "ms/token",
             "request_latency": "ms"}
    assert {k: v["units"] for k, v in agg["latency"].items()} == units
    assert all("mean" in v for v in agg["latency"].values())
    assert agg["throughput"]["request_rate"]["units"] == "queries/s"
    assert agg["requests"]["output_length"] == {"units": "count", "mean": 3.0, "min": 3.0, "p50": 3.0, "p90": 3.0,
                                                "p95": 3.0, "p99": 3.0, "max": 3.0}


def test_live_progress_only_on_a_terminal(stream_server, monkeypatch):
    import io

    from rich.console import Console

    from llmd.ui import THEME

    monkeypatch.setenv("TERM", "xterm")  # rich Live draws nothing on TERM=dumb
    srv = stream_server(ttft_s=0.1, tokens=2)
    ui = Ui()
    buf = io.StringIO()
    ui.err = Console(file=buf, force_terminal=True, width=120, theme=THEME)
    assert ui.interactive
    run_perf(EP(srv.url), opts(concurrency=2, requests=6), ui, view=PerfTable(ui))
    assert "in flight" in buf.getvalue() and "TTFT p50" in buf.getvalue()
    quiet = Ui()
    quiet.err = Console(file=io.StringIO(), force_terminal=False, theme=THEME)
    assert not quiet.interactive
    run_perf(EP(srv.url), opts(concurrency=2, requests=2), quiet, view=PerfTable(quiet))
    assert "in flight" not in quiet.err.file.getvalue()


def test_requests_cut_just_before_a_tunnel_loss_was_seen_count_as_tunnel_lost():
    """The watchdog sees a dying kubectl a moment after its sockets close: a request truncated in that
    window kept the old generation. After the stage the tunnel's loss windows decide (F37)."""
    import asyncio
    from types import SimpleNamespace

    from llmd.ops.perf import _attribute_tunnel_losses

    class Tunnelled:
        probed = 0
        via_port_forward = True

        def ensure_alive(self):
            self.probed += 1

        def lost_during(self, sent_ns, end_ns):
            return sent_ns <= 2_000 and end_ns >= 1_500  # one loss window around t=1.5-2.0 us

    recs = [
        {"failure": "truncated", "sent_ns": 1_000, "end_ns": 1_600},  # cut by the loss
        {"failure": "timeout", "sent_ns": 1_900, "end_ns": 9_000},  # in flight across it
        {"failure": "truncated", "sent_ns": 5_000, "end_ns": 6_000},  # later: a real truncation
        {"failure": "http_5xx", "sent_ns": 1_000, "end_ns": 1_700},  # the server answered: not the tunnel
        {"failure": None, "sent_ns": 1_000, "end_ns": 1_700},
    ]
    ep = Tunnelled()
    asyncio.run(_attribute_tunnel_losses(ep, [SimpleNamespace(records=recs)]))
    assert [r["failure"] for r in recs] == ["tunnel_lost", "tunnel_lost", "truncated", "http_5xx", None]
    assert ep.probed == 1


def test_direct_endpoints_are_left_alone():
    import asyncio
    from types import SimpleNamespace

    from llmd.ops.perf import _attribute_tunnel_losses

    recs = [{"failure": "truncated", "sent_ns": 1, "end_ns": 2}]
    direct = SimpleNamespace(url="http://127.0.0.1:1", via_port_forward=False)
    asyncio.run(_attribute_tunnel_losses(direct, [SimpleNamespace(records=recs)]))
    assert recs[0]["failure"] == "truncated"


def test_table_shows_prefix_cache_hits_when_reported(stream_server):
    import io

    from rich.console import Console

    from llmd.ui import THEME

    srv = stream_server(tokens=2, cached=3)
    ui = Ui()
    ui.err = Console(file=io.StringIO(), force_terminal=False, width=200, theme=THEME)
    report = run_perf(EP(srv.url), opts(concurrency=2, requests=4), ui, view=PerfTable(ui))
    cached = report.stages[0]["tokens"]["cached"]
    out = ui.err.file.getvalue()
    assert f"prefix cache: c=2 {cached['hit_rate']:.1%} of prompt tokens cached" in out, out
    plain = Ui()
    plain.err = Console(file=io.StringIO(), force_terminal=False, width=200, theme=THEME)
    run_perf(EP(stream_server(tokens=2).url), opts(requests=2), plain, view=PerfTable(plain))
    assert "prefix cache" not in plain.err.file.getvalue()  # the server reported no cached_tokens
    zero = Ui()
    zero.err = Console(file=io.StringIO(), force_terminal=False, width=200, theme=THEME)
    run_perf(EP(stream_server(tokens=2, cached=0).url), opts(requests=2), zero, view=PerfTable(zero))
    assert "prefix cache" not in zero.err.file.getvalue()  # 0 hits on a synthetic workload: noise


def test_table_caption_defines_every_abbreviated_column(stream_server):
    ui = Ui()
    ui.err = Console(file=io.StringIO(), force_terminal=False, width=300, theme=THEME)
    run_perf(EP(stream_server(tokens=2).url), opts(requests=2), ui, view=PerfTable(ui))
    out = " ".join(ui.err.file.getvalue().split())  # the caption wraps at the table's width
    for words in ("times in ms", "tok/s = output tokens/s", "q99 = client queue delay p99",
                  "good = goodput (req/s meeting --slo)", "CPU = busiest client process"):
        assert words in out, words


def test_reports_write_through_devices_fifos_and_links_never_replacing_them(tmp_path):
    import os
    import threading

    from llmd.loadgen.report import _atomic_write

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(open(fifo).read()))
    reader.start()
    _atomic_write(str(fifo), '{"ok": true}')
    reader.join(timeout=5)
    assert got == ['{"ok": true}'] and fifo.is_fifo()

    real = tmp_path / "real.json"
    real.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(real)
    _atomic_write(str(link), "new")
    assert link.is_symlink() and real.read_text() == "new"

    plain = tmp_path / "plain.json"
    _atomic_write(str(plain), "x")
    assert plain.read_text() == "x" and not any(p.name.startswith(".llmd-perf-") for p in tmp_path.iterdir())
