"""Entry point. Kept import-light: `llmd --version` answers before Typer and Rich are loaded."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args == ["--version"]:
        from llmd import __version__

        sys.stdout.write(f"llmd {__version__}\n")
        sys.exit(0)
    from llmd.cli.root import main as app_main

    app_main(argv)


def __getattr__(name: str):
    if name == "app":  # `from llmd.cli import app` for tests and extensions
        from llmd.cli.root import app

        return app
    raise AttributeError(name)
