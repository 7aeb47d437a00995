"""Chart values for the three releases, built as plain dicts from Settings + preset data.

Nothing here formats YAML: the engine dumps these dicts and parses them back (rule 8).
Names always come from Settings properties.
"""
# The IDs cited here (rule N, F##) are defined in docs/behaviours.md.

from __future__ import annotations

import re
from typing import Any

from llmd import presets
from llmd.errors import ConfigError
from llmd.render import epp, gaie_keys, kv_events, layers, value_schema, yamlsafe
from llmd.scheduler import selection
from llmd.settings import Settings
from llmd.value_path import canonical, join_path, split_path

GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"  # GPU Feature Discovery
SERVING_LABEL = "llm-d.ai/inference-serving"
GUIDE_LABEL = "llm-d.ai/guide"
MODEL_LABEL = "llm-d.ai/model"


def profile(settings: Settings) -> dict[str, Any]:
    return presets.load("accelerators")[settings.accelerator]


def label_value(text: str) -> str:
    """A Kubernetes label value (<= 63, [A-Za-z0-9._-], alnum at both ends) derived from `text`."""
    value = re.sub(r"[^A-Za-z0-9._-]+", "-", text)[:63]
    return re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", value) or "model"


def pool_match_labels(settings: Settings) -> dict[str, str]:
    """The InferencePool selector; the decode pods carry these labels (and more)."""
    return {SERVING_LABEL: "true", GUIDE_LABEL: settings.guide_label}


def model_labels(settings: Settings) -> dict[str, str]:
    labels = pool_match_labels(settings)
    labels.update({k: str(v) for k, v in layers.ms(settings.accelerator)["modelArtifacts"]["labels"].items()})
    labels[MODEL_LABEL] = label_value(settings.model.rsplit("/", 1)[-1])
    return labels


ROLE_LABEL = "llm-d.ai/role"


def decode_selector(ms_values: dict[str, Any]) -> dict[str, str]:
    """The selector llm-d-modelservice puts on the decode Deployment: the model labels plus the role. A selector
    is immutable, so a change (another --model or --accelerator) needs the Deployment replaced, not upgraded."""
    labels = {str(k): str(v) for k, v in ((ms_values.get("modelArtifacts") or {}).get("labels") or {}).items()}
    return {**labels, ROLE_LABEL: "decode"}


def selector_changes(live: dict[str, str], wanted: dict[str, str]) -> list[str]:
    """What differs between a live selector and the wanted one, one `key: old -> new` per label."""
    keys = sorted(set(live) | set(wanted))
    return [f"{k}: {live.get(k, '(none)')} -> {wanted.get(k, '(none)')}" for k in keys if live.get(k) != wanted.get(k)]


def uses_model_cache(settings: Settings) -> bool:
    """A PVC + download Job are rendered only for real model servers with model_cache=pvc (the sim needs no weights)."""
    return settings.model_cache == "pvc" and profile(settings)["engine"] != "sim"


# ---- llm-d-infra ---------------------------------------------------------------------------------

def infra_values(settings: Settings) -> dict[str, Any]:
    values = layers.layer("infra", settings.environment)
    prof = profile(settings)
    if prof.get("small_cluster") and settings.environment == "istio":
        small = presets.load("accelerators")["small_cluster"]
        values["gateway"]["gatewayParameters"]["resources"] = small["gateway_resources"]
    return values


# ---- inferencepool (GAIE) ------------------------------------------------------------------------

def gaie_values(settings: Settings, chosen: selection.Selection | None = None) -> dict[str, Any]:
    defaults = presets.load("defaults")
    chosen = chosen or selection.for_settings(settings)
    config_text = yamlsafe.dump(chosen.config)
    config_file = epp.config_file_name(config_text)
    base = layers.layer("gaie", "base")
    static = base["inferenceExtension"]
    ext: dict[str, Any] = {
        "replicas": static["replicas"],
        "image": defaults["epp"]["image"],
        "extProcPort": static["extProcPort"],
        # The EPP reads its config once at start: a content-hashed file name changes the pod template's
        # --config-file argument, so every config change rolls the EPP.
        "pluginsConfigFile": config_file,
        "pluginsCustomConfig": {config_file: config_text},
        "tracing": static["tracing"],
        "monitoring": {
            **static["monitoring"],
            "prometheus": {
                "enabled": settings.monitoring,
                # Release-scoped: the chart's fixed default collides across stacks in one namespace.
                "auth": {"enabled": True, "secretName": f"{settings.gaie_release}-sa-metrics-reader-secret"},
            },
        },
    }
    if profile(settings).get("small_cluster"):
        ext["resources"] = presets.load("accelerators")["small_cluster"]["epp_resources"]
    kv = kv_events.wiring(chosen.config)
    if kv:
        ext.update(kv_events.epp_values(settings, kv))
    provider = layers.layer("gaie", settings.environment)["provider"]
    if provider["name"] == "istio":
        rule = provider["istio"]["destinationRule"]
        provider["istio"]["destinationRule"] = {
            "host": f"{settings.epp_name}.{settings.namespace}.svc.cluster.local", **rule}
    return {
        "inferenceExtension": ext,
        "inferencePool": {
            "targetPorts": [{"number": defaults["model_server"]["port"]}],
            "modelServerType": base["inferencePool"]["modelServerType"],
            "modelServers": {"matchLabels": pool_match_labels(settings)},
        },
        "provider": provider,
    }


def check_gaie(values: dict[str, Any], chart_version: str) -> list[str]:
    """The inferencepool chart has no schema and the EPP decodes its config strictly: check both here,
    after overrides, so a typo is exit 2 now instead of a silently ignored key or a crash-looping EPP.
    A config given by --set under a fixed file name is re-keyed under its content hash (what it says is
    returned as a warning): the EPP reads its file once, so only a new name in its args rolls it."""
    unknown = gaie_keys.unknown_keys(values)
    if unknown:
        raise ConfigError(f"inferencepool {chart_version} does not read these values: " + ", ".join(unknown),
                          hint="the chart has no schema and would silently ignore them; fix the --set path")
    ext = values.get("inferenceExtension") or {}
    custom = ext.get("pluginsCustomConfig") or {}
    name = ext.get("pluginsConfigFile")
    if name not in custom:
        from llmd.scheduler.validate import CHART_BUILTIN_CONFIGS

        if name in CHART_BUILTIN_CONFIGS:
            return []
        raise ConfigError(f"inferenceExtension.pluginsConfigFile {name!r} is not in pluginsCustomConfig "
                          f"({', '.join(custom) or 'empty'}) nor a chart built-in: the EPP would not find its config",
                          hint="give a whole config with --scheduler-config FILE, or --set both pluginsCustomConfig "
                               "and pluginsConfigFile")
    text = custom[name]
    try:
        doc = yamlsafe.load(text) if isinstance(text, str) else None
    except Exception as exc:  # yaml.YAMLError: report it as bad input
        raise ConfigError(f"EPP plugin config {name} is not valid YAML: {exc}") from None
    if doc is None:
        raise ConfigError(f"EPP plugin config {name} must be YAML text (a string), got {type(text).__name__}",
                          hint="give pluginsCustomConfig.<file> as one YAML string")
    from llmd.scheduler import validate

    selection.raise_findings(f"EPP plugin config {name}", validate.check_text(text, file=f"values.gaie {name}"),
                             "the EPP would crash-loop with it; choose a --scheduler profile")
    hashed = epp.config_file_name(text)
    if name == hashed:
        return []
    custom[hashed] = custom.pop(name)
    ext["pluginsConfigFile"] = hashed
    return [f"inferenceExtension.pluginsConfigFile {name!r} is rendered as {hashed!r} (its content hash), so that "
            "a change of its content rolls the EPP; pluginsCustomConfig holds it under that name"]


# ---- llm-d-modelservice --------------------------------------------------------------------------

def _model_artifacts(settings: Settings, defaults: dict[str, Any]) -> dict[str, Any]:
    ms = defaults["model_server"]
    prof = profile(settings)
    if prof.get("model_uri"):
        uri = prof["model_uri"]
    elif uses_model_cache(settings):
        uri = f"pvc+hf://{settings.pvc_name}/{ms['hub_cache_dir']}/{settings.model}"
    else:
        uri = f"hf://{settings.model}"
    artifacts: dict[str, Any] = {"uri": uri, "name": settings.served_model_name}
    if not uri.startswith("pvc"):
        artifacts["size"] = "1Gi" if prof["engine"] == "sim" else settings.pvc_size
    if settings.model_needs_hf_token:
        artifacts["authSecretName"] = settings.hf_secret_name
    artifacts["mountPath"] = ms["mount_path"]
    artifacts["labels"] = model_labels(settings)
    return artifacts


def _resources(settings: Settings, prof: dict[str, Any]) -> dict[str, Any] | None:
    res = prof.get("resources")
    if not res:
        return None
    scale = settings.tensor_parallel if res.get("per_gpu") else 1
    cpu = str(res["cpu"] * scale)
    memory = f"{res['memory_gi'] * scale}Gi"
    limits = {"cpu": cpu, "memory": memory}
    requests = {"cpu": str(res.get("request_cpu", cpu)), "memory": str(res.get("request_memory", memory))}
    # GPUs are added by the chart from parallelism (tensor x dataLocal); never set them here.
    return {"limits": limits, "requests": requests}


def _probes(settings: Settings, static: dict[str, Any], ms: dict[str, Any]) -> dict[str, Any]:
    probes = {kind: static[kind] for kind in ("startupProbe", "livenessProbe", "readinessProbe")}
    if uses_model_cache(settings):  # the layer's budget is for emptyDir downloads; the cache is filled by the Job
        probes["startupProbe"]["failureThreshold"] = ms["pvc_startup_failure_threshold"]
    return probes


def _env(settings: Settings, static: dict[str, Any], kv: kv_events.KvEvents | None) -> list[dict[str, Any]]:
    """The layer's env: literal values, then HF_HUB_OFFLINE with a filled cache, then the fieldRef ones."""
    env = static.get("env") or []
    env_list = [e for e in env if "valueFrom" not in e]
    if uses_model_cache(settings):  # the download Job filled the cache; never reach the Hub from every replica
        env_list.append({"name": "HF_HUB_OFFLINE", "value": "1"})
    env_list += [e for e in env if "valueFrom" in e]
    if kv and not any(e["name"] == "POD_IP" for e in env_list):  # $(POD_IP) in the KV-events topic
        env_list.append({"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}})
    return env_list


def _container(settings: Settings, prof: dict[str, Any], defaults: dict[str, Any],
               kv: kv_events.KvEvents | None) -> dict[str, Any]:
    ms = defaults["model_server"]
    static = layers.ms(settings.accelerator)["decode"]["containers"][0]
    if prof["engine"] == "sim":
        sim = prof["sim"]
        block_size = kv.block_size if kv else sim["block_size"]  # the precise scorer's blocks must match
        blocks_per_request = -(-settings.max_model_len // block_size)
        args = [f"--max-model-len={settings.max_model_len}", f"--max-num-seqs={sim['max_num_seqs']}",
                f"--block-size={block_size}",
                f"--kv-cache-size={2 * sim['max_num_seqs'] * blocks_per_request}", *sim["args"]]
        if kv:
            args += kv_events.sim_args(settings, kv)
        command = "imageDefault"
    else:
        args = ["--disable-uvicorn-access-log", f"--max-model-len={settings.max_model_len}"]
        if prof.get("gpu_memory_flag"):
            args.append(f"--gpu-memory-utilization={settings.gpu_memory_utilization}")
        args += prof.get("extra_args", [])
        if kv:
            args += kv_events.vllm_args(settings, kv, ms["port"])
        command = "vllmServe"
    container: dict[str, Any] = {"name": static["name"], "image": static["image"]}
    if prof.get("gke_libcuda") and settings.environment == "gke":
        container.update(gke_libcuda_command(settings, args, ms["port"]))
    else:
        container.update({"modelCommand": command, "args": args})
    env_list = _env(settings, static, kv)
    if env_list:
        container["env"] = env_list
    if static.get("securityContext"):
        container["securityContext"] = static["securityContext"]
    port_name = layers.ms(settings.accelerator)["decode"]["monitoring"]["podmonitor"]["portName"]
    container["ports"] = [{"containerPort": ms["port"], "name": port_name, "protocol": "TCP"}]
    resources = _resources(settings, prof)
    if resources:
        container["resources"] = resources
    container["mountModelVolume"] = static["mountModelVolume"]
    mounts = [{"name": "metrics-volume", "mountPath": "/.config"}]
    if prof["engine"] == "vllm":
        mounts.append({"name": "torch-compile-cache", "mountPath": "/.cache"})
    if prof.get("shm"):
        mounts.append({"name": "shm", "mountPath": "/dev/shm"})
    container["volumeMounts"] = mounts
    container.update(_probes(settings, static, ms))
    return container


# GKE mounts the NVIDIA driver under /usr/local/nvidia/lib64, outside the image's library path; upstream's
# values_gke.yaml runs vLLM through this shell (modelCommand custom) so torch finds libcuda.so.1.
GKE_LIBCUDA_PRELUDE = (
    "export LD_LIBRARY_PATH=$(find / -name libcuda.so.1 -printf '%h\\n' 2>/dev/null "
    "| sed ':a; N; $!ba; s/\\n/:/g'):${LD_LIBRARY_PATH}\n"
) + """\
echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
export LIBRARY_PATH=$(find / -name libcuda.so.1 -printf '%h\\n' 2>/dev/null | head -1):${LIBRARY_PATH}
echo "LIBRARY_PATH=$LIBRARY_PATH"
"""


def gke_libcuda_command(settings: Settings, args: list[str], port: int) -> dict[str, Any]:
    """`modelCommand: custom`: the chart adds nothing, so the script passes what vllmServe would (model, port,
    served name, TP from the chart's TP_SIZE env). Every value is shell-quoted."""
    import shlex

    serve = ["vllm", "serve", settings.model, "--port", str(port), "--served-model-name", settings.served_model_name,
             *args]
    script = (GKE_LIBCUDA_PRELUDE + "exec " + " ".join(shlex.quote(a) for a in serve)
              + ' --tensor-parallel-size "$TP_SIZE"\n')
    return {"modelCommand": "custom", "command": ["/bin/bash", "-c"], "args": [script]}


def _volumes(prof: dict[str, Any]) -> list[dict[str, Any]]:
    volumes: list[dict[str, Any]] = [{"name": "metrics-volume", "emptyDir": {}}]
    if prof["engine"] == "vllm":
        volumes.append({"name": "torch-compile-cache", "emptyDir": {}})
    if prof.get("shm"):
        volumes.append({"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": prof["shm"]}})
    return volumes


def _tpu_node_selector(settings: Settings, prof: dict[str, Any]) -> dict[str, str]:
    topologies = prof["tpu_topologies"]
    if settings.tensor_parallel not in topologies:
        raise ConfigError(
            f"tensor_parallel: {settings.tensor_parallel} does not match a single-host TPU v6e slice",
            hint="use --tensor-parallel " + " | ".join(str(k) for k in topologies)
                 + " (chips per replica) with --accelerator tpu-v6e")
    topology = topologies[settings.tensor_parallel]
    return {k: str(v).replace("{topology}", topology) for k, v in prof["node_selector"].items()}


def ms_values(settings: Settings, chosen: selection.Selection | None = None) -> dict[str, Any]:
    defaults = presets.load("defaults")
    chosen = chosen or selection.for_settings(settings)
    prof = profile(settings)
    ms = defaults["model_server"]
    static = layers.ms(settings.accelerator)
    decode: dict[str, Any] = {
        "create": static["decode"]["create"],
        "replicas": settings.replicas,
        "parallelism": {"tensor": settings.tensor_parallel, "data": 1},
    }
    if settings.gpu_product:  # opt-in: a required affinity only schedules on GFD-labelled nodes of that model
        decode["acceleratorTypes"] = {"labelKey": GPU_PRODUCT_LABEL, "labelValues": [settings.gpu_product]}
    if prof.get("node_selector"):
        decode["extraConfig"] = {"nodeSelector": _tpu_node_selector(settings, prof)}
    # GKE has no Prometheus Operator: upstream turns the PodMonitor off there (the EPP's metrics go through
    # GKE Managed Prometheus PodMonitoring, rendered by the inferencepool chart with provider gke).
    podmonitor = settings.monitoring and settings.environment != "gke"
    decode["monitoring"] = {"podmonitor": {"enabled": podmonitor, **static["decode"]["monitoring"]["podmonitor"]}}
    decode["containers"] = [_container(settings, prof, defaults, kv_events.wiring(chosen.config))]
    decode["volumes"] = _volumes(prof)
    return {
        "multinode": static["multinode"],
        "modelArtifacts": _model_artifacts(settings, defaults),
        "routing": {"servicePort": ms["port"], "proxy": {**static["routing"]["proxy"], "targetPort": ms["port"]}},
        "accelerator": static["accelerator"],
        "decode": decode,
        "prefill": static["prefill"],
    }


# ---- overrides -----------------------------------------------------------------------------------

def apply_overrides(values: dict[str, Any], release: str, overrides) -> dict[str, Any]:
    """Deep-set `--set values.<release>.a.b=v` into `values` (last wins). List items by index, as helm does:
    `containers[0].image` (a missing list is created; the next index appends), or `containers.0.image` on a list
    that exists."""
    for rel, path, value in overrides:
        if rel != release:
            continue
        parts = split_path(path) or [path]
        node: Any = values
        for depth, key in enumerate(parts):
            last = depth == len(parts) - 1
            where = join_path(parts[:depth]) or "the top level"
            nxt: Any = [] if not last and isinstance(parts[depth + 1], int) else {}
            if isinstance(node, list):
                index = key if isinstance(key, int) else int(key) if key.isdigit() else None
                if index is None or index > len(node):
                    raise ConfigError(f"--set values.{rel}.{path}: {where} is a list of {len(node)} items; "
                                      f"{key!r} is not a valid index",
                                      hint=f"address list items by index from 0 to {len(node)}, "
                                           "e.g. decode.containers[0].image")
                if index == len(node):
                    node.append(None)
                if last:
                    node[index] = value
                else:
                    if node[index] is None:
                        node[index] = nxt
                    node = node[index]
                continue
            if not isinstance(node, dict) or isinstance(key, int):
                what = f"the value {node!r}" if not isinstance(node, dict) else "a mapping"
                raise ConfigError(f"--set values.{rel}.{path}: {where} holds {what}, not "
                                  + ("a list" if isinstance(key, int) else "a mapping"),
                                  hint="set the parent key itself or choose another path")
            if last:
                node[key] = value
            else:
                if node.get(key) is None:
                    node[key] = nxt
                node = node[key]
    return values


def check_schema(chart_values: dict[str, Any], overrides, charts: dict[str, Any]) -> None:
    """The values of each release with a chart schema against llmd's copy of its rules (render.value_schema):
    exit 2 now, naming the --set that caused it, instead of a helm failure after the cluster work began."""
    problems: list[str] = []
    for rel, (chart, schema) in value_schema.SCHEMAS.items():
        for line in value_schema.errors(schema, chart_values[rel], f"values.{rel}"):
            path = line.split(":", 1)[0]
            culprit = next((f"values.{r}.{p}={v!r}" for r, p, v in reversed(overrides)
                            if path.startswith(canonical(f"values.{r}.{p}"))), None)
            version = charts.get(rel, {}).get("version", "")
            problems.append(f"{line} (chart {chart} {version} schema)" + (f", set by {culprit}" if culprit else ""))
    if problems:
        raise ConfigError("chart values fail the chart schema:\n" + "\n".join(f"  • {p}" for p in problems),
                          hint="fix the value or path (--set or the config file's values:); helm would refuse these at "
                               "install time")
