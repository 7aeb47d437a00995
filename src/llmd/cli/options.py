"""Shared options. `settings_options` adds every deployment setting as a flag to a command.

Flags default to None so an absent flag is visible as "not given" and lower layers
(config file, environment, defaults) apply. Each flag's help names its environment variable.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable
from enum import Enum
from typing import Annotated, Any, Optional

import typer

from llmd import settings as S
from llmd.cli import complete

# (field, flags, type, help). Field names match llmd.settings.Settings.
_SETTING_FLAGS: list[tuple[str, tuple[str, ...], Any, str]] = [
    ("namespace", ("-n", "--namespace"), str, "Namespace of the stack [env NAMESPACE]"),
    ("kube_context", ("--context",), str, "kubeconfig context to use (pinned for every call)"),
    ("kubeconfig", ("--kubeconfig",), str, "Path to the kubeconfig file [env KUBECONFIG]"),
    ("environment", ("-e", "--environment"), str, "Gateway provider: " + ", ".join(S.ENVIRONMENTS)),
    ("release_postfix", ("--release-postfix",), str, "Postfix of the release names [env RELEASE_NAME_POSTFIX]"),
    ("model", ("--model",), str, "Hugging Face model id to serve"),
    ("replicas", ("--replicas",), int, "Number of decode replicas: vLLM pods (--platform local: llmd sim processes, "
                                       "{local} unless given)"),
    ("tensor_parallel", ("--tensor-parallel", "--tp"), int, "Tensor parallel size (GPUs per replica)"),
    ("max_model_len", ("--max-model-len",), int, "vLLM --max-model-len"),
    ("gpu_memory_utilization", ("--gpu-memory-utilization",), float, "vLLM --gpu-memory-utilization"),
    ("accelerator", ("--accelerator",), str, "Accelerator profile: " + ", ".join(S.ACCELERATORS)),
    ("model_cache", ("--model-cache",), str, "Model cache: pvc (downloaded once) or emptydir"),
    ("pvc_size", ("--pvc-size",), str, "Size of the model-cache PVC"),
    ("storage_class", ("--storage-class",), str, "StorageClass of the model-cache PVC (default: the cluster's)"),
    ("scheduler", ("--scheduler",), str, "EPP scheduler profile: " + ", ".join(S.SCHEDULERS)),
    ("scorer_weights", ("--scorer-weight",), list[str],
     "Override a scorer's weight, NAME=W (repeatable), e.g. prefix-cache-scorer=5"),
    ("scorer_params", ("--scorer-param",), list[str],
     "Set a plugin parameter, PLUGIN.PARAM=VALUE (repeatable), e.g. prefix-cache-scorer.blockSizeTokens=64"),
    ("scheduler_config", ("--scheduler-config",), str,
     "A whole EndpointPickerConfig file (or inferencepool values holding one) instead of a profile"),
    ("monitoring", ("--monitoring/--no-monitoring",), bool,
     "Create ServiceMonitor/PodMonitor (needs Prometheus Operator)"),
    ("hf_token_file", ("--hf-token-file",), str, "Read the HF token from this file instead of HF_TOKEN"),
    ("no_hf_token", ("--no-hf-token",), bool, "Deploy without an HF token (public models)"),
    ("timeout", ("--timeout",), int, "Seconds to wait for readiness"),
    ("gpu_product", ("--gpu-product",), str,
     "Schedule only on nodes with this nvidia.com/gpu.product label (e.g. NVIDIA-L40S); default: any GPU node"),
    ("chart_source_infra", ("--chart-source-infra",), str,
     "Air-gap: llm-d-infra from oci://<mirror>/llm-d-infra, a Helm repo URL, or a local dir/.tgz"),
    ("chart_source_gaie", ("--chart-source-gaie",), str,
     "Air-gap: inferencepool from oci://<mirror>/inferencepool, a Helm repo URL, or a local dir/.tgz"),
    ("chart_source_ms", ("--chart-source-ms",), str,
     "Air-gap: llm-d-modelservice from oci://<mirror>/llm-d-modelservice, a Helm repo URL, or a local dir/.tgz"),
    ("image_mirror", ("--image-mirror",), str,
     "Rewrite image prefixes in every rendered value: from=to[,from=to] (ghcr.io/llm-d=registry.corp/llm-d)"),
    ("download_image", ("--download-image",), str,
     "Image of the model-download Job (needs python3 and pip access to huggingface_hub)"),
    ("platform", ("--platform",), str, "Where the stack runs: " + ", ".join(S.PLATFORMS)
     + " (local: simulated replicas and a scheduling gateway on 127.0.0.1)"),
]

GROUP = "Deployment settings"
# The long flag of each setting, as `llmd config` names a value's source (kube_context is --context).
FLAG_NAMES = {field: next(d for d in decls if d.startswith("--")).split("/")[0] for field, decls, *_ in _SETTING_FLAGS}


# <TAB> choices (`llmd completion`): fixed lists, and contexts/namespaces from the kubeconfig (cli/complete.py)
COMPLETIONS: dict[str, Callable[..., list[str]]] = {
    "namespace": complete.namespaces,
    "kube_context": complete.contexts,
    "environment": complete.fixed(lambda: S.ENVIRONMENTS),
    "accelerator": complete.fixed(lambda: S.ACCELERATORS),
    "scheduler": complete.fixed(complete.schedulers),
    "model_cache": complete.fixed(lambda: S.MODEL_CACHES),
    "platform": complete.fixed(lambda: S.PLATFORMS),
}


def _help(field: str, text: str) -> str:
    """The flag's help with its built-in default (the flag itself defaults to "not given") and its variable."""
    default = getattr(S.Settings(), field, None)
    if isinstance(default, bool):
        default = None if not default else "on"
    shown = f" [default: {', '.join(default) if isinstance(default, (list, tuple)) else default}]" if (
        default not in (None, "", (), [])) and "default:" not in text else ""
    if "{local}" in text:  # the local platform's own default (presets/local.yaml)
        from llmd import presets

        text = text.replace("{local}", str(presets.load_shared("local")[field]))
    if "[env" in text:
        return text.replace(" [env", f"{shown} [env", 1)
    return f"{text}{shown} [env {S.env_var(field)}]"


def settings_options(fn: Callable) -> Callable:
    """Decorate a command: it receives `flags: dict` (only flags given) and `sets`, `config`."""
    sig = inspect.signature(fn)
    extra: list[inspect.Parameter] = []
    for field, decls, typ, text in _SETTING_FLAGS:
        opt = typer.Option(*decls, help=_help(field, text), rich_help_panel=GROUP, show_default=False,
                           autocompletion=COMPLETIONS.get(field))
        extra.append(inspect.Parameter(f"opt_{field}", inspect.Parameter.KEYWORD_ONLY,
                                       default=None, annotation=Annotated[Optional[typ], opt]))  # noqa: UP045
    extra.append(inspect.Parameter(
        "opt_set", inspect.Parameter.KEYWORD_ONLY, default=None,
        annotation=Annotated[Optional[list[str]], typer.Option(  # noqa: UP045
            "--set", help="Override a setting (replicas=2), a chart value (values.ms.decode.replicas=2) or a "
                     "local replica's llmd sim flag (local.sim.kv-cache-size=1024)",
            rich_help_panel=GROUP, show_default=False)]))
    extra.append(inspect.Parameter(
        "opt_config", inspect.Parameter.KEYWORD_ONLY, default=None,
        annotation=Annotated[Optional[str], typer.Option(  # noqa: UP045
            "--config", "-c", help="YAML file of settings [env LLMD_CONFIG]", rich_help_panel=GROUP,
            show_default=False)]))
    # Resolve the command's own annotations now: with `from __future__ import annotations` they are
    # strings that Typer could not evaluate against the wrapper's globals.
    hints = typing.get_type_hints(fn, include_extras=True)
    own = [p.replace(annotation=hints.get(name, p.annotation))
           for name, p in sig.parameters.items() if name not in ("flags", "sets", "config")]

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        flags = {f: kwargs.pop(f"opt_{f}") for f, *_ in _SETTING_FLAGS}
        sets = kwargs.pop("opt_set") or []
        config = kwargs.pop("opt_config")
        return fn(*args, flags=flags, sets=sets, config=config, **kwargs)

    params = own + extra
    wrapper.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in params}
    return wrapper


class OutputFormat(str, Enum):
    table = "table"
    json = "json"


JsonOpt = Annotated[bool, typer.Option("--json", help="Print a JSON document on stdout instead of tables")]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Print the plan; run nothing, open no sockets")]
ForceOpt = Annotated[bool, typer.Option("--force", "-f", help="Do not ask for confirmation (guards still apply)")]
