"""What a precise-prefix-cache-scorer needs outside the EPP config, derived from the config itself (so a
--scheduler-config file gets it too): the EPP's ZMQ port for vLLM KV events, the UDS tokenizer sidecar,
the HF token where the tokenizer downloads from the Hub, and the model servers' --block-size and
--kv-events-config. Reference: the llm-d v0.6 precise-prefix-cache-aware guide (docs/epp-plugins.md).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from llmd import presets
from llmd.errors import ConfigError
from llmd.scheduler import registry

DEFAULT_ZMQ_PORT = 5557
DEFAULT_BLOCK_SIZE = 16  # llm-d-kv-cache v0.7.1 default: the EPP's block size without tokenProcessorConfig
UDS_DIR = "/tmp/tokenizer"  # the socket directory shared by the EPP and the tokenizer sidecar


@dataclass(frozen=True)
class KvEvents:
    port: int
    block_size: int
    uds_tokenizer: bool


def _plugins(doc: dict[str, Any], ptype: str) -> list[dict[str, Any]]:
    return [p for p in doc.get("plugins") or [] if isinstance(p, dict) and p.get("type") == ptype]


def _dig(node: Any, *keys: str) -> Any:
    for key in keys:
        node = registry.lookup(node, key)  # the key the EPP's json decoding matches (any case)
    return node


def block_size(params: dict[str, Any]) -> int:
    """The EPP's token-processor block size, which vLLM's --block-size must equal: tokenProcessorConfig.blockSize
    at the top of the scorer's parameters (v0.7.1 reads no other), 16 without tokenProcessorConfig. A value the
    EPP refuses is bad input here too, never a default that would disagree with it."""
    tp = _dig(params, "tokenProcessorConfig")
    if tp is None:
        return DEFAULT_BLOCK_SIZE
    size = _dig(tp, "blockSize")
    if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
        raise ConfigError(f"precise-prefix-cache-scorer tokenProcessorConfig.blockSize must be an integer > 0, got "
                          f"{size!r}: the EPP would fail to start, and vLLM's --block-size must equal it",
                          hint="e.g. --scorer-param precise-prefix-cache-scorer.tokenProcessorConfig.blockSize=64")
    return size


def needs_tokenizer(doc: dict[str, Any]) -> bool:
    """Whether the EPP tokenizes prompts (a precise-prefix-cache-scorer or tokenizer plugin): the sidecar then
    downloads the model's tokenizer from the Hub, which needs the HF token for a gated model."""
    return bool(_plugins(doc, "precise-prefix-cache-scorer") or _plugins(doc, "tokenizer"))


def wiring(doc: dict[str, Any]) -> KvEvents | None:
    """The KV-events wiring the config needs, or None when it has no precise-prefix-cache-scorer."""
    precise = _plugins(doc, "precise-prefix-cache-scorer")
    if not precise:
        return None
    params = precise[0].get("parameters") or {}
    endpoint = str(_dig(params, "kvEventsConfig", "zmqEndpoint") or "")
    m = re.search(r":(\d+)$", endpoint)
    # The pinned image has only the UDS tokenizer, and its pool defaults to the sidecar's socket: the sidecar is
    # needed unless the config switches to TCP (a test set-up).
    uds = not _dig(params, "indexerConfig", "tokenizersPoolConfig", "uds", "useTCP")
    return KvEvents(int(m.group(1)) if m else DEFAULT_ZMQ_PORT, block_size(params), uds)


def _hf_env(settings: Any) -> list[dict[str, Any]]:
    if not settings.tokenizer_needs_hf_token:
        return []
    return [{"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": settings.hf_secret_name, "key": "HF_TOKEN"}}}]


def epp_values(settings: Any, kv: KvEvents) -> dict[str, Any]:
    """inferenceExtension keys to add: ZMQ container/service port, tokenizer sidecar, HF token."""
    ext: dict[str, Any] = {
        "extraContainerPorts": [{"name": "zmq", "containerPort": kv.port, "protocol": "TCP"}],
        "extraServicePorts": [{"name": "zmq", "port": kv.port, "targetPort": kv.port, "protocol": "TCP"}],
    }
    env = _hf_env(settings)  # the tokenizer fetches the model's tokenizer from the Hub (gated models need it)
    if env:
        ext["env"] = env
    if kv.uds_tokenizer:
        sidecar = presets.load("defaults")["epp"]["tokenizer_sidecar"]
        ext["sidecar"] = {
            "enabled": True, "name": "tokenizer-uds", "image": sidecar["image"],
            "imagePullPolicy": sidecar["pullPolicy"],
            "configMap": {"name": f"{settings.epp_name}-tokenizer-uds", "data": {"placeholder": ""}},
            # the sidecar downloads the tokenizer: HF_HOME and TOKENIZERS_DIR must be the same directory
            "env": [{"name": "TOKENIZERS_DIR", "value": "/tokenizers"}, {"name": "HF_HOME", "value": "/tokenizers"},
                    *env],
            "volumeMounts": [{"mountPath": "/tokenizers", "name": "tokenizers"},
                             {"mountPath": UDS_DIR, "name": "tokenizer-uds"}],
        }
        ext["volumes"] = [{"name": "tokenizers", "emptyDir": {}}, {"name": "tokenizer-uds", "emptyDir": {}}]
        ext["volumeMounts"] = [{"mountPath": UDS_DIR, "name": "tokenizer-uds"}]
    return ext


def epp_endpoint(settings: Any, kv: KvEvents) -> str:
    return f"tcp://{settings.epp_name}.{settings.namespace}.svc.cluster.local:{kv.port}"


def vllm_args(settings: Any, kv: KvEvents, port: int) -> list[str]:
    """vLLM publishes its KV-cache events to the EPP; the block size must be the EPP's."""
    config = {"enable_kv_cache_events": True, "publisher": "zmq", "endpoint": epp_endpoint(settings, kv),
              "topic": f"kv@$(POD_IP):{port}@{settings.served_model_name}"}
    return [f"--block-size={kv.block_size}", "--kv-events-config", json.dumps(config, separators=(",", ":"))]


def sim_args(settings: Any, kv: KvEvents) -> list[str]:
    """llm-d-inference-sim publishes KV events itself when --enable-kvcache is on (topic kv@<POD_IP>@<model>)."""
    return [f"--zmq-endpoint={epp_endpoint(settings, kv)}"]


def check_model_servers(gaie: dict[str, Any], ms: dict[str, Any]) -> None:
    """After --set: the config the EPP will run and the model servers' args must still agree (a --set of the
    decode args or of pluginsCustomConfig bypasses the wiring above). The EPP hashes KV blocks of
    tokenProcessorConfig.blockSize tokens and matches them to vLLM's events: another --block-size never hits."""
    ext = gaie.get("inferenceExtension") or {}
    text = (ext.get("pluginsCustomConfig") or {}).get(ext.get("pluginsConfigFile"))
    if not isinstance(text, str):
        return  # a chart built-in config: no precise scorer
    from llmd.render import yamlsafe

    doc = yamlsafe.load(text)
    kv = wiring(doc) if isinstance(doc, dict) else None
    if kv is None:
        return
    args = [str(a) for c in (ms.get("decode") or {}).get("containers") or [] for a in c.get("args") or []]
    sizes = {int(m) for m in re.findall(r"--block-size[= ](\d+)", " ".join(args))}
    if sizes != {kv.block_size}:
        got = ", ".join(f"--block-size={s}" for s in sorted(sizes)) or "no --block-size (vLLM's default 16)"
        raise ConfigError(f"the EPP's precise-prefix-cache-scorer uses block size {kv.block_size} but the model "
                          f"servers get {got}: KV-event block keys would never match",
                          hint="set the block size once, with --scorer-param precise-prefix-cache-scorer."
                               "tokenProcessorConfig.blockSize=N (vLLM follows it), and give a precise config with "
                               "--scheduler-config FILE rather than --set so the model servers are wired for it")
