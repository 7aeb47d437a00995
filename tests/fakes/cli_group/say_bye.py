"""`llmd demo say-bye`: a hyphenated sub-command lives in say_bye.py as `say_bye`."""

import typer

from llmd.errors import ConfigError


def say_bye(ctx: typer.Context) -> None:
    """Say goodbye, or fail as bad input."""
    raise ConfigError("bye refused", hint="say hello instead")
