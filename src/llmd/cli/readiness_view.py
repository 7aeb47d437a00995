"""The live readiness table of `llmd deploy` on a terminal (plain lines otherwise): the CLI's view of
llmd.ops.wait.wait_ready, which tells it every polled state."""

from __future__ import annotations

from typing import TYPE_CHECKING

from llmd.ops import wait
from llmd.ops.wait import PlainProgress, Readiness

if TYPE_CHECKING:
    from rich.live import Live


class ReadinessTable:
    """A rich Live table on a terminal; otherwise one plain line whenever the state changes."""

    def __init__(self, ui) -> None:
        self.ui = ui
        self.live: Live | None = None
        self.plain = PlainProgress(ui)
        self.state: Readiness | None = None
        self.stamp = 0.0  # CLOCK time of the last update

    def __enter__(self) -> ReadinessTable:
        if self.ui.interactive and not self.ui.err.is_dumb_terminal:  # TERM=dumb: Live would show nothing
            from rich.live import Live

            # Built at each refresh, so the elapsed time ticks between polls (they are POLL_S apart).
            self.live = Live(console=self.ui.err, refresh_per_second=4, transient=True, get_renderable=self.table)
            self.live.__enter__()
        return self

    def table(self):
        from rich.table import Table

        state = self.state
        if state is None:
            return Table()
        elapsed = state.elapsed_s + max(0.0, wait.CLOCK.now() - self.stamp)
        t = Table(title=f"{state.phase} — {elapsed:.0f}s", title_justify="left")
        for col in ("component", "object", "ready", "note"):
            t.add_column(col)
        for c in state.components:
            t.add_row(c.key, c.name, f"{c.ready}/{c.desired}", "✓" if c.done else c.note)
        return t

    def update(self, state: Readiness) -> None:
        if self.live is not None:
            self.state, self.stamp = state, wait.CLOCK.now()
            self.live.refresh()
            return
        self.plain.update(state)

    def __exit__(self, *exc) -> None:
        if self.live is not None:
            self.live.__exit__(*exc)
