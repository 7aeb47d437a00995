"""Durations as users type them: Go-like strings ("50ms", "1.5s", "250us", "1m30s") or bare numbers.

One parser for every flag that takes a time (the simulator's latencies, the load engine's deadlines).
"""

from __future__ import annotations

import re

from llmd.errors import ConfigError

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def parse_duration(text: str | float | int, *, name: str = "duration", bare_unit: float = 1e-3) -> float:
    """Go-like duration ("50ms", "1.5s", "250us", "1m30s") -> seconds. A bare number is in `bare_unit`
    seconds: milliseconds by default, as the upstream sim's deprecated integer latencies were."""
    if isinstance(text, (int, float)):
        value = float(text) * bare_unit
    else:
        s = text.strip()
        sign = -1.0 if s.startswith("-") else 1.0
        s = s.lstrip("+-")
        if re.fullmatch(r"\d+(?:\.\d*)?", s):
            value = float(s) * bare_unit
        else:
            pos, value = 0, 0.0
            for m in _DURATION_PART.finditer(s):
                if m.start() != pos:
                    break
                value += float(m.group(1)) * _UNITS[m.group(2)]
                pos = m.end()
            if pos != len(s) or not s:
                raise ConfigError(
                    f"{name}: invalid duration {text!r}",
                    hint='use a number with a unit: "50ms", "1.5s", "250us", "1m30s"')
        value *= sign
    if value < 0:
        raise ConfigError(f"{name}: duration {text!r} must not be negative", hint=f"e.g. {name} 30s")
    return value
