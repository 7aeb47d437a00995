"""Tables that fit: on a terminal, the table as it is, word-wrapped, split into narrower tables that repeat
the key column, or stacked (one block per row) when even that would cut a number; without a terminal, one
stable plain layout whatever $COLUMNS says.

Rich cuts a cell that does not fit with '…' (`4.…`, `61…` in an 80-column perf table): a number is never cut here.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console, RenderableType
from rich.measure import Measurement
from rich.table import Table


def _cells(table: Table) -> list[list[Any]]:
    return [list(col._cells) for col in table.columns]


def stacked(table: Table) -> RenderableType:
    """One block per row: the first cell as its heading, then `header  value` lines."""
    from rich.console import Group
    from rich.text import Text

    columns = _cells(table)
    headers = [col.header for col in table.columns]
    blocks: list[RenderableType] = []
    if table.title:
        blocks.append(Text.from_markup(str(table.title)) if isinstance(table.title, str) else table.title)
    for row in range(table.row_count):
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="bold", no_wrap=True)
        grid.add_column(overflow="fold")
        for i in range(1, len(columns)):
            grid.add_row(headers[i], columns[i][row])
        blocks.append(Text(""))
        blocks.append(columns[0][row] if columns else "")
        blocks.append(grid)
    if table.caption:
        blocks.append(Text(""))
        blocks.append(Text.from_markup(str(table.caption)) if isinstance(table.caption, str) else table.caption)
    return Group(*blocks)


def _subtable(table: Table, idxs: list[int], *, title: Any = None, caption: Any = None) -> Table:
    cells = _cells(table)
    sub = Table(title=title, caption=caption, box=table.box, show_header=table.show_header,
                title_justify=table.title_justify, show_lines=table.show_lines)
    for i in idxs:
        col = table.columns[i]
        sub.add_column(col.header, justify=col.justify, style=col.style, no_wrap=col.no_wrap, overflow="fold")
    for row in range(table.row_count):
        sub.add_row(*(cells[i][row] for i in idxs))
    return sub


def split(table: Table, console: Console) -> RenderableType | None:
    """The table as several narrower ones, each repeating the first (key) column, every one fitting the width;
    None when the key column and one more do not fit side by side."""
    from rich.console import Group

    def width(idxs: list[int]) -> int:
        return _narrowest(_subtable(table, idxs), console)

    parts: list[list[int]] = []
    current = [0]
    for i in range(1, len(table.columns)):
        if width([*current, i]) <= console.width:
            current.append(i)
        elif len(current) > 1:
            parts.append(current)
            current = [0, i]
            if width(current) > console.width:
                return None
        else:
            return None
    parts.append(current)
    last = len(parts) - 1
    return Group(*(_subtable(table, idxs, title=table.title if n == 0 else None,
                             caption=table.caption if n == last else None) for n, idxs in enumerate(parts)))


PLAIN_WIDTH = 80  # without a terminal (a pipe, a CI log): this width whatever $COLUMNS says


TEXT_MIN = 12  # a wrapping text column narrower than this reads badly: split or stack instead


def _narrowest(table: Table, console: Console) -> int:
    """The narrowest width the table prints at without splitting a number: no_wrap columns (numbers) at their
    full width, text columns down to their longest word or TEXT_MIN (a longer word, a path, folds)."""
    wide = console.options.update(width=10_000)
    total = 0
    for i, col in enumerate(table.columns):
        one = _subtable(table, [i])
        m = Measurement.get(console, wide, one)
        total += m.maximum if col.no_wrap else min(m.minimum, TEXT_MIN + 4)  # +4: a lone column's box and pad
    return total - (len(table.columns) - 1)  # neighbours share a border: each lone table counted its own


def fit(table: Table, console: Console, *, terminal: bool) -> tuple[RenderableType, int]:
    """What to print and the width to print it at; the console's width must be set to it while printing (the
    caller does). Every cell keeps all its characters."""
    width = console.width if terminal else PLAIN_WIDTH
    for attr in ("title", "caption"):  # printed without soft wrapping: wrap them here, at spaces
        text = getattr(table, attr)
        if isinstance(text, str) and len(text) > width:
            import textwrap

            setattr(table, attr, "\n".join(textwrap.wrap(text, width, break_on_hyphens=False)))
    for col in table.columns:
        col.overflow = "fold"  # never "…": a word longer than its column wraps (only after the checks below)
    if _narrowest(table, console) <= width:
        return table, width  # fits: text wraps at spaces (a path longer than its column folds), numbers whole
    saved = console.width
    console.width = width
    try:
        return split(table, console) or stacked(table), width
    finally:
        console.width = saved
