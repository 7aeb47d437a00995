"""`llmd bench compare`: one seeded perf workload per scheduler profile, a side-by-side table, one JSON, a chart."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from llmd.cli.common import finish, load, make_runner
from llmd.cli.lifecycle import json_failure
from llmd.cli.options import JsonOpt, settings_options
from llmd.cli.perf_options import perf_options


@perf_options
@settings_options
def compare(ctx: typer.Context, *, no_chart: Annotated[bool, typer.Option(
                "--no-chart", help="Do not draw the PNG chart beside the JSON")] = False,
            json: JsonOpt = False, flags, sets, config, perf_values) -> None:
    """Run the same seeded perf workload once per profile of --scheduler a,b,c (the first is the baseline).

    Per profile: apply it (local: the gateway swaps its scheduler; Kubernetes: the EPP rolls), wait until it is in
    effect, run with cold caches (fresh shared-prefix groups), warm up (--warmup, 1 s by default), measure. Takes every
    workload and load flag of `llmd test --perf`. Writes one JSON (--report-file, default under the state dir) with each
    profile's entry under its name, each profile's perf report and a PNG chart beside it. Exit 2 bad input, 6 when
    nothing is deployed (the first apply finds no stack), 7 when the endpoint fails, 8 when a profile breached
    --max-error-rate or --slo.
    """
    from llmd.cli.perf_options import build_perf_options
    from llmd.ops.compare import default_output, parse_profiles

    profiles_text = flags.pop("scheduler", None)  # --scheduler is a list here, not one preset
    ui, settings = load(ctx, flags, sets, config, json_mode=json, json_errors=json)
    with json_failure(ui, json):
        profiles = parse_profiles(profiles_text)
        from llmd.platform import select

        perf_opts = build_perf_options(perf_values, select(settings).perf_defaults())
    output = Path(perf_opts.output) if perf_opts.output else default_output()
    runner = make_runner(ctx, ui)
    from llmd.ops.compare import run_compare

    with json_failure(ui, json, runner):
        from llmd.cli.perf_view import PerfTable

        report = run_compare(settings, runner, ui, profiles, perf_opts, output=output, view=PerfTable(ui))
        if not no_chart:
            from llmd.ops.chart import chart_path, draw

            report.files["chart"] = str(draw(report.to_dict(), chart_path(output)))
        report.files["json"] = str(output)
        _write(output, report.to_dict())
    finish(ui, json, report, lambda: _show(ui, report))
    breaches = [f"{p}: {b}" for p, e in report.entries.items() for b in _breaches(e)]
    if breaches:
        from llmd.errors import ThresholdBreached

        raise ThresholdBreached("perf thresholds breached: " + "; ".join(breaches),
                                "see each profile's perf report for the failure classes")


def _breaches(entry: dict) -> list[str]:
    from llmd.ops.chart import load as load_json

    path = entry.get("perf_report")
    return list(load_json(Path(path)).get("breaches") or []) if path and Path(path).exists() else []


def _write(path: Path, doc: dict) -> None:
    import json as _json

    from llmd.loadgen.report import _atomic_write

    _atomic_write(str(path), _json.dumps(doc, indent=1, default=str) + "\n")


def _cell(value, ratio, fmt: str, show_ratio: bool) -> str:
    if value is None:
        return "-"
    text = fmt.format(value)
    return f"{text} ({ratio:.2f}x)" if show_ratio and ratio is not None else text


def _show(ui, report) -> None:
    from rich.table import Table

    from llmd.ops.compare import METRICS

    fmts = {"ttft_p50_ms": "{:.1f}", "ttft_p99_ms": "{:.1f}", "tpot_p50_ms": "{:.2f}", "output_tok_s": "{:.0f}",
            "request_rate": "{:.1f}", "hit_rate": "{:.1%}", "errors": "{:d}"}
    t = Table(title=f"scheduler comparison ({report.platform}); ratios to {report.profiles[0]}", title_justify="left")
    t.add_column("profile")
    for _, label, unit, _lower in METRICS:
        t.add_column(label + (f" ({unit})" if unit else ""), justify="right")
    for i, profile in enumerate(report.profiles):
        e = report.entries[profile]
        r = e["ratio_to_baseline"]
        t.add_row(profile, *(_cell(e.get(k), r.get(k), fmts[k], i > 0 and k != "errors") for k, *_ in METRICS))
    ui.render(t)
    for profile in report.profiles:
        e = report.entries[profile]
        if e.get("failures"):
            ui.warn(f"{profile}: failures by class: " + ", ".join(f"{k} {v}" for k, v in e["failures"].items()))
        share = e.get("endpoint_share")
        if share:
            top = max(share.values())
            ui.info(f"{profile}: busiest replica got {top:.0%} of the requests")
    ui.ok(f"comparison written to {report.files['json']}" + (f"; chart {report.files['chart']}"
                                                            if report.files.get("chart") else ""))
