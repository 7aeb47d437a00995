"""Did-you-mean for mistyped keys (config file, --set settings and chart-value paths)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def close_match(key: str, known: Iterable[str], cutoff: float = 0.8) -> str | None:
    found = difflib.get_close_matches(key, list(known), n=1, cutoff=cutoff)
    return found[0] if found else None
