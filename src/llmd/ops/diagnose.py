"""Why a pod is not becoming ready, in words a user can act on.

Terminal states fail fast (exit 6) instead of running into the readiness timeout: image pulls,
container config errors, crash loops (with a log signature for OOM, KV cache, gated model and rate
limit) and pods the scheduler cannot place for longer than a grace window.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from llmd.kube.kubectl import Kubectl

IMAGE_REASONS = ("ImagePullBackOff", "ErrImagePull", "InvalidImageName", "ErrImageNeverPull")
CONFIG_REASONS = ("CreateContainerConfigError", "CreateContainerError", "RunContainerError")

# (name, pattern over the last log lines, hint). Order matters: the first match wins.
LOG_SIGNATURES: tuple[tuple[str, re.Pattern[str], str], ...] = (
    ("gated model", re.compile(r"GatedRepoError|Cannot access gated repo|Access to model .{0,120} is restricted|"
                               r"401 Client Error|403 Client Error|Invalid user token|Invalid credentials in "
                               r"Authorization header", re.I),
     "the model is gated or the token cannot read it: accept the licence on https://huggingface.co/{model} "
     "with the token's account and use a token with read access (HF_TOKEN / --hf-token-file)"),
    ("rate limited", re.compile(r"429 Client Error|Too Many Requests", re.I),
     "Hugging Face rate-limited the download: retry later, and deploy with an HF token"),
    ("KV cache", re.compile(r"No available memory for the cache blocks|KV cache is needed, which is larger than|"
                            r"larger than the maximum number of tokens that can be stored in KV cache|"
                            r"insufficient KV cache", re.I),
     "the KV cache for --max-model-len {max_model_len} does not fit: lower --max-model-len or raise "
     "--gpu-memory-utilization (now {gpu_memory_utilization}) or --tensor-parallel"),
    ("EPP config", re.compile(r"plugin type '[^']+' is not found in registry|failed to (?:load|parse) (?:the )?"
                              r"(?:plugins? )?config", re.I),
     "the endpoint picker rejected its plugin config: use a --scheduler preset, or fix the "
     "values.gaie.inferenceExtension.pluginsCustomConfig you set"),
    ("missing CRD", re.compile(r'no matches for kind "?(?:InferencePool|InferenceObjective|InferenceModel)', re.I),
     "an inference CRD is missing or too old: kubectl apply -k \"https://github.com/kubernetes-sigs/"
     "gateway-api-inference-extension/config/crd/?ref=v1.4.0\""),
    ("out of memory", re.compile(r"CUDA out of memory|torch\.OutOfMemoryError|OutOfMemoryError|"
                                 r"HIP out of memory|Cannot allocate memory", re.I),
     "out of memory: lower --max-model-len (now {max_model_len}) or --gpu-memory-utilization (now "
     "{gpu_memory_utilization}), raise --tensor-parallel, or raise the container memory limit"),
)

OOM_HINT = next(hint for name, _, hint in LOG_SIGNATURES if name == "out of memory")


@dataclass(frozen=True)
class Finding:
    pod: str
    reason: str
    message: str
    hint: str

    def to_dict(self) -> dict:
        return {"pod": self.pod, "reason": self.reason, "message": self.message, "hint": self.hint}


def _fmt(hint: str, settings) -> str:
    return hint.format(model=settings.model, max_model_len=settings.max_model_len,
                       gpu_memory_utilization=settings.gpu_memory_utilization)


def match_logs(text: str, settings) -> tuple[str, str] | None:
    """(signature name, hint) for the first known failure signature in `text`."""
    for name, pattern, hint in LOG_SIGNATURES:
        if pattern.search(text or ""):
            return name, _fmt(hint, settings)
    return None


def last_line_matching(text: str, settings) -> str:
    for line in reversed((text or "").splitlines()):
        if match_logs(line, settings):
            return line.strip()[:300]
    lines = [ln for ln in (text or "").splitlines() if ln.strip()]
    return lines[-1].strip()[:300] if lines else ""


def container_states(pod: dict) -> list[dict]:
    st = pod.get("status") or {}
    return list(st.get("initContainerStatuses") or []) + list(st.get("containerStatuses") or [])


def unschedulable_message(pod: dict) -> str | None:
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c.get("type") == "PodScheduled" and c.get("status") == "False" and c.get("reason") == "Unschedulable":
            return c.get("message") or "Unschedulable"
    return None


def pod_logs(kubectl: Kubectl, pod: str, container: str | None, *, previous: bool) -> str:
    args = ["logs", pod, "--tail", "60"]
    if container:
        args += ["--container", container]
    if previous:
        args.append("--previous")
    res = kubectl.run(*args, check=False, timeout=20)
    return res.stdout if res.ok else ""


def terminal_finding(kubectl: Kubectl, pod: dict, settings) -> Finding | None:
    """A Finding when the pod is in a state that will not fix itself; None while it may still come up."""
    name = pod["metadata"]["name"]
    for cs in container_states(pod):
        waiting = (cs.get("state") or {}).get("waiting") or {}
        reason = waiting.get("reason", "")
        if reason in IMAGE_REASONS:
            return Finding(name, reason, f"image {cs.get('image')}: {waiting.get('message', reason)}",
                           "check the image name and tag, the registry's reachability from the nodes, and "
                           "imagePullSecrets")
        if reason in CONFIG_REASONS:
            return Finding(name, reason, waiting.get("message", reason),
                           f"a referenced Secret/ConfigMap is missing or invalid (the HF token Secret is "
                           f"{settings.hf_secret_name}, key HF_TOKEN)")
        if reason == "CrashLoopBackOff":
            last = ((cs.get("lastState") or {}).get("terminated") or {})
            logs = pod_logs(kubectl, name, cs.get("name"), previous=True)
            found = match_logs(logs, settings)
            if last.get("reason") == "OOMKilled" and found is None:
                found = ("out of memory", _fmt(OOM_HINT, settings))
            if found:
                sig, hint = found
                return Finding(name, f"CrashLoopBackOff ({sig})",
                               f"container {cs.get('name')} restarted {cs.get('restartCount', 0)}×: "
                               f"{last_line_matching(logs, settings) or last.get('reason', '')}", hint)
            return Finding(name, "CrashLoopBackOff",
                           f"container {cs.get('name')} restarted {cs.get('restartCount', 0)}× "
                           f"(last exit {last.get('exitCode', '?')} {last.get('reason', '')}): "
                           f"{last_line_matching(logs, settings) or 'no log output'}",
                           f"read the logs: kubectl logs -n {settings.namespace} {name} -c {cs.get('name')} --previous")
    return None


def job_failure(kubectl: Kubectl, job: dict, settings) -> Finding | None:
    conds = (job.get("status") or {}).get("conditions") or []
    failed = next((c for c in conds if c.get("type") == "Failed" and c.get("status") == "True"), None)
    if failed is None:
        return None
    name = job["metadata"]["name"]
    logs = pod_logs(kubectl, f"job/{name}", None, previous=False)
    found = match_logs(logs, settings)
    hint = found[1] if found else f"read the logs: kubectl logs -n {settings.namespace} job/{name}"
    reason = f"download failed ({found[0]})" if found else "download failed"
    return Finding(name, reason, f"{failed.get('reason', 'Failed')}: {failed.get('message', '')} "
                                 f"{last_line_matching(logs, settings)}".strip(), hint)
