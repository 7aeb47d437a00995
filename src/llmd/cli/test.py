"""`llmd test`: smoke-test an endpoint (the deployed gateway, --url, or an embedded --sim); --perf adds a load test.

Heavy modules (httpx, the load engine) are imported inside the command.
"""

from typing import Annotated, Optional

import typer

from llmd.cli.common import load, make_runner
from llmd.cli.options import JsonOpt, settings_options
from llmd.cli.perf_options import perf_options

DEFAULT_PROMPT = "Say hello in one short sentence."  # the same text as llmd.ops.smoke.DEFAULT_PROMPT
PANEL = "Endpoint and smoke test"


@perf_options
@settings_options
def test(
    ctx: typer.Context,
    *,
    url: Annotated[Optional[str], typer.Option(  # noqa: UP045
        "--url", help="Test this OpenAI-compatible base URL directly (ingress, LoadBalancer, local server) "
        "instead of port-forwarding to the gateway (bearer token from $LLMD_API_KEY)", rich_help_panel=PANEL,
        show_default=False)] = None,
    sim: Annotated[bool, typer.Option(
        "--sim", help="Start an embedded llmd simulator on 127.0.0.1 and test it (no cluster needed)",
        rich_help_panel=PANEL)] = False,
    local_port: Annotated[Optional[int], typer.Option(  # noqa: UP045
        "--local-port", help="Local port of the port-forward (checked free first; default: the kernel picks)",
        rich_help_panel=PANEL, show_default=False)] = None,
    prompt: Annotated[str, typer.Option("--prompt", help="Prompt of the smoke requests",
                                        rich_help_panel=PANEL)] = DEFAULT_PROMPT,
    max_tokens: Annotated[int, typer.Option("--max-tokens", help="max_tokens of the smoke requests",
                                            rich_help_panel=PANEL)] = 16,
    ready_timeout: Annotated[float, typer.Option(
        "--ready-timeout", help="Seconds to wait for /v1/models to list the model (warm-up 503/404 tolerated)",
        rich_help_panel=PANEL)] = 120.0,
    perf: Annotated[bool, typer.Option("--perf", help="After the smoke test, run the load test (perf flags below)",
                                       rich_help_panel=PANEL)] = False,
    json: JsonOpt = False,
    flags, sets, config, perf_opts,
) -> None:
    """Smoke-test the deployment (and with --perf, load-test it). Exit 7 when the smoke test fails, 8 when perf
    thresholds are breached.

    By default the gateway Service of the deployment the settings describe is port-forwarded (GKE: the Gateway's
    address is used). Reports taken through a port-forward say so: it is not a neutral path for throughput.
    """
    ui, settings = load(ctx, flags, sets, config, json_mode=json)
    _validate(prompt, max_tokens, ready_timeout)
    explicit_model = settings.model if settings.sources.get("model", "default") != "default" else None
    # The deployment serves settings.served_model_name; --url/--sim without --model take the first listed model.
    model = explicit_model if (url or sim) else settings.served_model_name

    from llmd.errors import TestFailed
    from llmd.ops.endpoint import open_endpoint
    from llmd.ops.smoke import run_smoke

    runner = None if (url or sim) else make_runner(ctx, ui)
    with open_endpoint(settings=settings, runner=runner, ui=ui, url=url, sim=sim, sim_model=explicit_model,
                       local_port=local_port) as endpoint:
        ui.step(f"testing {endpoint.description}")
        report = run_smoke(endpoint, model, prompt, max_tokens, ready_timeout, ui)
        if not json:
            _show(ui, report)
        if not report.ok:
            if json:
                ui.json({"smoke": report.to_dict(), "perf": None})
            first = report.failed_checks[0]
            raise TestFailed(f"smoke test failed: {first.name}: {first.detail}", hint=first.hint,
                             details=first.evidence)
        ui.ok(f"smoke test passed: {report.model} at {endpoint.description} in {report.duration_s:.1f}s")
        perf_doc = None
        if perf:
            from llmd.ops.perf import check_thresholds, run_perf

            endpoint.model = report.model
            endpoint.ensure_alive()
            perf_report = run_perf(endpoint, perf_opts.with_model(report.model), ui)
            perf_doc = perf_report.to_dict(records=False)
            if json:
                ui.json({"smoke": report.to_dict(), "perf": perf_doc})
            check_thresholds(perf_report)
            return
        if json:
            ui.json({"smoke": report.to_dict(), "perf": perf_doc})


def _validate(prompt: str, max_tokens: int, ready_timeout: float) -> None:
    from llmd.errors import ConfigError

    if not prompt.strip():
        raise ConfigError("--prompt is empty", hint="pass a short prompt, e.g. --prompt 'Say hi'")
    if len(prompt) > 100_000:
        raise ConfigError(f"--prompt is {len(prompt)} characters; the limit is 100000",
                          hint="the smoke test needs a short prompt; use --perf --workload file for long ones")
    if not 1 <= max_tokens <= 65536:
        raise ConfigError(f"--max-tokens {max_tokens} is out of range", hint="use 1-65536 (16 is plenty for a smoke "
                          "test)")
    if not 0 < ready_timeout <= 86400:
        raise ConfigError(f"--ready-timeout {ready_timeout:g} is out of range", hint="use seconds in (0, 86400]")


def _show(ui, report) -> None:
    from rich.table import Table

    title = "smoke test" + (" (via port-forward)" if report.via_port_forward else "")
    t = Table(title=title)
    for col in ("check", "result", "attempts", "ms", "detail"):
        t.add_column(col, justify="right" if col in ("attempts", "ms") else "left")
    style = {"ok": "green", "warn": "yellow", "fail": "red", "skipped": "dim"}
    for c in report.checks:
        t.add_row(c.name, f"[{style[c.status]}]{c.status}[/]", str(c.attempts) if not c.skipped else "-",
                  f"{c.duration_s * 1000:.0f}" if not c.skipped else "-", _escape(c.detail))
    ui.render(t)
    for w in report.warnings:
        ui.warn(w)
    for c in report.failed_checks[1:]:  # the first one is the error the boundary prints
        ui.error(f"{c.name}: {c.detail}")
        if c.evidence:
            ui.info(c.evidence)
        if c.hint:
            ui.hint(c.hint)


def _escape(text: str) -> str:
    from rich.markup import escape

    from llmd.redact import redact

    return escape(redact(text))
