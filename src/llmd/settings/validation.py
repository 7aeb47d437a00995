"""Validation of Settings against Kubernetes, Helm and Hugging Face limits, before anything runs (exit 2)."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable

from llmd.errors import ConfigError
from llmd.settings.model import ACCELERATORS, ENVIRONMENTS, MODEL_CACHES, PLATFORMS, SCHEDULERS, Settings

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
