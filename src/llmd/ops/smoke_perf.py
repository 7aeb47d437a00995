"""`llmd test`'s sequence: the smoke test, then (with perf options) the load test on the model it found served.

The CLI translates options and shows reports; `on_smoke` / `on_perf` hand it each report as soon as it exists,
so a --json document still carries the smoke report when perf fails.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from llmd.errors import TestFailed
from llmd.ops.endpoint import Endpoint

if TYPE_CHECKING:
    from llmd.loadgen.options import PerfOptions
    from llmd.loadgen.report import PerfReport
    from llmd.ops.perf import PerfView
    from llmd.ops.smoke import SmokeReport


@dataclass(frozen=True)
class SmokeRequest:
    model: str | None  # None: the first model /v1/models lists
    prompt: str
    max_tokens: int
    ready_timeout: float  # seconds for /v1/models to list the model (warm-up answers tolerated)


def _ignore(_report: object) -> None:
    return None


def smoke_then_perf(endpoint: Endpoint, request: SmokeRequest, ui, *, perf: PerfOptions | None = None,
                    on_smoke: Callable[[SmokeReport], None] = _ignore,
                    on_perf: Callable[[PerfReport], None] = _ignore, perf_view: PerfView | None = None) -> None:
    """TestFailed (exit 7) when the smoke test fails; after perf ConfigError (exit 2) when a report file could not
    be written, ThresholdBreached (exit 8) when a limit was breached."""
    from llmd.ops.smoke import run_smoke

    ui.step(f"testing {endpoint.description}")
    report = run_smoke(endpoint, request.model, request.prompt, request.max_tokens, request.ready_timeout, ui)
    on_smoke(report)
    served = report.served
    if served is None:
        first = report.failed_checks[0]
        raise TestFailed(f"smoke test failed: {first.name}: {first.detail}", hint=first.hint, details=first.evidence)
    ui.ok(f"smoke test passed: {served.id} at {endpoint.description} in {report.duration_s:.1f}s")
    if perf is None:
        return
    from llmd.ops.perf import check_thresholds, check_written, run_perf

    endpoint.ensure_alive()  # the smoke test may have left an idle port-forward behind
    perf_report = run_perf(endpoint, perf, ui, served=served, view=perf_view)
    on_perf(perf_report)
    check_written(perf_report)
    check_thresholds(perf_report)
