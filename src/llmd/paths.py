"""Where llmd keeps what it writes: one definition for every command."""

from __future__ import annotations

import os
from pathlib import Path


def state_dir() -> Path:
    """$LLMD_STATE_DIR, else $XDG_STATE_HOME/llmd, else ~/.local/state/llmd."""
    if os.environ.get("LLMD_STATE_DIR"):
        return Path(os.environ["LLMD_STATE_DIR"])
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "llmd"


def rendered_dir(settings) -> Path:
    """Where `llmd deploy` renders by default (and where `llmd test` looks for the HTTPRoute it applied)."""
    return state_dir() / "rendered" / settings.namespace / settings.release_postfix


def perf_dir() -> Path:
    return state_dir() / "perf"
