"""Command registration: one module per verb under llmd.cli."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    from llmd.cli import config

    app.command("config")(config.config)

    from llmd.cli import render

    app.command("render")(render.render)

    from llmd.cli import deploy

    app.command("deploy")(deploy.deploy)

    from llmd.cli import status

    app.command("status")(status.status)

    from llmd.cli import sim

    app.command("sim")(sim.sim)

    from llmd.cli import cleanup

    app.command("cleanup")(cleanup.cleanup)

    from llmd.cli import test
    from llmd.cli.perf_options import perf_epilog

    app.command("test", epilog=perf_epilog())(test.test)
