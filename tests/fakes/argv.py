"""argv splitting shared by the fake binaries (each runs as a script, so this sits beside them on sys.path)."""

from __future__ import annotations


def split(argv: list[str], value_flags: set[str]) -> tuple[list[str], dict[str, list[str]], set[str]]:
    """Positionals, valued flags (every value, in order) and switches, as a cobra parser would see them."""
    pos: list[str] = []
    opts: dict[str, list[str]] = {}
    switches: set[str] = set()
    i = 0
    while i < len(argv):
        a = argv[i]
        if a.startswith("-") and "=" in a:
            k, v = a.split("=", 1)
            opts.setdefault(k, []).append(v)
        elif a in value_flags and i + 1 < len(argv):
            opts.setdefault(a, []).append(argv[i + 1])
            i += 1
        elif a.startswith("-"):
            switches.add(a)
        else:
            pos.append(a)
        i += 1
    return pos, opts, switches
