"""Layered, validated, immutable settings with provenance.

Precedence (lowest first): built-in defaults < config file (--config / LLMD_CONFIG) < environment
(LLMD_* and the names shell-guide users already export) < command-line flags < --set path=value.
`Settings.sources` records where each value came from, so `llmd config` can explain it.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmd.errors import ConfigError

# Choices: the names of the entries in presets/*.yaml, which hold what each one means (llmd.presets.facts).
# Spelled out here so that flag help and validation need no YAML parse; tests/test_presets.py checks they agree.
ENVIRONMENTS = ("istio", "agentgateway", "kgateway", "gke")
ACCELERATORS = ("nvidia-l40s", "nvidia-h100", "nvidia-a100", "amd", "tpu-v6e", "cpu", "sim")
# Scheduler profiles (presets/schedulers.yaml; deprecated aliases load/optimized are accepted too).
SCHEDULERS = ("default", "queue", "kv-cache", "prefix", "random", "optimized-baseline", "precise-prefix")
MODEL_CACHES = ("pvc", "emptydir")
PLATFORMS = ("kubernetes", "local")  # where the stack runs: llmd.platform.select() is the one place that decides


@dataclass(frozen=True)
class Settings:
    namespace: str = "llm-d-inference-scheduling"
    kube_context: str | None = None
    kubeconfig: str | None = None
    environment: str = "istio"
    release_postfix: str = "inference-scheduling"
    model: str = "meta-llama/Llama-3.1-8B-Instruct"
    replicas: int = 4
    tensor_parallel: int = 1
    max_model_len: int = 4096
    gpu_memory_utilization: float = 0.95
    accelerator: str = "nvidia-l40s"
    model_cache: str = "pvc"
    pvc_size: str = "50Gi"
    storage_class: str | None = None
    scheduler: str = "default"
    scorer_weights: tuple[str, ...] = ()  # --scorer-weight NAME=W
    scorer_params: tuple[str, ...] = ()  # --scorer-param PLUGIN.PARAM=VALUE
    scheduler_config: str | None = None  # --scheduler-config FILE: a whole EndpointPickerConfig instead
    monitoring: bool = False
    hf_token_file: str | None = None
    no_hf_token: bool = False
    timeout: int = 1800  # seconds for deploy readiness
    # Opt-in required node affinity on nvidia.com/gpu.product (GPU Feature Discovery label); None: any GPU node.
    gpu_product: str | None = None
    # Air-gapped / mirrored installs (llmd.render.mirror): per-chart source, image registry rewrite, Job image.
    chart_source_infra: str | None = None
    chart_source_gaie: str | None = None
    chart_source_ms: str | None = None
    image_mirror: str | None = None
    download_image: str | None = None
    platform: str = "kubernetes"
    # `--set values.<infra|gaie|ms>.<path>=<yaml>`: raw chart-value overrides, merged last by render.
    value_overrides: tuple[tuple[str, str, Any], ...] = ()
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)
    hf_token: str | None = field(default=None, repr=False, compare=False)

    # ---- derived names (one place; render, deploy, status, test and cleanup all use these) -------

    @property
    def infra_release(self) -> str:
        return f"infra-{self.release_postfix}"

    @property
    def gaie_release(self) -> str:
        return f"gaie-{self.release_postfix}"

    @property
    def ms_release(self) -> str:
        return f"ms-{self.release_postfix}"

    @property
    def releases(self) -> tuple[str, str, str]:
        return (self.infra_release, self.gaie_release, self.ms_release)

    @property
    def gateway_name(self) -> str:
        return f"{self.infra_release}-inference-gateway"

    @property
    def gateway_service(self) -> str | None:
        """The data-plane Service the gateway provider creates; None (GKE): use the Gateway's address."""
        from llmd.presets import facts

        return facts.environment(self.environment).service_name(self.gateway_name)

    @property
    def pool_name(self) -> str:
        return self.gaie_release

    @property
    def epp_name(self) -> str:
        return f"{self.gaie_release[:40].rstrip('-')}-epp"

    @property
    def ms_fullname(self) -> str:
        if "llm-d-modelservice" in self.ms_release:
            return self.ms_release[:55].rstrip("-")
        return f"{self.ms_release}-llm-d-modelservice"[:55].rstrip("-")

    @property
    def decode_deployment(self) -> str:
        return f"{self.ms_fullname}-decode"

    @property
    def httproute_name(self) -> str:
        return f"llm-d-{self.release_postfix}"

    @property
    def hf_secret_name(self) -> str:
        """Per release postfix: two stacks in one namespace each keep (and clean up) their own token."""
        return f"llm-d-hf-token-{self.release_postfix}"

    @property
    def pvc_name(self) -> str:
        return f"model-cache-{self.release_postfix}"

    @property
    def download_job_name(self) -> str:
        return f"model-download-{self.release_postfix}"

    @property
    def guide_label(self) -> str:
        return self.release_postfix

    @property
    def served_model_name(self) -> str:
        return self.model

    @property
    def uses_gpu(self) -> bool:
        from llmd.presets import facts

        return facts.accelerator(self.accelerator).gpu_resource is not None

    @property
    def needs_hf_token(self) -> bool:
        return not self.no_hf_token and self.accelerator != "sim"

    def derived_names(self) -> dict[str, tuple[str, int]]:
        """Every generated object name with its length limit (checked by validate())."""
        return {
            "helm release infra": (self.infra_release, 53),
            "helm release gaie": (self.gaie_release, 53),
            "helm release ms": (self.ms_release, 53),
            "gateway": (self.gateway_name, 63),
            "gateway service": (f"{self.gateway_name}-istio", 63),
            "httproute": (self.httproute_name, 63),
            "hf token secret": (self.hf_secret_name, 253),
            "pvc": (self.pvc_name, 63),
            "download job": (self.download_job_name, 52),  # Job pods add a suffix
            # Pod hostnames are <deployment>-<template hash>-<id> cut to 63 characters; past 52 the
            # hash is cut away and hostnames collide in logs and metrics (llm-d/llm-d#508).
            "decode deployment (pod hostname prefix)": (self.decode_deployment, 52),
        }

    def to_dict(self, *, with_sources: bool = False) -> dict[str, Any]:
        out = {}
        for f in dataclasses.fields(self):
            if f.name in ("sources", "hf_token", "value_overrides"):
                continue
            out[f.name] = getattr(self, f.name)
        out["hf_token"] = "(set)" if self.hf_token else None
        if self.value_overrides:
            out["value_overrides"] = [f"{r}.{p}={v!r}" for r, p, v in self.value_overrides]
        if with_sources:
            return {k: {"value": v, "source": self.sources.get(k, "default")} for k, v in out.items()}
        return out


# ---- validation ----------------------------------------------------------------------------------

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
# Hugging Face repo id: optional namespace, each part alnum plus . _ -, no "--" or "..", no leading/trailing sep.
HF_PART = r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?"
HF_REPO_ID = re.compile(rf"^(?:{HF_PART}/)?{HF_PART}$")
K8S_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$")
LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$")
CONTEXT_NAME = re.compile(r"^[A-Za-z0-9@._:/-]{1,253}$")


def _suggest_dns(value: str) -> str:
    s = re.sub(r"[^a-z0-9-]+", "-", value.lower()).strip("-")
    return re.sub(r"-{2,}", "-", s)[:63].strip("-") or "llmd"


def _too_long(s: Settings) -> list[str]:
    return [f"{what} {name!r} is {len(name)} characters (limit {limit})"
            for what, (name, limit) in s.derived_names().items() if len(name) > limit]


def _fit_postfix(s: Settings, candidate: str) -> str:
    """The longest prefix of `candidate` whose derived names all fit: a suggested fix must pass itself."""
    for n in range(len(candidate), 0, -1):
        cut = candidate[:n].rstrip("-")
        if cut and DNS1035_LABEL.match(cut) and not _too_long(dataclasses.replace(s, release_postfix=cut)):
            return cut
    return "llmd"


def _check_not_flag(name: str, value: str | None) -> list[str]:
    if value is not None and value.startswith("-"):
        return [f"{name}: {value!r} starts with '-' and would be read as a flag; pass a real value"]
    return []


def validate(s: Settings) -> None:
    errors: list[str] = []
    for name in ("namespace", "release_postfix", "model", "kube_context", "kubeconfig", "storage_class",
                 "pvc_size", "hf_token_file", "gpu_product", "chart_source_infra", "chart_source_gaie",
                 "chart_source_ms", "image_mirror", "download_image"):
        errors += _check_not_flag(name, getattr(s, name))
    if errors:
        raise ConfigError("invalid settings:\n" + "\n".join(f"  • {e}" for e in errors),
                          hint="values must not start with '-' (argument-injection guard)")
    if len(s.namespace) > 63:
        errors.append(f"namespace: {len(s.namespace)} characters, the limit is 63")
    elif not DNS1123_LABEL.match(s.namespace):
        errors.append(
            f"namespace: {s.namespace!r} must be a DNS-1123 label (lowercase letters, digits and '-', "
            f"starting and ending with a letter or digit, at most 63); try {_suggest_dns(s.namespace)!r}"
        )
    if not DNS1035_LABEL.match(s.release_postfix):
        why = ("Service names derived from it must start with a letter"
               if s.release_postfix[:1].isdigit() else "it must be lowercase letters, digits and '-'")
        fix = _suggest_dns(s.release_postfix)
        fix = _fit_postfix(s, f"r-{fix}" if fix[:1].isdigit() else fix)
        errors.append(f"release_postfix: {s.release_postfix!r} must be a DNS-1035 label ({why}); try {fix!r}")
    else:
        too_long = _too_long(s)
        if too_long:
            fix = _fit_postfix(s, s.release_postfix)
            errors.append("release_postfix: derived names are too long: " + "; ".join(too_long)
                          + f"; use a shorter --release-postfix (at most {len(fix)} characters), e.g. {fix!r}")
    if not HF_REPO_ID.match(s.model) or "--" in s.model or ".." in s.model:
        errors.append(f"model: {s.model!r} is not a Hugging Face repo id like 'org/name' (each part at most 96 "
                      "letters, digits, '.', '_', '-', starting and ending with a letter or digit; no '--' or '..')")
    elif "/" not in s.model and s.model_cache == "pvc" and s.accelerator != "sim":
        # The modelservice chart splits a pvc+hf:// URI into <hub cache>/<org>/<model>: `gpt2` would become the
        # model `hub/gpt2` in an empty cache path. The Hub redirects org-less ids to their canonical org/name.
        errors.append(f"model: {s.model!r} has no organisation, which the PVC model cache cannot address; use the "
                      f"canonical id from its Hugging Face page (e.g. openai-community/{s.model}), or "
                      "--model-cache emptydir")
    if s.environment not in ENVIRONMENTS:
        errors.append(f"environment: {s.environment!r} is not one of {', '.join(ENVIRONMENTS)}")
    if s.accelerator not in ACCELERATORS:
        errors.append(f"accelerator: {s.accelerator!r} is not one of {', '.join(ACCELERATORS)}")
    errors += _check_scheduler(s)
    if s.platform not in PLATFORMS:
        errors.append(f"platform: {s.platform!r} is not one of {', '.join(PLATFORMS)}")
    if s.model_cache not in MODEL_CACHES:
        errors.append(f"model_cache: {s.model_cache!r} is not one of {', '.join(MODEL_CACHES)}")
    for name, lo, hi in (("replicas", 0, 512), ("tensor_parallel", 1, 64), ("max_model_len", 16, 10_000_000),
                         ("timeout", 10, 86_400)):
        v = getattr(s, name)
        if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
            errors.append(f"{name}: {v!r} must be an integer from {lo} to {hi}")
    g = s.gpu_memory_utilization
    if not isinstance(g, (int, float)) or isinstance(g, bool) or not 0.05 <= g <= 1.0:
        errors.append(f"gpu_memory_utilization: {g!r} must be a number from 0.05 to 1.0")
    if s.no_hf_token and s.hf_token_file:  # one of them would be silently ignored
        errors.append(f"hf_token_file: {s.hf_token_file!r} contradicts no_hf_token; drop one of "
                      "--hf-token-file / --no-hf-token")
    if s.accelerator == "sim" and s.tensor_parallel != 1:
        errors.append("tensor_parallel: the simulator accepts no tensor parallelism; use 1 with --accelerator sim")
    if not K8S_QUANTITY.match(s.pvc_size):
        errors.append(f"pvc_size: {s.pvc_size!r} is not a Kubernetes quantity like '50Gi'")
    if s.storage_class is not None and not re.match(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", s.storage_class):
        errors.append(f"storage_class: {s.storage_class!r} is not a StorageClass name (a DNS-1123 subdomain: "
                      "lowercase letters, digits, '-' and '.'); `kubectl get storageclass` lists them")
    if s.gpu_product is not None:
        if not s.accelerator.startswith("nvidia-"):
            errors.append(f"gpu_product: {s.gpu_product!r} applies to NVIDIA accelerators only, not {s.accelerator}")
        elif not LABEL_VALUE.match(s.gpu_product):
            errors.append(f"gpu_product: {s.gpu_product!r} is not a node label value (the nvidia.com/gpu.product "
                          "label, e.g. NVIDIA-L40S; `kubectl get nodes -L nvidia.com/gpu.product` lists them)")
    from llmd.render.mirror import validate_sources

    errors += validate_sources(s)
    if s.kube_context is not None and not CONTEXT_NAME.match(s.kube_context):
        errors.append(f"kube_context: {s.kube_context!r} has characters a kubeconfig context name cannot have")
    if errors:
        raise ConfigError("invalid settings:\n" + "\n".join(f"  • {e}" for e in errors),
                          hint="fix the values above (flags, LLMD_* variables or the config file); "
                               "`llmd config` shows where each value came from")


def _check_scheduler(s: Settings) -> list[str]:
    from llmd.scheduler import profiles

    errors = []
    if s.scheduler not in SCHEDULERS and s.scheduler not in profiles.aliases():
        errors.append(profiles.unknown_name_error(s.scheduler))
    checks: list[tuple[Callable[[str], object], str]] = [(profiles.parse_weight, w) for w in s.scorer_weights]
    checks += [(profiles.parse_param, p) for p in s.scorer_params]
    for parse, expr in checks:
        try:
            parse(expr)
        except ConfigError as exc:
            errors.append(exc.message)
    return errors


# ---- loading -------------------------------------------------------------------------------------

FIELDS = {f.name: f for f in dataclasses.fields(Settings)
          if f.name not in ("sources", "hf_token", "value_overrides")}

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

    known = sorted(FIELDS) + (["values"] if values_ok else [])
    guess = close_match(_normalise_key(key), known)
    return ConfigError(f"{where}: unknown setting {key!r}" + (f"; did you mean {guess!r}?" if guess else ""),
                       hint="known settings: " + ", ".join(known)
                            + ("" if values_ok else ", or values.<infra|gaie|ms>.<path> for chart values"))


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
        if name not in FIELDS:
            raise _unknown_setting(str(key), f"config file {path}", values_ok=True)
        out[name] = value
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
    config_path = config or environ.get(CONFIG_ENV)
    if config_path:
        origin = f"config file {config_path}"
        for name, raw in read_config_file(config_path).items():
            if name == "values":
                overrides += raw  # below every --set values.*: those come later, and last wins
                sources["value_overrides"] = origin
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
        else:
            put(key, raw, f"--set {key}")

    settings = Settings(**values, value_overrides=tuple(overrides), sources=sources)
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
            raise ConfigError(
                f"no Hugging Face token for {settings.model}: set HF_TOKEN or pass --hf-token-file "
                "(tokens are never accepted as flag values)",
                hint="export HF_TOKEN=<token>; use --no-hf-token for public models",
            )
    redact.register(token)
    if settings.replicas == 0 and warn is not None:  # valid (scale to zero), but nothing will serve
        warn("replicas 0: no decode pods, so nothing serves (the gateway answers 503) until replicas > 0")
    return dataclasses.replace(settings, hf_token=token, sources=sources)
