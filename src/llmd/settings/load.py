"""Loading: defaults < config file (--config / LLMD_CONFIG) < environment < flags < --set, with provenance."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from llmd.errors import ConfigError
from llmd.settings.model import Settings
from llmd.settings.validation import validate

FIELDS = {f.name: f for f in dataclasses.fields(Settings)
          if f.name not in ("sources", "hf_token", "value_overrides", "local_sim")}

# Names users of the upstream shell guide already export; LLMD_* wins when both are set.
LEGACY_ENV = {"NAMESPACE": "namespace", "RELEASE_NAME_POSTFIX": "release_postfix", "KUBECONFIG": "kubeconfig"}
CONFIG_ENV = "LLMD_CONFIG"
TOKEN_ENV = "HF_TOKEN"
VALUE_RELEASES = ("infra", "gaie", "ms")


def env_var(name: str) -> str:
    return "LLMD_" + name.upper()


def _field_type(name: str) -> str:
    default = FIELDS[name].default
    ann = str(FIELDS[name].type)
    if isinstance(default, tuple):
        return "list"
    if isinstance(default, bool) or ann == "bool":
        return "bool"
    if isinstance(default, int):
        return "int"
    if isinstance(default, float):
        return "float"
    return "str"


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def coerce(name: str, raw: Any, origin: str) -> Any:
    """Turn a string or YAML scalar into the field's type; strings stay strings (no YAML guessing)."""
    kind = _field_type(name)
    if raw is None:
        return None
    if kind == "list":  # repeatable flags; a config-file list; one comma-separated environment variable
        items = raw if isinstance(raw, (list, tuple)) else str(raw).split(",")
        return tuple(str(i).strip() for i in items if str(i).strip())
    try:
        if kind == "bool":
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in _TRUE:
                return True
            if text in _FALSE:
                return False
            raise ValueError
        if kind == "int":
            if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
                raise ValueError
            return int(str(raw).strip(), 10) if isinstance(raw, str) else int(raw)
        if kind == "float":
            if isinstance(raw, bool):
                raise ValueError
            return float(raw)
    except (TypeError, ValueError):
        what = {"int": "an integer", "float": "a number", "bool": "true or false"}[kind]
        hint = f"give {name} {what}" + (" (also yes/no, on/off, 1/0)" if kind == "bool" else "")
        raise ConfigError(f"{name}: {raw!r} (from {origin}) is not {what}", hint=hint) from None
    return str(raw) if not isinstance(raw, str) else raw


def _normalise_key(key: str) -> str:
    return key.strip().replace("-", "_").lower()


def _unique_keys_loader(base: type, path: str) -> type:
    """`base` (a PyYAML loader) that refuses a mapping key given twice: YAML keeps the last one silently."""
    import yaml

    class Loader(base):  # a loader class chosen at run time
        pass

    def mapping(loader, node, deep=False):
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = loader.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise ConfigError(f"config file {path}: key {key!r} is given twice (lines {seen[key]} and {line})",
                                  hint="keep one of them: YAML would silently use the last")
            seen[key] = line
        return base.construct_mapping(loader, node, deep=deep)

    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    return Loader


def _unknown_setting(key: str, where: str, *, values_ok: bool) -> ConfigError:
    from llmd.suggest import close_match

    known = sorted(FIELDS) + (["local", "values"] if values_ok else [])
    guess = close_match(_normalise_key(key), known)
    return ConfigError(f"{where}: unknown setting {key!r}" + (f"; did you mean {guess!r}?" if guess else ""),
                       hint="known settings: " + ", ".join(known)
                            + ("" if values_ok else ", or values.<infra|gaie|ms>.<path> for chart values, "
                                                    "local.sim.<flag> for the local replicas' llmd sim flags"))


def read_config_file(path: str) -> dict[str, Any]:
    """Settings (every scalar kept as the string written) plus `values: {infra|gaie|ms: {...}}`, chart value
    overrides like --set values.* (typed as YAML, as helm reads a values file), returned under "values" as
    [(release, path, value)]."""
    import yaml

    p = Path(path).expanduser()
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}",
                          hint="check the --config path (or LLMD_CONFIG)") from None
    try:
        # BaseLoader: every scalar stays a string, so `1.10` or `no` are never reinterpreted.
        data = yaml.load(text, Loader=_unique_keys_loader(yaml.BaseLoader, path))
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must be a mapping of setting: value")
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = _normalise_key(str(key))
        if name == "values":
            typed = yaml.load(text, Loader=_unique_keys_loader(yaml.SafeLoader, path))
            out["values"] = _value_overrides(typed.get(key), path)
            continue
        if name == "local":
            out["local"] = _local_sim(value, path)
            continue
        if name not in FIELDS:
            raise _unknown_setting(str(key), f"config file {path}", values_ok=True)
        out[name] = value
    return out


def _local_sim(tree: Any, path: str) -> list[tuple[str, Any]]:
    """`local: {sim: {kv-cache-size: 1024}}` -> [("kv-cache-size", "1024")], as --set local.sim.* sets them (the
    values stay the strings written; llmd.platform.sim_flags parses them)."""
    if not isinstance(tree, dict) or set(tree) != {"sim"} or not isinstance(tree["sim"], dict):
        raise ConfigError(f"config file {path}: local must hold only sim, a mapping of llmd sim flags to values",
                          hint="e.g. local: {sim: {kv-cache-size: 1024, max-num-seqs: 8}}")
    out: list[tuple[str, Any]] = []
    for flag, value in tree["sim"].items():
        if isinstance(value, dict) or (isinstance(value, list) and any(isinstance(v, (dict, list)) for v in value)):
            raise ConfigError(f"config file {path}: local.sim.{flag} must be a value (or a list, for --fault)")
        out.append((str(flag), value))
    return out


def _value_overrides(tree: Any, path: str) -> list[tuple[str, str, Any]]:
    """`values: {ms: {decode: {replicas: 2}}}` -> [("ms", "decode.replicas", 2)]: each leaf, as --set would set it
    (a list is one value; keys holding '.' are not addressable and refused)."""
    if not isinstance(tree, dict) or not tree:
        raise ConfigError(f"config file {path}: values must be a mapping of infra/gaie/ms to chart values",
                          hint="e.g. values: {ms: {decode: {replicas: 2}}}")
    out: list[tuple[str, str, Any]] = []

    def walk(release: str, prefix: str, node: Any) -> None:
        if isinstance(node, dict) and node:
            for k, v in node.items():
                if "." in str(k) or "[" in str(k):
                    raise ConfigError(f"config file {path}: values.{release}.{prefix}{k}: a key with '.' or '[' "
                                      "cannot be addressed", hint="set the parent mapping with --set instead")
                walk(release, f"{prefix}{k}.", v)
        else:
            out.append((release, prefix.rstrip("."), node))

    for release, sub in tree.items():
        if release not in VALUE_RELEASES:
            raise ConfigError(f"config file {path}: values.{release}: not a release; use infra, gaie or ms")
        if not isinstance(sub, dict):
            raise ConfigError(f"config file {path}: values.{release} must be a mapping of chart values")
        walk(str(release), "", sub)
    return out


def parse_set(expr: str) -> tuple[str, Any]:
    """`--set path=value`. `values.<release>.a.b=<yaml>` goes to chart values, anything else to settings."""
    import yaml

    if "=" not in expr:
        raise ConfigError(f"--set {expr!r}: expected path=value", hint="e.g. --set replicas=2")
    path, _, raw = expr.partition("=")
    path = path.strip()
    if not path:
        raise ConfigError(f"--set {expr!r}: empty path")
    if path.startswith("values."):
        from llmd.value_path import split_path

        parts = path.split(".", 2)
        if len(parts) < 3 or parts[1] not in VALUE_RELEASES or not parts[2] or split_path(parts[2]) is None:
            raise ConfigError(f"--set {expr!r}: chart-value paths look like values.<infra|gaie|ms>.<key.path>",
                              hint="keys separated by '.', list items by index: "
                                   "values.ms.decode.containers[0].image=...")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as exc:
            raise ConfigError(f"--set {expr!r}: value is not valid YAML: {exc}") from None
        return path, _keep_literal(raw.strip(), value)
    if path.startswith("local."):
        if not path.startswith("local.sim.") or not path[len("local.sim."):]:
            raise ConfigError(f"--set {expr!r}: local-platform paths look like local.sim.<flag>",
                              hint="the flag of `llmd sim` every local replica gets, e.g. local.sim.kv-cache-size=1024")
        return path, raw
    name = _normalise_key(path)
    if name not in FIELDS:
        raise _unknown_setting(path, f"--set {expr!r}", values_ok=False)
    return name, raw


def _keep_literal(raw: str, value: Any) -> Any:
    """A scalar that would not survive the YAML round trip stays the string the user typed:
    `1.10` is an image tag, not 1.1; `no`/`on` are words, not booleans (only true/false are)."""
    if isinstance(value, bool):
        return value if raw.lower() in ("true", "false") else raw
    if isinstance(value, (int, float)) and str(value) != raw:
        return raw
    return value


def read_token_file(path: str, warn=None) -> str:
    p = Path(path).expanduser()
    try:
        st = p.stat()
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read HF token file {path}: {exc.strerror}") from None
    if st.st_mode & 0o077 and warn is not None:
        warn(f"HF token file {path} is readable by group or others; chmod 600 {path}")
    return text


def clean_token(raw: str | None, origin: str) -> str | None:
    if raw is None:
        return None
    token = raw.strip()
    if not token:
        raise ConfigError(f"HF token from {origin} is empty",
                          hint="export HF_TOKEN=<token>, pass --hf-token-file, or --no-hf-token for public models")
    if any(c.isspace() for c in token):
        raise ConfigError(f"HF token from {origin} contains whitespace",
                          hint="the file or variable must hold only the token")
    return token


def load_settings(
    flags: Mapping[str, Any] | None = None,
    *,
    sets: list[str] | tuple[str, ...] = (),
    config: str | None = None,
    environ: Mapping[str, str] | None = None,
    need_token: bool = False,
    warn=None,
    flag_names: Mapping[str, str] | None = None,
) -> Settings:
    """Merge every layer into one validated Settings. `flags` holds only the flags the user gave;
    `flag_names` spells each field's flag as the CLI does (kube_context is --context) for `llmd config`."""
    from llmd import redact

    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}

    def put(name: str, raw: Any, origin: str) -> None:
        values[name] = coerce(name, raw, origin)
        sources[name] = origin

    overrides: list[tuple[str, str, Any]] = []
    local_sim: list[tuple[str, Any, str]] = []  # (flag, value, origin), lowest precedence first
    config_path = config or environ.get(CONFIG_ENV)
    if config_path:
        origin = f"config file {config_path}"
        for name, raw in read_config_file(config_path).items():
            if name == "values":
                overrides += raw  # below every --set values.*: those come later, and last wins
                sources["value_overrides"] = origin
            elif name == "local":
                local_sim += [(flag, value, f"{origin}: local.sim.{flag}") for flag, value in raw]
            else:
                put(name, raw, origin)
    for var, name in LEGACY_ENV.items():
        if environ.get(var):
            put(name, environ[var], f"env {var}")
    for name in FIELDS:
        var = env_var(name)
        if var in environ and environ[var] != "":
            put(name, environ[var], f"env {var}")
    for name, raw in (flags or {}).items():
        if raw is None or (isinstance(raw, (list, tuple)) and not raw):
            continue
        if name not in FIELDS:
            raise ConfigError(f"internal: unknown flag field {name}")
        put(name, raw, "flag " + (flag_names or {}).get(name, "--" + name.replace("_", "-")))
    for expr in sets:
        key, raw = parse_set(expr)
        if key.startswith("values."):
            _, release, path = key.split(".", 2)
            overrides.append((release, path, raw))
            sources["value_overrides"] = "--set" if "value_overrides" not in sources else sources[
                "value_overrides"] + " and --set"
        elif key.startswith("local.sim."):
            local_sim.append((key[len("local.sim."):], raw, f"--set {key}"))
        else:
            put(key, raw, f"--set {key}")
    sim_flags: tuple[tuple[str, Any], ...] = ()
    if local_sim:
        from llmd.platform import sim_flags as local_sim_flags

        sim_flags = local_sim_flags.parse_overrides(local_sim)
        sources["local_sim"] = " and ".join(dict.fromkeys(
            "--set" if origin.startswith("--set") else f"config file {config_path}" for _, _, origin in local_sim))

    settings = Settings(**values, value_overrides=tuple(overrides), local_sim=sim_flags, sources=sources)
    validate(settings)

    token = None
    if settings.needs_hf_token:
        if settings.hf_token_file:
            token = clean_token(read_token_file(settings.hf_token_file, warn), f"file {settings.hf_token_file}")
            sources["hf_token"] = f"file {settings.hf_token_file}"
        elif TOKEN_ENV in environ:
            token = clean_token(environ[TOKEN_ENV], f"env {TOKEN_ENV}")
            sources["hf_token"] = f"env {TOKEN_ENV}"
        elif need_token and settings.platform != "local":  # local replicas are simulators: nothing to download
            what = settings.model if settings.model_needs_hf_token else \
                f"the EPP's tokenizer of {settings.model} (the scheduler config tokenizes prompts)"
            raise ConfigError(
                f"no Hugging Face token for {what}: set HF_TOKEN or pass --hf-token-file "
                "(tokens are never accepted as flag values)",
                hint="export HF_TOKEN=<token>; use --no-hf-token for public models",
            )
    elif settings.no_hf_token and warn is not None and settings.platform != "local" and settings.epp_tokenizes:
        warn(f"--no-hf-token: the EPP's tokenizer sidecar downloads the tokenizer of {settings.model} from the Hub "
             "without a token; for a gated model that download fails (401/403) and precise prefix scoring with it")
    redact.register(token)
    if settings.replicas == 0 and warn is not None:  # valid (scale to zero), but nothing will serve
        warn("replicas 0: no decode pods, so nothing serves (the gateway answers 503) until replicas > 0")
    return dataclasses.replace(settings, hf_token=token, sources=sources)
