"""`llmd test`: smoke-test an endpoint (the deployed gateway, --url, or an embedded --sim); --perf adds a load test.

Heavy modules (httpx, the load engine) are imported inside the command. With --json, `_Outcome` guarantees one
JSON document on stdout whatever happens after argument parsing: {"smoke", "perf", "error"}.
"""

import contextlib
from typing import Annotated, Optional

import typer

from llmd.cli.common import load, make_runner
from llmd.cli.options import JsonOpt, settings_options
from llmd.cli.perf_options import build_perf_options, perf_options
from llmd.ops.smoke_defaults import DEFAULT_MAX_TOKENS, DEFAULT_PROMPT, DEFAULT_READY_TIMEOUT_S

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
                                            rich_help_panel=PANEL)] = DEFAULT_MAX_TOKENS,
    ready_timeout: Annotated[float, typer.Option(
        "--ready-timeout", help="Once connected: seconds to wait for /v1/models to list the model (warm-up 503/404 "
        "tolerated; a missing or rejected HTTPRoute fails at once)", rich_help_panel=PANEL)] = DEFAULT_READY_TIMEOUT_S,
    connect_timeout: Annotated[Optional[float], typer.Option(  # noqa: UP045
        "--connect-timeout", help="Seconds to establish the port-forward: until kubectl prints 'Forwarding from' "
        "and a probe through it answers; also the budget of each restart (default 20; port-forward only, so not "
        "with --url/--sim)", rich_help_panel=PANEL, show_default=False)] = None,
    perf: Annotated[bool, typer.Option("--perf", help="After the smoke test, run the load test (perf flags below)",
                                       rich_help_panel=PANEL)] = False,
    json: JsonOpt = False,
    flags, sets, config, perf_values,
) -> None:
    """Smoke-test the deployment (and with --perf, load-test it). Exit 7 when the smoke test fails, 8 when perf
    thresholds are breached.

    By default the gateway Service of the deployment the settings describe is port-forwarded (GKE: the Gateway's
    address is used). Reports taken through a port-forward say so: it is not a neutral path for throughput.
    """
    outcome = _Outcome(ctx, json)
    with outcome.guard():
        ui, settings = load(ctx, flags, sets, config, json_mode=json)
        outcome.ui = ui
        _validate(prompt, max_tokens, ready_timeout, connect_timeout, bool(url or sim))
        from llmd.cli.no_effect import check_perf_flags, warn_test_settings
        from llmd.cli.options import FLAG_NAMES

        check_perf_flags(perf, perf_values)
        warn_test_settings(flags, FLAG_NAMES, "url" if url else "sim" if sim else "cluster", ui.warn)
        from llmd.platform import select

        # against the deployed stack its platform may size the workload (local: shared prefixes ~6x one replica's cache)
        perf_opts = build_perf_options(perf_values, None if (url or sim) else select(settings).perf_defaults())
        if perf and not perf_opts.output:  # the report's default home: unusable is bad input now, not after the run
            from llmd.paths import require_state_dir

            require_state_dir("perf", "the perf report")
        explicit_model = settings.model if settings.sources.get("model", "default") != "default" else None
        # The deployment serves settings.served_model_name; --url/--sim without --model take the first listed model.
        model = explicit_model if (url or sim) else settings.served_model_name

        from llmd.ops.endpoint import PF_READY_TIMEOUT_S, open_endpoint
        from llmd.ops.smoke_perf import SmokeRequest, smoke_then_perf

        def on_smoke(report) -> None:
            outcome.smoke = report.to_dict()
            if not json:
                _show(ui, report)

        def on_perf(report) -> None:
            outcome.perf = report.to_dict(records=False)

        runner = None if (url or sim) else make_runner(ctx, ui)
        outcome.runner = runner
        with open_endpoint(settings=settings, runner=runner, ui=ui, url=url, sim=sim, sim_model=explicit_model,
                           local_port=local_port, pf_ready_timeout=connect_timeout or PF_READY_TIMEOUT_S,
                           route_manifest=_deployed_route_manifest(settings)) as endpoint:
            from llmd.cli.perf_view import PerfTable

            smoke_then_perf(endpoint, SmokeRequest(model, prompt, max_tokens, ready_timeout), ui,
                            perf=perf_opts if perf else None, on_smoke=on_smoke, on_perf=on_perf,
                            perf_view=PerfTable(ui))


class _Outcome:
    """The one --json document of a run. `guard()` prints it on the way out, success or failure alike:
    {"smoke": ..., "perf": ..., "error": null | {"message", "hint", "details", "exit_code"}}. Whatever part did
    not run is null (a port-forward that never came up leaves smoke null). Only click's own parse errors (an
    unknown flag, a non-number) precede the command and stay human-only on stderr (exit 2)."""

    def __init__(self, ctx: typer.Context, enabled: bool) -> None:
        self.ctx = ctx
        self.enabled = enabled
        self.ui = None
        self.runner = None
        self.smoke: dict | None = None
        self.perf: dict | None = None

    @contextlib.contextmanager
    def guard(self):

        from llmd import proc
        from llmd.cli.lifecycle import attach_log, error_fields
        from llmd.errors import ExitCode, LlmdError

        try:
            yield self
        except LlmdError as err:
            attach_log(err, self.runner)
            self._emit(error_fields(err))
            raise
        except KeyboardInterrupt:
            code = ExitCode.for_signal(proc.last_signal)
            self._emit({"message": "interrupted", "hint": None, "details": None, "exit_code": int(code)})
            raise
        except typer.Exit:
            raise
        except Exception as exc:  # a bug: the boundary prints it; the document still says what happened
            self._emit({"message": f"internal error: {type(exc).__name__}: {exc}", "hint": "re-run with --debug",
                        "details": None, "exit_code": int(ExitCode.INTERNAL)})
            raise
        else:
            self._emit(None)

    def _emit(self, error: dict | None) -> None:
        if not self.enabled:
            return
        ui = self.ui or self.ctx.obj.ui(json_mode=True)  # settings failed to load: no Ui was made yet
        ui.json({"smoke": self.smoke, "perf": self.perf, "error": error})


def _deployed_route_manifest(settings):
    """The HTTPRoute `llmd deploy` rendered with its default --out (named in the fix for a missing route)."""
    from llmd.paths import rendered_dir
    from llmd.render.bundle import HTTPROUTE

    return rendered_dir(settings) / HTTPROUTE


def _validate(prompt: str, max_tokens: int, ready_timeout: float, connect_timeout: float | None,
              direct: bool) -> None:
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
    if connect_timeout is not None:
        if direct:
            raise ConfigError("--connect-timeout applies only to the port-forward to a cluster gateway",
                              hint="drop --connect-timeout when testing --url or --sim")
        if not 0 < connect_timeout <= 600:
            raise ConfigError(f"--connect-timeout {connect_timeout:g} is out of range",
                              hint="use seconds in (0, 600]; kubectl usually forwards within a few seconds")


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
