"""Chart-value paths as `--set` takes them: helm's `a.b[0].c` index syntax, and `a.b.0.c` as before."""

from __future__ import annotations

import re

_SEGMENT = re.compile(r"([^.\[\]]+)((?:\[\d+\])*)")


def split_path(path: str) -> list[str | int] | None:
    """`decode.containers[0].image` -> ["decode", "containers", 0, "image"]; None when it is not a path.
    A bare number (`containers.0`) stays a string: it indexes a list that exists and keys a mapping otherwise."""
    out: list[str | int] = []
    for segment in path.split("."):
        m = _SEGMENT.fullmatch(segment)
        if m is None:
            return None
        out.append(m.group(1))
        out += [int(i) for i in re.findall(r"\[(\d+)\]", m.group(2))]
    return out


def join_path(parts: list[str | int]) -> str:
    """The helm spelling of a split path: list indices in brackets."""
    text = ""
    for p in parts:
        text += f"[{p}]" if isinstance(p, int) else (f".{p}" if text else p)
    return text


def canonical(path: str) -> str:
    """One spelling for comparing paths: `containers.0.image` and `containers[0].image` alike."""
    return re.sub(r"\.(\d+)(?=[.\[]|$)", r"[\1]", path)
