"""`llmd test --perf`: run the load stages against an endpoint and produce a PerfReport.

Contract: `run_perf(endpoint, opts, ui) -> PerfReport`. It does NOT raise ThresholdBreached: the caller decides,
usually with `check_thresholds(report)` (exit 8). It always writes the JSON report (to --output, else under the
state directory) and --csv when given. On Ctrl-C/SIGTERM it stops issuing, drains in-flight requests for 2 s,
cancels the rest, writes a partial report (`complete: false`) and raises Interrupted (exit 130/143).
"""

from __future__ import annotations

import asyncio
import os
import platform
import signal
import time
import uuid
from datetime import datetime, timezone
from typing import Any

from llmd import __version__
from llmd.errors import Interrupted, TestFailed, ThresholdBreached
from llmd.loadgen import workloads
from llmd.loadgen.client import Timeouts
from llmd.loadgen.endpoint import LiveEndpoint
from llmd.loadgen.engine import Progress, StageRun, run_stage
from llmd.loadgen.loop import loop_kind
from llmd.loadgen.loop import run as loop_run
from llmd.loadgen.options import PerfOptions
from llmd.loadgen.report import SCHEMA, PerfReport, summarize_stage
from llmd.ops.endpoint import ServedModel
from llmd.ops.perf_progress import LiveLine, LogLines

__all__ = ["PerfOptions", "PerfReport", "check_thresholds", "run_perf"]

HTTP_CLIENT = "llmd asyncio.Protocol HTTP/1.1 (keep-alive, inline chunked+SSE decoding)"


def check_thresholds(report: PerfReport) -> None:
    """Raise ThresholdBreached (exit 8) when any stage breached --max-error-rate or an SLO."""
    if report.breaches:
        raise ThresholdBreached("perf thresholds breached: " + "; ".join(report.breaches),
                                "see the failure classes in the report; raise --max-error-rate or relax --slo "
                                "only if the numbers are expected")


def build_workload(opts: PerfOptions, model: str, salt: str = "") -> workloads.Workload:
    if opts.workload == "synthetic":
        return workloads.synthetic(api=opts.api, model=model, input_tokens=opts.input_tokens,
                                   output_tokens=opts.out_tokens, dist=opts.dist, spread=opts.dist_spread,
                                   seed=opts.seed, ignore_eos=opts.ignore_eos)
    if opts.workload == "shared-prefix":
        return workloads.shared_prefix(api=opts.api, model=model, groups=opts.groups,
                                       prompts_per_group=opts.prompts_per_group,
                                       system_prompt_len=opts.system_prompt_len, question_len=opts.question_len,
                                       output_tokens=opts.out_tokens, seed=opts.seed, ignore_eos=opts.ignore_eos,
                                       salt=salt)
    return workloads.from_file(opts.dataset or "", api=opts.api, model=model, output_tokens=opts.output_tokens,
                               seed=opts.seed, ignore_eos=opts.ignore_eos)


def resolve_model(endpoint: LiveEndpoint, opts: PerfOptions, served: ServedModel | None = None) -> str:
    """--model / Settings.model, else the one the smoke test found served, else the first id from GET /v1/models."""
    model = opts.model or (served.id if served else None)
    if model:
        return model
    import httpx

    url = endpoint.url.rstrip("/")
    url = (url if url.endswith("/v1") else url + "/v1") + "/models"
    try:
        resp = httpx.get(url, headers=dict(endpoint.headers), timeout=httpx.Timeout(10.0))
        resp.raise_for_status()
        return resp.json()["data"][0]["id"]
    except (httpx.HTTPError, ValueError, KeyError, IndexError, TypeError) as exc:
        raise TestFailed(f"cannot find the served model at {url}: {exc}",
                         "pass --model MODEL, or check that the endpoint serves /v1/models") from exc


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _environment(endpoint: LiveEndpoint, opts: PerfOptions) -> dict:
    return {
        "llmd_version": __version__, "python": platform.python_version(), "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "affinity": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "http_client": HTTP_CLIENT, "event_loop": loop_kind(), "workers": opts.workers, "endpoint": endpoint.url,
        "via_port_forward": endpoint.via_port_forward,
        "tunnel_generation_start": endpoint.generation,
    }


def _default_output(run_id: str) -> str:
    from llmd.paths import perf_dir

    out = perf_dir()
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    return str(out / f"perf-{run_id}.json")


def run_perf(endpoint: LiveEndpoint, opts: PerfOptions, ui, served: ServedModel | None = None) -> PerfReport:
    """Load `endpoint`; `served` is what its smoke test found (perf then needs no /v1/models of its own)."""
    opts.validate()
    opts.check_model_len(served.max_model_len if served else None)
    stages = opts.stages()
    slo = opts.slo_limits()
    model = resolve_model(endpoint, opts, served)
    opts = opts.with_model(model)
    workload = build_workload(opts, model)
    run_id = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
    report = PerfReport(config={**opts.to_dict(), "model": model, "workload_detail": workload.describe()},
                        environment=_environment(endpoint, opts), started_at=_now())
    report.environment["run_id"] = run_id
    if report.environment["via_port_forward"]:
        report.warnings.append("measured through kubectl port-forward: one API-server tunnel carries every "
                               "connection, so latency and throughput are not those of the gateway itself")
    timeouts = Timeouts(connect_s=opts.connect_timeout, read_s=opts.stall_timeout, total_s=opts.request_timeout)
    signum = _run_stages(endpoint, opts, ui, stages, workload=workload, timeouts=timeouts, run_id=run_id, slo=slo,
                         report=report)
    report.finished_at = _now()
    report.environment["tunnel_generation_end"] = endpoint.generation
    report.complete = signum is None and all(s["complete"] for s in report.stages) and len(report.stages) == len(stages)
    for s in report.stages:
        c = s["client"]
        if c["client_bound"]:
            report.warnings.append(
                f"{s['label']}: the load generator itself may be the bottleneck (busiest process used "
                f"{c['cpu_per_core_max']:.0%} of a core, event-loop lag p99 {c['loop_lag_p99_ms']:.1f} ms); "
                "use --workers N or a bigger client machine")
    _write_files(report, opts, run_id)
    show(report, ui)
    if signum is not None:
        where = (f"partial report written to {report.files['json']}" if "json" in report.files
                 else "the partial report could not be written")
        raise Interrupted(f"perf test interrupted; {where}", signum=signum)
    return report


def _write_files(report: PerfReport, opts: PerfOptions, run_id: str) -> None:
    """Every output file; a write error (disk full, a folder removed mid-run) is recorded, never raised, so the
    finished run's table still prints; `check_written` then fails the run naming what was not written."""
    from llmd.loadgen.benchmark_report import write_benchmark_reports

    jobs: list[tuple[str, str, Any]] = [("json", opts.output or "", lambda: str(report.write_json(
        opts.output or _default_output(run_id))))]
    if opts.csv:
        jobs.append(("csv", opts.csv, lambda: str(report.write_csv(opts.csv or ""))))
    if opts.benchmark_report:
        jobs.append(("benchmark_report", opts.benchmark_report, lambda: [
            str(p) for p in write_benchmark_reports(report, opts.benchmark_report or "")]))
    for key, path, write in jobs:
        try:
            report.files[key] = write()
        except OSError as exc:
            report.write_errors.append(f"{key} report {exc.filename or path or 'under the state directory'}: "
                                       f"{exc.strerror or exc}")


def check_written(report: PerfReport) -> None:
    """ConfigError (exit 2) when a report file could not be written; the results were already shown."""
    if report.write_errors:
        from llmd.errors import ConfigError

        raise ConfigError("perf results shown above, but not saved: " + "; ".join(report.write_errors),
                          hint="pick a writable --output/--csv/--benchmark-report path (or LLMD_STATE_DIR) "
                               "and re-run")


def _run_stages(endpoint: LiveEndpoint, opts, ui, stages, *, workload, timeouts, run_id, slo, report) -> int | None:
    """Run every stage on one event loop; returns the signal number when interrupted."""
    got: list[int] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()

        def on_signal(num: int) -> None:
            got.append(num)
            stop.set()

        installed = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, on_signal, int(sig))
                installed.append(sig)
            except (RuntimeError, ValueError):  # not the main thread: Ctrl-C stays with the caller
                pass
        t0 = time.perf_counter_ns()
        try:
            for stage in stages:
                if stop.is_set():
                    break
                await loop.run_in_executor(None, endpoint.ensure_alive)
                ui.step(f"perf stage {stage.name}: {stage.label()}, "
                        + (f"{stage.requests} requests" if stage.requests else "")
                        + (" / " if stage.requests and stage.duration_s else "")
                        + (f"{stage.duration_s:g} s" if stage.duration_s else "")
                        + (f" after {stage.warmup_s:g} s warm-up" if stage.warmup_s else ""))
                stage_wl = workload
                if opts.workload == "shared-prefix":  # fresh group prefixes per stage: every stage starts cold
                    stage_wl = build_workload(opts, opts.model, salt=f"{run_id}:{stage.name}")
                runs = await _one_stage(endpoint, opts, ui, stage, workload=stage_wl, timeouts=timeouts, run_id=run_id,
                                        t0=t0, stop=stop)
                await _attribute_tunnel_losses(endpoint, runs)
                report.records.extend(r for run in runs for r in run.records)
                report.stages.append(summarize_stage(runs, slo, opts.max_error_rate, stage))
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)

    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        loop_run(main())
    finally:
        for s, h in previous.items():
            if h is not None:
                signal.signal(s, h)
    return got[0] if got else None


LOST_CANDIDATES = ("truncated", "timeout", "stalled", "connect_error")


async def _attribute_tunnel_losses(endpoint: LiveEndpoint, runs) -> None:
    """Requests cut by a dying port-forward in the instant before its watchdog saw the loss (or in a
    worker process, which never sees `generation` move) failed as truncated/timeout/...: after the stage,
    ask the tunnel whether it died under each of them and count those as tunnel_lost."""
    if not endpoint.via_port_forward:
        return
    candidates = [r for run in runs for r in run.records if r["failure"] in LOST_CANDIDATES]
    if not candidates:
        return
    # lets the watchdog notice a death that happened under the last requests
    await asyncio.get_running_loop().run_in_executor(None, endpoint.ensure_alive)
    for rec in candidates:
        if endpoint.lost_during(rec["sent_ns"], rec["end_ns"]):
            rec["failure"] = "tunnel_lost"


async def _one_stage(endpoint: LiveEndpoint, opts, ui, stage, *, workload, timeouts, run_id, t0,
                     stop) -> list[StageRun]:
    live: LiveLine | LogLines | None = None
    if opts.live and ui.interactive:
        live = LiveLine(ui, stage)
    elif not ui.quiet:  # a CI log: a line every ~10 s that says the run is alive and how far it got
        live = LogLines(ui, stage)
    try:
        if opts.workers > 1:
            from llmd.loadgen.workers import run_stage_workers

            return await run_stage_workers(endpoint, opts.api_path, timeouts, workload, stage, run_id=run_id,
                                           seed=opts.seed, t0_ns=t0, workers=opts.workers, stop=stop,
                                           on_tick=live.update if live else None)
        progress = Progress()
        ticker = asyncio.ensure_future(_tick(live, progress)) if live else None
        try:
            return [await run_stage(endpoint, opts.api_path, timeouts, workload, stage, run_id=run_id,
                                    seed=opts.seed, t0_ns=t0, progress=progress, stop=stop)]
        finally:
            if ticker:
                ticker.cancel()
    finally:
        if live:
            live.close()


async def _tick(live, progress: Progress) -> None:
    while True:
        live.update(progress)
        await asyncio.sleep(0.25)


def _fmt(x) -> str:
    return "-" if x is None else (f"{x:.1f}" if x >= 10 else f"{x:.2f}")


def show(report: PerfReport, ui) -> None:
    """The final table on stderr (stdout stays free for --json); -q keeps it: it is what --perf is for."""
    from rich.table import Table

    title = "perf" + ("" if report.complete else " (INCOMPLETE)") + (
        " via port-forward" if report.environment.get("via_port_forward") else "")
    t = Table(title=title)
    t.caption = ("times in ms; TTFT/E2E p50/p99; tok/s = output tokens/s; q99 = client queue delay p99; "
                 "good = goodput (req/s meeting --slo); CPU = busiest client process")
    for col in ("stage", "ok/fail", "req/s", "tok/s", "TTFT", "ITL50", "TPOT50", "E2E", "q99", "good", "CPU"):
        t.add_column(col, justify="right" if col != "stage" else "left", no_wrap=True)
    for s in report.stages:
        r, th = s["requests"], s["throughput"]
        good = s.get("slo", {}).get("goodput")
        t.add_row(s["label"], f"{r['ok']}/{r['failed']}", _fmt(th["request_rate"]), _fmt(th["output_token_rate"]),
                  f"{_fmt(s['ttft_ms']['p50'])}/{_fmt(s['ttft_ms']['p99'])}", _fmt(s["itl_ms"]["p50"]),
                  _fmt(s["tpot_ms"]["p50"]), f"{_fmt(s['e2e_ms']['p50'])}/{_fmt(s['e2e_ms']['p99'])}",
                  _fmt(s["queue_ms"]["p99"]), "-" if good is None else _fmt(good),
                  f"{s['client']['cpu_per_core_max']:.0%}")
    ui.render(t)  # fits the terminal (wrapped or stacked, never a cut number); plain and stable in a log
    hits = [f"{s['label']} {c['hit_rate']:.1%}" for s in report.stages
            if (c := s["tokens"].get("cached")) and c.get("hit_rate") is not None]
    # 0% says something for shared-prefix only; elsewhere it is noise from servers that always report the field
    if hits and (report.config.get("workload") == "shared-prefix" or any(
            (s["tokens"].get("cached") or {}).get("cached_tokens") for s in report.stages)):
        # from usage.prompt_tokens_details.cached_tokens: what prefix-aware routing buys shows here
        ui.info("prefix cache: " + ", ".join(h + " of prompt tokens cached" for h in hits))
    for s in report.stages:
        if s["failures"]:
            ui.warn(f"{s['label']}: failures " + ", ".join(f"{k} {v}" for k, v in s["failures"].items())
                    + (f" (429 shed rate {s['shed_429'] / max(1, s['requests']['measured']):.1%})"
                       if s["shed_429"] else ""))
    for w in report.warnings:
        ui.warn(w)
    for b in report.breaches:
        ui.error(b)
    if report.files.get("json"):
        ui.result(f"report ({SCHEMA}): {report.files.get('json')}" + (
            f", records CSV: {report.files['csv']}" if report.files.get("csv") else ""))
    if report.files.get("benchmark_report"):  # one file per stage, named after it: not the path the user gave
        ui.info("benchmark reports (v0.2): " + ", ".join(report.files["benchmark_report"]))
