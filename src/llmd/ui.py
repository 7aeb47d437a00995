"""One console for humans (stderr) and one stream for data (stdout).

Human messages, tables and progress go to stderr; `--json` documents and rendered YAML go to
stdout, so `llmd status --json | jq` always works. Everything passes the Redactor.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.theme import Theme

from llmd.redact import redact

THEME = Theme(
    {
        "info": "cyan",
        "success": "green",
        "warning": "yellow",
        "error": "bold red",
        "cmd": "dim",
        "hint": "magenta",
        "muted": "dim",
    }
)


class Ui:
    def __init__(self, *, json_mode: bool = False, verbose: int = 0, quiet: bool = False, color: bool | None = None,
                 doc_format: str = "json"):
        self.json_mode = json_mode
        self.doc_format = doc_format  # json, or yaml with -o yaml
        self.verbose = verbose
        self.quiet = quiet
        no_color = None if color is None else not color
        self.err = Console(stderr=True, theme=THEME, highlight=False, no_color=no_color, soft_wrap=True)
        self.out = Console(theme=THEME, highlight=False, no_color=True, soft_wrap=True)
        # The CLI's view of a readiness wait (a live table); None: plain lines (llmd.ops.wait.PlainProgress).
        self.readiness_view: Callable[[Ui], Any] | None = None

    @property
    def interactive(self) -> bool:
        """Live displays only on a terminal and never with --json."""
        return self.err.is_terminal and not self.json_mode and not self.quiet

    def _print(self, text: str, style: str | None = None) -> None:
        self.err.print(redact(text), style=style, markup=False)

    def info(self, text: str) -> None:
        if not self.quiet:
            self._print(text)

    def result(self, text: str) -> None:
        """What the command exists to show (a plan, a list of files): -q silences progress, never this."""
        self._print(text)

    def step(self, text: str) -> None:
        if not self.quiet:
            self._print(f"→ {text}", "info")

    def ok(self, text: str) -> None:
        if not self.quiet:
            self._print(f"✓ {text}", "success")

    def warn(self, text: str) -> None:
        self._print(f"! {text}", "warning")

    def error(self, text: str) -> None:
        self._print(f"✗ {text}", "error")

    def hint(self, text: str) -> None:
        self._print(f"hint: {text}", "hint")

    def cmd(self, text: str) -> None:
        """Echo of a command being run (already redacted by the runner)."""
        if self.verbose >= 0 and not self.quiet:
            self._print(f"$ {text}", "cmd")

    def child_result(self, result: Any) -> None:
        """-v: a finished child command's exit code and time, then the tail of its output (-vv: all of it).
        The output was redacted by the runner."""
        if self.verbose <= 0:
            return
        status = "timed out" if result.timed_out else f"exit {result.returncode}"
        self._print(f"  ↳ {status} in {result.duration_s:.2f}s", "muted")
        lines = (result.stdout + result.stderr).rstrip().splitlines()
        limit = None if self.verbose > 1 else 20
        if limit is not None and len(lines) > limit:
            self._print(f"    … {len(lines) - limit} earlier lines (-vv shows them; the transcript keeps all)",
                        "muted")
            lines = lines[-limit:]
        for line in lines:
            self._print(f"    {line}", "muted")

    def detail(self, text: str) -> None:
        if self.verbose > 0:
            self._print(text, "muted")

    def render(self, renderable: Any) -> None:
        """A Rich table or panel, to stderr. Tables fit the terminal and never cut a cell (llmd.tables)."""
        from rich.table import Table

        if not isinstance(renderable, Table):
            self.err.print(renderable)
            return
        from llmd.tables import fit

        shown, width = fit(renderable, self.err, terminal=self.err.is_terminal)
        saved = self.err.width  # print(width=) is capped at the console's width: set the console's
        self.err.width = width
        try:
            self.err.print(shown)
        finally:
            self.err.width = saved

    def json(self, data: Any) -> None:
        """The command's one document on stdout: JSON, or YAML with -o yaml (the same content)."""
        text = json.dumps(data, indent=2, sort_keys=False, default=str)
        if self.doc_format == "yaml":
            import yaml

            text = yaml.safe_dump(json.loads(text), sort_keys=False, allow_unicode=True, width=1000).rstrip()
        sys.stdout.write(redact(text) + "\n")
        sys.stdout.flush()

    def data(self, text: str) -> None:
        sys.stdout.write(redact(text))
        sys.stdout.flush()
