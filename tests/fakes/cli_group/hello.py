"""`llmd demo hello`."""

from typing import Annotated

import typer


def hello(name: Annotated[str, typer.Option("--name", help="Who to greet")] = "world") -> None:
    """Greet someone."""
    typer.echo(f"hello {name}")
