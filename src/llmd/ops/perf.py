"""`llmd test --perf`: run the load stages against an endpoint and produce a PerfReport.

Contract: `run_perf(endpoint, opts, ui, served=, view=) -> PerfReport`. It draws nothing itself: `view` (the
CLI's llmd.cli.perf_view.PerfTable) gets a live display per stage and the finished report, before run_perf returns
or raises. It does NOT raise ThresholdBreached: the caller decides,
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
from typing import Any, Protocol

from llmd import __version__
from llmd.errors import Interrupted, TestFailed, ThresholdBreached
from llmd.loadgen import workloads
from llmd.loadgen.client import Timeouts
from llmd.loadgen.endpoint import LiveEndpoint
from llmd.loadgen.engine import Progress, Stage, StageRun, run_stage
from llmd.loadgen.loop import loop_kind
from llmd.loadgen.loop import run as loop_run
from llmd.loadgen.options import PerfOptions
from llmd.loadgen.report import PerfReport, summarize_stage
from llmd.ops.endpoint import ServedModel

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


class StageLive(Protocol):
    def update(self, p: Progress) -> None: ...

    def close(self) -> None: ...


class PerfView(Protocol):
    """How a perf run shows itself (llmd.cli.perf_view.PerfTable): `stage` gives a live display for one stage (or
    None), `report` shows the finished (or interrupted) run before run_perf returns or raises."""

    def stage(self, stage: Stage) -> StageLive | None: ...

    def report(self, report: PerfReport) -> None: ...


def run_perf(endpoint: LiveEndpoint, opts: PerfOptions, ui, served: ServedModel | None = None, *,
             view: PerfView | None = None) -> PerfReport:
    """Load `endpoint`; `served` is what its smoke test found (perf then needs no /v1/models of its own); `view`
    shows progress and the result (none: the run only reports its steps through `ui`)."""
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
                         report=report, view=view)
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
    if view is not None:
        view.report(report)
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
                          hint="pick a writable --report-file/--csv/--benchmark-report path (or LLMD_STATE_DIR) "
                               "and re-run")


def _run_stages(endpoint: LiveEndpoint, opts, ui, stages, *, workload, timeouts, run_id, slo, report,
                view: PerfView | None) -> int | None:
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
                runs = await _one_stage(endpoint, opts, stage, workload=stage_wl, timeouts=timeouts, run_id=run_id,
                                        t0=t0, stop=stop, view=view)
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


async def _one_stage(endpoint: LiveEndpoint, opts, stage, *, workload, timeouts, run_id, t0, stop,
                     view: PerfView | None) -> list[StageRun]:
    live = view.stage(stage) if view is not None and opts.live else None
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


async def _tick(live: StageLive, progress: Progress) -> None:
    while True:
        live.update(progress)
        await asyncio.sleep(0.25)
