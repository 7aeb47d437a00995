"""`llmd report plot`: a chart of any perf report, sweep or scheduler comparison."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer


def plot(ctx: typer.Context,
         report: Annotated[Path, typer.Argument(help="A JSON from `llmd test --perf` or `llmd bench compare`")],
         out: Annotated[Optional[Path], typer.Option(  # noqa: UP045
             "--out", help="Where to write the PNG [default: beside the report, .png]", show_default=False)] = None,
         ) -> None:
    """Draw TTFT p50/p99, output tokens/s and prefix-cache hit rate per stage (a sweep) or per profile (a
    comparison) as a PNG. Exit 2 when the file is missing or not an llmd report."""
    from llmd.ops.chart import chart_path, draw, load

    ui = ctx.obj.ui()
    path = draw(load(report), out or chart_path(report))
    ui.ok(f"chart written to {path}")
