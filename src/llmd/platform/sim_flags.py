"""The `llmd sim` flags of the local platform's replicas: `src/llmd/presets/local.yaml`'s `sim:` with the user's
`--set local.sim.<flag>=V` (or `local: {sim: {<flag>: V}}` in the config file) over them.

Each override is checked against `llmd sim`'s own options (a mistyped name gets a did-you-mean; a flag the platform
sets itself names the deploy setting to use) and its value is parsed by that option; the merged flags are then built
into the simulator's config exactly as `llmd sim` builds it. So a bad value is exit 2 at settings time, before
anything starts, and a replica never exits at start-up over a flag.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from typing import Any

from llmd.errors import ConfigError

# Flags the local platform sets on every replica itself: (why, what to use instead).
OWNED = {
    "host": "the replicas listen on 127.0.0.1",
    "port": "each replica gets a free port from the kernel",
    "model": "use --model",
    "served-model-name": "use --model",
    "max-model-len": "use --max-model-len",
    "replicas": "use --replicas (one process per replica)",
    "seed": "each replica gets its own seed (1..N)",
    "duration": "the replicas run until `llmd cleanup`",
    "record": "every replica would write the same file",
}
Value = Any  # str (the value as written), bool (a switch) or tuple[str, ...] (a repeatable flag)


@functools.lru_cache(maxsize=1)
def _sim_command():
    import inspect

    import typer

    from llmd.cli.sim import sim

    app = typer.Typer(add_completion=False)
    app.command("sim")(sim)
    command = typer.main.get_command(app)
    own = set(inspect.signature(sim).parameters)
    return command, {p.name: p for p in command.params if p.name in own}


@functools.lru_cache(maxsize=1)
def _spellings() -> dict[str, str]:
    """Every way to name an option (`kv-cache-size`, `kv_cache_size`, an alias such as `time-to-first-token`) ->
    its name in presets/local.yaml: the option's first long flag without the dashes."""
    out: dict[str, str] = {}
    for param in _sim_command()[1].values():
        longs = [o[2:] for o in param.opts if o.startswith("--")]
        for spelling in longs:
            out[spelling] = out[spelling.replace("-", "_")] = longs[0]
    return out


def names() -> list[str]:
    """The flags an override may set."""
    return sorted({v for v in _spellings().values() if v not in OWNED})


def _option(flag: str):
    return next(p for p in _sim_command()[1].values() if f"--{flag}" in p.opts)


def canonical(key: str, origin: str) -> str:
    from llmd.suggest import close_match

    flag = _spellings().get(key.strip().lstrip("-"))
    if flag is None:
        guess = close_match(key.replace("_", "-"), names())
        raise ConfigError(f"{origin}: {key!r} is not a flag of `llmd sim`"
                          + (f"; did you mean {guess!r}?" if guess else ""),
                          hint="the replicas' flags (see `llmd sim --help`): " + ", ".join(names()))
    if flag in OWNED:
        raise ConfigError(f"{origin}: --{flag} of the local replicas is set by the local platform: {OWNED[flag]}",
                          hint="local.sim.<flag> takes the simulator's latency, queue, KV-cache and fault flags: "
                               + ", ".join(names()))
    return flag


def parse_value(flag: str, raw: Any, origin: str) -> Value:
    """The override's value as the option reads it; a wrong type is the option's own message."""
    from typer._click.exceptions import BadParameter

    param = _option(flag)
    if param.is_flag:
        text = str(raw).strip().lower()
        if text not in ("true", "false"):
            raise ConfigError(f"{origin}: --{flag} is a switch: give true or false, not {raw!r}")
        return text == "true"
    items = [str(x).strip() for x in raw] if isinstance(raw, (list, tuple)) else (
        [x.strip() for x in str(raw).split(",")] if param.multiple else [str(raw).strip()])
    for item in items:
        try:
            param.type.convert(item, param, None)
        except BadParameter as exc:
            raise ConfigError(f"{origin}: --{flag} {item!r}: {exc.message}",
                              hint=f"`llmd sim --help` describes --{flag}") from None
    return tuple(items) if param.multiple else items[0]


def parse_overrides(items: Iterable[tuple[str, Any, str]]) -> tuple[tuple[str, Value], ...]:
    """(flag as written, value, origin) in precedence order -> ((flag, value), ...), the last of a flag winning;
    the merged flags are checked as `llmd sim` would check them."""
    out: dict[str, Value] = {}
    for key, raw, origin in items:
        flag = canonical(key, origin)
        out.pop(flag, None)
        out[flag] = parse_value(flag, raw, origin)
    result = tuple(out.items())
    if result:
        check(merged(result), "the local replicas' llmd sim flags (" + ", ".join(
            f"local.sim.{k}" for k in out) + " over presets/local.yaml)")
    return result


def merged(overrides: Iterable[tuple[str, Value]] = ()) -> dict[str, Value]:
    from llmd import presets

    return {**presets.load("local")["sim"], **dict(overrides)}


def argv(flags: Mapping[str, Value]) -> list[str]:
    out: list[str] = []
    for key, value in flags.items():
        if value is True:
            out.append(f"--{key}")
        elif isinstance(value, tuple):
            for item in value:
                out += [f"--{key}", item]
        elif value is not False:
            out += [f"--{key}", str(value)]
    return out


def check(flags: Mapping[str, Value], what: str) -> None:
    """Parse and build the flags as `llmd sim` does (with the options the platform adds left at their defaults)."""
    from typer._click.exceptions import UsageError

    from llmd.cli.sim import build_config

    command, _ = _sim_command()
    try:
        ctx = command.make_context("sim", argv(flags))
    except UsageError as exc:
        raise ConfigError(f"{what}: {exc.format_message()}") from None
    try:
        build_config(ctx.params)
    except ConfigError as exc:
        raise ConfigError(f"{what}: {exc.message}", hint=exc.hint) from None
