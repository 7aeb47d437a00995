"""Where llmd keeps what it writes: one definition for every command."""

from __future__ import annotations

import os
from pathlib import Path


def data_dir(name: str) -> Path:
    """A top-level data folder of the repository (templates/, charts-values/): inside the installed package in a
    wheel (pyproject force-includes it there), at the root of the checkout in a source tree or editable install."""
    package = Path(__file__).resolve().parent
    for candidate in (package / name, package.parents[1] / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"llmd data folder {name}/ is missing (looked in {package} and {package.parents[1]})")


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


def dir_problem(path: Path) -> str | None:
    """Why `path` cannot be (or be created as) a directory llmd writes into, or None when it can.
    Checked before any work starts, so a run never ends with a write error (a file where a folder
    must be, a read-only parent)."""
    p = Path(path).expanduser()
    probe = p
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        return f"{probe} is not a directory" + ("" if probe == p else f" (needed for {p})")
    if not os.access(probe, os.W_OK | os.X_OK):
        return f"{probe} is not writable" + ("" if probe == p else f" (needed for {p})")
    return None


def file_problem(path: Path) -> str | None:
    """Why a file cannot be written at `path` (an existing directory, an unusable parent), or None."""
    p = Path(path).expanduser()
    if p.is_dir():
        return f"{p} is a directory"
    if p.exists():  # a file, device node or FIFO: written through when permitted
        return None if os.access(p, os.W_OK) else f"{p} is not writable"
    return dir_problem(p.parent)


def require_state_dir(sub: str, what: str) -> Path:
    """<state dir>/<sub>, or ConfigError (exit 2) naming $LLMD_STATE_DIR when llmd could not write there."""
    from llmd.errors import ConfigError

    path = state_dir() / sub
    problem = dir_problem(path)
    if problem:
        raise ConfigError(f"cannot write {what} under the state directory {state_dir()}: {problem}",
                          hint="point LLMD_STATE_DIR (or XDG_STATE_HOME) at a writable directory, "
                               "or remove what is in the way")
    return path
