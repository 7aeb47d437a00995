"""Help that cuts nothing at any width: click's plain formatter (it wraps, never truncates), grouped by panel.

Typer's Rich help cut option names and value lists with '…' at 80 columns (`--tensor-parallel,--…`,
`istio|agentgateway|k…`) and read `[env X]` as markup. Plain help keeps every word; the options keep their
panels (Deployment settings, Perf test, Global options) as sections.
"""

from __future__ import annotations

from typing import Any

from typer import _click as click

MARKUP = None  # rich_markup_mode for every Typer object and group: plain click help


def format_options(self: click.Command, ctx: click.Context, formatter: click.HelpFormatter) -> None:
    """Options in sections named by their panel, in order of first appearance ("Options" first)."""
    sections: dict[str, list[tuple[str, str]]] = {"Options": []}
    for param in self.get_params(ctx):
        record = param.get_help_record(ctx)
        if record is not None:
            sections.setdefault(getattr(param, "rich_help_panel", None) or "Options", []).append(record)
    for title, rows in sections.items():
        if rows:
            with formatter.section(title):
                write_dl(formatter, rows)


def write_dl(formatter: click.HelpFormatter, rows: list[tuple[str, str]], col_max: int = 30,
             col_spacing: int = 2) -> None:
    """click's definition list, but wrapped only at spaces: a value list (`kv-cache, optimized-baseline`) or a
    flag name is never split at a hyphen or mid-word, a short bracket (`[default: 4]`, `[env LLMD_REPLICAS]`) never
    at all; a token longer than the line runs past it, whole."""
    import re
    import textwrap

    first_width = min(max(len(term) for term, _ in rows), col_max) + col_spacing
    text_width = max(formatter.width - first_width - formatter.current_indent, 10)
    wrapper = textwrap.TextWrapper(width=text_width, break_on_hyphens=False, break_long_words=False)
    for term, text in rows:
        formatter.write(f"{'':>{formatter.current_indent}}{term}")
        glued = re.sub(r"\[[^\]\n]{1,40}\]", lambda m: m.group().replace(" ", "\xa0"), text)  # no-break spaces
        lines = [line.replace("\xa0", " ") for line in wrapper.wrap(glued)] if text else []
        if not lines:
            formatter.write("\n")
            continue
        if len(term) + col_spacing <= first_width:
            formatter.write(" " * (first_width - len(term)))
        else:  # a long term gets its own line, its help below, as click does
            formatter.write("\n" + " " * (first_width + formatter.current_indent))
        formatter.write(lines[0] + "\n")
        for line in lines[1:]:
            formatter.write(f"{'':>{first_width + formatter.current_indent}}{line}\n")


def group_options(command: Any) -> None:
    """Give one built command the sectioned option list."""
    command.format_options = format_options.__get__(command)
