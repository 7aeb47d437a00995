"""`llmd scheduler metrics [--watch]`: the EPP's and every model server's metrics, one table per refresh."""

# No `from __future__ import annotations`: @settings_options rebuilds the signature for Typer.
from typing import Annotated

import typer

from llmd.cli.common import load, make_runner
from llmd.cli.options import JsonOpt, settings_options

WatchOpt = Annotated[bool, typer.Option("--watch", "-w", help="Refresh until Ctrl-C (or --count refreshes)")]
IntervalOpt = Annotated[float, typer.Option("--interval", min=0.5, max=3600, help="Seconds between refreshes")]
CountOpt = Annotated[int, typer.Option("--count", min=0,
                                       help="With --watch: stop after this many tables (0: no limit)")]


@settings_options
def metrics(ctx: typer.Context, *, watch: WatchOpt = False, interval: IntervalOpt = 5.0, count: CountOpt = 0,
            json: JsonOpt = False, flags, sets, config) -> None:
    """Port-forward the EPP's metrics port and each model server's /metrics, and show per replica the queue depth,
    running requests, KV-cache use and prefix-cache hit rate, and the EPP's request and scheduling counters and
    scheduling latency. --json prints one document per refresh (one per line with --watch). The tunnels are
    closed on exit, Ctrl-C included.

    The EPP's metrics need a stack deployed with --monitoring (on GKE: -e gke --monitoring): the chart then lets
    the EPP verify tokens, and llmd uses its metrics-reader Secret's token, or without that Secret mints a
    10-minute token of the EPP's ServiceAccount (kubectl create token). Without --monitoring the EPP table says
    so; the model servers are still shown.

    Exit 4 cluster unreachable, 6 nothing deployed.
    """
    ui, settings = load(ctx, flags, sets, config, json_mode=json, json_errors=json)
    runner = make_runner(ctx, ui, echo=ui.verbose > 0)
    from llmd.cli.lifecycle import json_failure
    from llmd.ops.wait import CLOCK
    from llmd.platform import select

    shown = 0
    with json_failure(ui, json, runner), select(settings).metrics_session(settings, runner, ui) as session:
        while True:
            snap = session.snapshot()
            shown += 1
            if json and watch:  # JSON lines: one compact document per refresh
                import json as js

                ui.data(js.dumps(snap.to_dict(), separators=(",", ":")) + "\n")
            elif json:
                ui.json(snap.to_dict())
            else:
                ui.render(table(snap, settings))
            if not watch or (count and shown >= count):
                return
            CLOCK.sleep(interval)


def _num(value, fmt: str = "{:g}") -> str:
    return "-" if value is None else fmt.format(value)


def table(snap, settings):
    import time

    from rich.console import Group
    from rich.table import Table

    stamp = time.strftime("%H:%M:%S", time.localtime(snap.at))
    reps = Table(title=f"model servers — {settings.namespace} {stamp}", title_justify="left")
    for col in ("pod", "queue", "running", "KV cache", "prefix hit", "hit (interval)"):
        reps.add_column(col, justify="left" if col == "pod" else "right", overflow="fold")
    for r in snap.replicas:
        if r.error:
            reps.add_row(r.pod, f"[error] {r.error}", "", "", "", "")
            continue
        reps.add_row(r.pod, _num(r.waiting), _num(r.running), _num(r.kv_usage, "{:.1%}"), _num(r.hit_rate, "{:.1%}"),
                     _num(r.hit_rate_interval, "{:.1%}"))
    e = snap.epp
    epp = Table(title=f"endpoint picker {snap.picker or settings.epp_name}", title_justify="left")
    epp.add_column("metric")
    epp.add_column("value", justify="right", overflow="fold")
    if e.error:
        epp.add_row("unavailable", e.error)
    else:
        for label, value in (("requests", _num(e.requests)), ("request errors", _num(e.request_errors)),
                             ("scheduled / failed", f"{_num(e.scheduled)} / {_num(e.schedule_failures)}"),
                             ("scheduling latency mean / p99",
                              f"{_num(e.scheduling_mean_ms, '{:.3f}')} / {_num(e.scheduling_p99_ms, '{:.3f}')} ms"),
                             ("ready pods", _num(e.ready_pods)), ("pool avg queue", _num(e.pool_avg_queue)),
                             ("pool avg KV cache", _num(e.pool_avg_kv, "{:.1%}")),
                             ("prefix indexer hit ratio (mean)", _num(e.prefix_indexer_hit_ratio, "{:.2f}"))):
            epp.add_row(label, value)
    return Group(reps, epp)
