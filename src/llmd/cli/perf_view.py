"""The perf run's views: a live status line per stage and the final table. run_perf calls them through its
`view` (llmd.ops.perf.PerfView); `llmd test` and `llmd bench compare` pass `PerfTable(ui)`."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from llmd.loadgen.report import SCHEMA

if TYPE_CHECKING:
    from llmd.loadgen.engine import Progress, Stage
    from llmd.loadgen.report import PerfReport


class PerfTable:
    """The view of a perf run on the Ui: a live line per stage on a terminal, the table when the run ends."""

    def __init__(self, ui) -> None:
        self.ui = ui

    def stage(self, stage: Stage) -> LiveLine | LogLines | None:
        if self.ui.interactive:
            return LiveLine(self.ui, stage)
        # a CI log: a line every LOG_EVERY_S that says the run is alive and how far it got (the stage's own
        # `→ perf stage` line comes first)
        return None if self.ui.quiet else LogLines(self.ui, stage)

    def report(self, report: PerfReport) -> None:
        show(report, self.ui)


class LiveLine:
    """One status line per stage (done/total, in flight, errors, rolling TTFT p50, ETA), refreshed by the load
    engine."""

    def __init__(self, ui, stage: Stage) -> None:
        from rich.live import Live

        self.stage = stage
        self.t0 = time.monotonic()
        self.shown = 0.0
        # refreshed from the event loop (no refresh thread competing with the load for the GIL)
        self.live = Live("", console=ui.err, auto_refresh=False, transient=True)
        self.live.start()

    def update(self, p: Progress) -> None:
        now = time.monotonic()
        if now - self.shown < 0.2:
            return
        self.shown = now
        self.live.update("  " + progress_text(self.stage, p, now - self.t0), refresh=True)

    def close(self) -> None:
        self.live.stop()


LOG_EVERY_S = 10.0


class LogLines:
    """Without a terminal: the live line's text as a plain line every LOG_EVERY_S seconds."""

    def __init__(self, ui, stage: Stage, every_s: float | None = None) -> None:
        self.ui = ui
        self.stage = stage
        self.every_s = LOG_EVERY_S if every_s is None else every_s
        self.t0 = time.monotonic()
        self.shown = self.t0

    def update(self, p: Progress) -> None:
        now = time.monotonic()
        if now - self.shown >= self.every_s:
            self.shown = now
            self.ui.info("  " + progress_text(self.stage, p, now - self.t0))

    def close(self) -> None:
        pass


def eta_s(stage: Stage, done: int, elapsed: float) -> float | None:
    """Seconds left: the time bound when there is one, the request count's pace otherwise (the smaller)."""
    left: list[float] = []
    if stage.duration_s:
        left.append(max(0.0, (stage.warmup_s or 0.0) + stage.duration_s - elapsed))
    if stage.requests and done:
        left.append(max(0.0, elapsed / done * (stage.requests - done)))
    return min(left) if left else None


def progress_text(stage: Stage, p: Progress, elapsed: float) -> str:
    """done/total, in flight, errors, the rolling TTFT p50 and an ETA."""
    total = stage.requests
    done = f"done {p.done}/{total} ({min(p.done / total, 1.0):.0%})" if total else f"done {p.done}"
    recent = sorted(p.ttft_recent)
    p50 = f"{recent[len(recent) // 2]:.1f} ms" if recent else "-"
    eta = eta_s(stage, p.done, elapsed)
    return (f"{stage.label()}  {elapsed:5.1f} s  {done}  in flight {p.inflight}  errors {p.errors}  TTFT p50 {p50}"
            + (f"  ETA {eta:.0f} s" if eta is not None else ""))


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
    ui.render(t)  # fits the terminal (wrapped, split or stacked, never a cut number); 80 columns in a log
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
