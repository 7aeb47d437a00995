"""The settings model: the choices and the immutable Settings with every derived name (one place; render, deploy,
status, test and cleanup all read them)."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

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
    # `llmd prereqs install`'s chart sources (RELEASE=SOURCE) and repository URLs (NAME=URL), also --chart/--repo
    prereq_charts: tuple[str, ...] = ()
    prereq_repos: tuple[str, ...] = ()
    platform: str = "kubernetes"
    # `--set values.<infra|gaie|ms>.<path>=<yaml>`: raw chart-value overrides, merged last by render.
    value_overrides: tuple[tuple[str, str, Any], ...] = ()
    # `--set local.sim.<flag>=V`: the local replicas' `llmd sim` flags over presets/local.yaml (llmd.platform.sim_flags)
    local_sim: tuple[tuple[str, Any], ...] = ()
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
    def model_needs_hf_token(self) -> bool:
        """The model servers download weights from the Hub (the simulator downloads none)."""
        return not self.no_hf_token and self.accelerator != "sim"

    @functools.cached_property
    def epp_tokenizes(self) -> bool:
        """The selected EPP config tokenizes prompts (precise-prefix-cache-scorer, tokenizer plugin): its sidecar
        downloads the model's tokenizer from the Hub, on every accelerator (sim included)."""
        from llmd.render import kv_events
        from llmd.scheduler import selection

        return kv_events.needs_tokenizer(selection.for_settings(self).config)

    @property
    def tokenizer_needs_hf_token(self) -> bool:
        return not self.no_hf_token and self.epp_tokenizes

    @property
    def needs_hf_token(self) -> bool:
        """Something downloads from the Hub: the model weights or the EPP's tokenizer (--no-hf-token wins)."""
        return self.model_needs_hf_token or self.tokenizer_needs_hf_token

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
            if f.name in ("sources", "hf_token", "value_overrides", "local_sim"):
                continue
            out[f.name] = getattr(self, f.name)
        out["hf_token"] = "(set)" if self.hf_token else None
        if self.value_overrides:
            out["value_overrides"] = [f"{r}.{p}={v!r}" for r, p, v in self.value_overrides]
        if self.local_sim:
            out["local_sim"] = dict(self.local_sim)
        if with_sources:
            return {k: {"value": v, "source": self.sources.get(k, "default")} for k, v in out.items()}
        return out
