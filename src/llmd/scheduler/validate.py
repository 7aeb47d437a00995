"""Validation of an EndpointPickerConfig against the pinned EPP image: every problem at once, each with
its position (file:line:column), what is wrong and the fix.

Severity follows what the EPP does: `error` = it would refuse to start (crash-loop), `warning` = it starts
but ignores or misreads the setting. The rules: upstream-stack.md §4.1-4.5, docs/epp-plugins.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path as FsPath
from typing import Any

import yaml

from llmd.scheduler import registry
from llmd.scheduler.marked_yaml import Marks, Path, load

ERROR = "error"
WARNING = "warning"
CHART_BUILTIN_CONFIGS = ("default-plugins.yaml",)  # in the inferencepool v1.4.0 chart's EPP ConfigMap


@dataclass(frozen=True)
class Finding:
    severity: str  # error | warning
    path: str  # where in the document, e.g. plugins[1].type
    message: str
    fix: str | None = None
    file: str | None = None
    line: int | None = None
    column: int | None = None

    def location(self) -> str:
        parts = [self.file or "<config>"]
        if self.line is not None:
            parts += [str(self.line), str(self.column or 1)]
        return ":".join(parts)

    def __str__(self) -> str:
        text = f"{self.location()}: {self.severity}: {self.path}: {self.message}" if self.path else \
            f"{self.location()}: {self.severity}: {self.message}"
        return f"{text}; fix: {self.fix}" if self.fix else text

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "column": self.column, "severity": self.severity,
                "path": self.path, "message": self.message, "fix": self.fix}


def errors(findings: Sequence[Finding]) -> list[Finding]:
    return [f for f in findings if f.severity == ERROR]


def _dotted(path: Path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


class _Checker:
    def __init__(self, marks: Marks | None, file: str | None) -> None:
        self.marks = marks or Marks()
        self.file = file
        self.findings: list[Finding] = []

    def add(self, severity: str, path: Path, message: str, fix: str | None = None, *, key: bool = False) -> None:
        pos = self.marks.at(path, key=key)
        self.findings.append(Finding(severity, _dotted(path), message, fix, self.file,
                                     pos[0] if pos else None, pos[1] if pos else None))

    def unknown_keys(self, node: dict[str, Any], path: Path, allowed: Sequence[str], what: str,
                     severity: str = ERROR) -> None:
        for key in node:
            if key in allowed:
                continue
            close = registry.did_you_mean(str(key), allowed)
            fix = f"did you mean {close!r}?" if close else f"allowed: {', '.join(allowed)}"
            self.add(severity, (*path, key), f"unknown key {key!r} in {what} (the EPP decodes strictly)", fix,
                     key=True)

    # ---- document

    def run(self, doc: Any) -> list[Finding]:
        for path, _ in self.marks.duplicates:
            self.add(ERROR, path, f"duplicate key {path[-1]!r} (the EPP's strict YAML decoder rejects it)",
                     "keep one of them", key=True)
        if not isinstance(doc, dict):
            self.add(ERROR, (), f"the EPP config must be a mapping, got {type(doc).__name__}",
                     f"start with apiVersion: {registry.API_VERSION} and kind: {registry.KIND}")
            return self.findings
        self.header(doc)
        types = self.plugins(doc)
        self.profiles(doc, types)
        return self.findings

    def header(self, doc: dict[str, Any]) -> None:
        api = doc.get("apiVersion")
        if api != registry.API_VERSION:
            why = "llm-d.ai/v1alpha1 is only read by llm-d-router >= v0.9" if api == "llm-d.ai/v1alpha1" else \
                "the only version llm-d-inference-scheduler v0.7 reads"
            self.add(ERROR, ("apiVersion",), f"apiVersion {api!r} is not accepted ({why})",
                     f"apiVersion: {registry.API_VERSION}")
        if doc.get("kind") != registry.KIND:
            self.add(ERROR, ("kind",), f"kind {doc.get('kind')!r} is not accepted", f"kind: {registry.KIND}")
        self.unknown_keys(doc, (), registry.TOP_LEVEL_KEYS, "EndpointPickerConfig")
        gates = doc.get("featureGates")
        if gates is not None and not (isinstance(gates, list) and all(isinstance(g, str) for g in gates)):
            self.add(ERROR, ("featureGates",), "featureGates must be a list of strings", "e.g. [flowControl]")
        if "flowControl" in doc and "flowControl" not in (gates if isinstance(gates, list) else []):
            self.add(ERROR, ("flowControl",), "flowControl is set but featureGates does not enable it",
                     "add featureGates: [flowControl], or drop flowControl")

    # ---- plugins

    def plugins(self, doc: dict[str, Any]) -> dict[str, str]:
        """Check `plugins`; return plugin name -> type for the ones with a usable name and type."""
        plugins = doc.get("plugins")
        types: dict[str, str] = {}
        if not isinstance(plugins, list) or not plugins:
            self.add(ERROR, ("plugins",), "plugins: required, a non-empty list of {type, name?, parameters?}",
                     "declare at least one scorer or picker, e.g. - type: queue-scorer")
            return types
        for i, plugin in enumerate(plugins):
            path: Path = ("plugins", i)
            if not isinstance(plugin, dict):
                self.add(ERROR, path, "a plugin must be a mapping with `type` (and optional `name`, `parameters`)")
                continue
            self.unknown_keys(plugin, path, registry.PLUGIN_KEYS, "a plugin")
            ptype = plugin.get("type")
            if not isinstance(ptype, str) or not ptype:
                self.add(ERROR, path, "`type` is required", "a registered plugin type, e.g. queue-scorer")
                continue
            known = self.plugin_type(ptype, (*path, "type"))
            name = plugin.get("name", ptype)
            if not isinstance(name, str) or not name:
                self.add(ERROR, (*path, "name"), "`name` must be a non-empty string")
                continue
            if name in types:
                self.add(ERROR, (*path, "name") if "name" in plugin else (*path, "type"),
                         f"duplicate plugin name {name!r} (a plugin's name defaults to its type)",
                         "give one of them a distinct `name`")
                continue
            types[name] = ptype
            if known:
                self.parameters(plugin.get("parameters"), ptype, (*path, "parameters"))
        return types

    def plugin_type(self, ptype: str, path: Path) -> bool:
        t = registry.get(ptype)
        if t is not None:
            if t.deprecated:
                self.add(WARNING, path, f"{ptype} is a deprecated alias", f"use {t.deprecated}")
            return True
        rename = registry.renamed_type(ptype)
        if rename:
            self.add(ERROR, path, f"plugin type {ptype!r} is not registered in the EPP (it would crash-loop)",
                     rename.fix())
            return False
        close = registry.did_you_mean(ptype, list(registry.types()))
        fix = f"did you mean {close!r}?" if close else \
            "scorers: " + ", ".join(registry.names_of_kind("scorer")) + "; pickers: " + \
            ", ".join(registry.names_of_kind("picker"))
        self.add(ERROR, path, f"plugin type {ptype!r} is not registered in llm-d-inference-scheduler v0.7 "
                              "(the EPP would crash-loop)", fix)
        return False

    def parameters(self, params: Any, ptype: str, path: Path) -> None:
        if params is None and ptype == "precise-prefix-cache-scorer":
            params = {}  # no parameters still needs the tokenizer's model name
        if params is None:
            return
        if not isinstance(params, dict):
            self.add(ERROR, path, f"`parameters` of {ptype} must be a mapping, got {type(params).__name__}")
            return
        spec = registry.get(ptype).params  # type: ignore[union-attr]  # ptype is registered here
        if spec is None:
            return  # parameters of this type are not documented for the pinned release
        self.fields(params, spec, ptype, path, ())
        if ptype == "prefix-cache-scorer" and "blockSize" in params:
            if "blockSizeTokens" not in params:
                self.add(ERROR, (*path, "blockSize"), "blockSize (characters, deprecated) without blockSizeTokens "
                         "makes prefix-cache-scorer fail to initialise", "use blockSizeTokens (tokens)", key=True)
            else:
                self.add(WARNING, (*path, "blockSize"), "blockSize is deprecated (characters)", "drop it; "
                         "blockSizeTokens is what counts", key=True)
        if ptype == "precise-prefix-cache-scorer":
            self.block_size(params, path)
            self.tokenizer_model(params, path)

    def fields(self, node: dict[str, Any], spec: dict[str, Any], ptype: str, path: Path, nested: tuple[str, ...]
               ) -> None:
        """Each key of a parameters mapping (or of a nested struct in it) against its schema: an unknown key is
        ignored by json.Unmarshal (a warning naming the full path), a wrong type fails the plugin (an error)."""
        for key, value in node.items():
            sub = (*path, key)
            dotted = ".".join((*nested, str(key)))
            field = registry.field_name(spec, str(key))
            if field is not None:
                expected = spec[field]
                if value is None:
                    continue  # JSON null leaves a Go field at its default: nothing to check
                if isinstance(expected, dict):
                    if not isinstance(value, dict):
                        self.add(ERROR, sub, f"{ptype} parameter {dotted} must be a mapping of "
                                             f"{', '.join(expected)}, got {value!r} (plugin initialisation fails)",
                                 f"{dotted}: {{{next(iter(expected))}: ...}}")
                    else:
                        self.fields(value, expected, ptype, sub, (*nested, field))
                elif not registry.type_matches(value, expected):
                    self.add(ERROR, sub, f"{ptype} parameter {dotted} must be {registry.TYPE_WORDS[expected]}, "
                                         f"got {value!r} (plugin initialisation fails)", f"{key}: <{expected}>")
                continue
            if value is None and nested:
                continue  # `hf: null` sets nothing, known or not (the guide writes it)
            rename = registry.renamed_param(ptype, dotted)
            if rename and dotted == "mode":
                self.mode(value, ptype, sub, rename)
                continue
            if rename:
                self.add(WARNING, sub, f"{ptype} ignores parameter {dotted!r}", rename.fix(), key=True)
                continue
            if not spec:
                self.add(WARNING, sub, f"{ptype} takes no parameters; {key!r} is ignored", f"drop {key}", key=True)
                continue
            close = registry.did_you_mean(str(key), list(spec))
            where = f" under {'.'.join(nested)}" if nested else ""
            fix = f"did you mean {'.'.join((*nested, close))!r}?" if close else \
                f"{ptype} reads{where}: {', '.join(spec)}"
            self.add(WARNING, sub, f"{ptype} does not take parameter {dotted!r}; the EPP ignores it", fix, key=True)

    def block_size(self, params: dict[str, Any], path: Path) -> None:
        """precise-prefix-cache-scorer: a tokenProcessorConfig replaces the default (16) whole, so one without a
        positive blockSize leaves 0 and the token processor refuses it ("blockSize must be greater than 0")."""
        tp = registry.lookup(params, "tokenProcessorConfig")
        if not isinstance(tp, dict):
            return
        size = registry.lookup(tp, "blockSize")
        tpath: Path = (*path, next(k for k in params if str(k).lower() == "tokenprocessorconfig"))
        if size is None:
            self.add(ERROR, tpath, "tokenProcessorConfig without blockSize leaves the block size 0 and "
                     "precise-prefix-cache-scorer fails to initialise", "add blockSize: 64 (vLLM's --block-size "
                     "follows it), or drop tokenProcessorConfig for the default 16", key=True)
        elif registry.type_matches(size, "int") and size <= 0:
            self.add(ERROR, (*tpath, next(k for k in tp if str(k).lower() == "blocksize")),
                     f"blockSize must be greater than 0, got {size}", "blockSize: 64")

    def tokenizer_model(self, params: dict[str, Any], path: Path) -> None:
        """v0.7.1's factory refuses a precise-prefix-cache-scorer whose indexerConfig.tokenizersPoolConfig.modelName
        is empty ("modelName is required in indexerConfig.tokenizersPoolConfig"): the EPP would not start."""
        model = registry.lookup(registry.lookup(registry.lookup(params, "indexerConfig"), "tokenizersPoolConfig"),
                                "modelName")
        if isinstance(model, str) and model:
            return
        where: Path = path if params else (*path[:-1], "type")  # no parameters: point at the plugin
        node: Any = params
        for name in ("indexerConfig", "tokenizersPoolConfig"):  # the deepest mapping that exists
            key = next((k for k in node if str(k).lower() == name.lower()), None) if isinstance(node, dict) else None
            if key is None or not isinstance(node[key], dict):
                break
            where, node = (*where, key), node[key]
        self.add(ERROR, where, "precise-prefix-cache-scorer needs indexerConfig.tokenizersPoolConfig.modelName (the "
                 "model whose tokenizer it loads); without it the plugin fails to initialise",
                 "tokenizersPoolConfig: {modelName: <the served model>} (--scheduler precise-prefix sets it)",
                 key=where[-1] not in ("parameters", "type"))

    def mode(self, value: Any, ptype: str, path: Path, rename: registry.Rename) -> None:
        """`mode:` from llm-d-inference-scheduler v0.2: approximate/estimate is what prefix-cache-scorer already
        does (ignored: a warning); cache_tracking/precise silently would not happen (an error)."""
        if ptype == "prefix-cache-scorer" and str(value) in ("approximate", "estimate"):
            self.add(WARNING, path, f"{ptype} ignores `mode: {value}` (it is always approximate)",
                     f"drop `mode:`; {rename.why}", key=True)
        else:
            self.add(ERROR, path, f"{ptype} has no `mode` (got {value!r}): the EPP would ignore it and not do "
                                  "what it says", "drop `mode:`; for precise prefix caching use type "
                                                  "precise-prefix-cache-scorer (or --scheduler precise-prefix)",
                     key=True)

    # ---- scheduling profiles

    def profiles(self, doc: dict[str, Any], types: dict[str, str]) -> None:
        handlers = [n for n, t in types.items() if registry.kind(t) == "profile-handler"]
        if len(handlers) > 1:
            self.add(ERROR, ("plugins",), f"{len(handlers)} profile handlers declared ({', '.join(handlers)})",
                     "declare one", key=True)
        if "schedulingProfiles" not in doc:
            # The loader generates a `default` profile from every declared filter, scorer and picker.
            generated = [{"pluginRef": n} for n, t in types.items() if registry.kind(t) in registry.REFERENCED_KINDS]
            self.profile_refs(generated, ("plugins",), "the generated default profile", types, generated=True)
            return
        profiles = doc.get("schedulingProfiles")
        if not isinstance(profiles, list) or not profiles:
            self.add(ERROR, ("schedulingProfiles",), "schedulingProfiles must be a non-empty list of "
                     "{name, plugins}", "omit it to get one `default` profile of every plugin")
            return
        seen: set[str] = set()
        for i, profile in enumerate(profiles):
            path: Path = ("schedulingProfiles", i)
            if not isinstance(profile, dict):
                self.add(ERROR, path, "a scheduling profile must be a mapping with `name` and `plugins`")
                continue
            self.unknown_keys(profile, path, registry.PROFILE_KEYS, "a scheduling profile")
            name = profile.get("name")
            if not isinstance(name, str) or not name:
                self.add(ERROR, path, "`name` is required", "name: default")
            elif name in seen:
                self.add(ERROR, (*path, "name"), f"duplicate profile name {name!r}", "give each profile its own name")
            else:
                seen.add(name)
            refs = profile.get("plugins")
            if not isinstance(refs, list):
                self.add(ERROR, (*path, "plugins"), "`plugins` must be a list of {pluginRef, weight?}")
                continue
            self.profile_refs(refs, (*path, "plugins"), f"profile {name!r}", types)
        if len(profiles) > 1:
            handler_types = [types[h] for h in handlers]
            if not handlers:
                self.add(ERROR, ("schedulingProfiles",), f"{len(profiles)} profiles but no profile handler "
                         "(the EPP adds one only for a single profile)", "declare disagg-profile-handler", key=True)
            elif handler_types == ["single-profile-handler"]:
                self.add(ERROR, ("schedulingProfiles",), "single-profile-handler runs exactly one profile, "
                         f"this config has {len(profiles)}", "keep one profile, or use disagg-profile-handler",
                         key=True)

    def profile_refs(self, refs: list[Any], path: Path, what: str, types: dict[str, str], *,
                     generated: bool = False) -> None:
        pickers: list[str] = []
        scorers: list[str] = []
        for j, ref in enumerate(refs):
            rpath: Path = path if generated else (*path, j)
            if not isinstance(ref, dict) or "pluginRef" not in ref:
                self.add(ERROR, rpath, "a profile entry must be a mapping with `pluginRef: <plugin name>`")
                continue
            if not generated:
                self.unknown_keys(ref, rpath, registry.REF_KEYS, "a profile entry")
            target = ref["pluginRef"]
            if not isinstance(target, str) or target not in types:
                close = registry.did_you_mean(str(target), list(types))
                rename = registry.renamed_type(str(target))
                fix = rename.fix() if rename else (f"did you mean {close!r}?" if close else
                                                   f"declare it under plugins (defined: {', '.join(types) or 'none'})")
                self.add(ERROR, (*rpath, "pluginRef"), f"pluginRef {target!r} names no plugin in `plugins`", fix)
                continue
            kind = registry.kind(types[target])
            if kind is None:
                continue  # an unregistered type: reported where it is declared
            if kind not in registry.REFERENCED_KINDS:
                self.add(ERROR, (*rpath, "pluginRef"), f"{target} is a {kind}; a profile lists only filters, "
                         "scorers and pickers", "declare it under plugins only")
                continue
            if kind == "picker":
                pickers.append(target)
            if kind == "scorer":
                scorers.append(types[target])
            if "weight" in ref:
                weight = ref["weight"]
                if not isinstance(weight, (int, float)) or isinstance(weight, bool) or weight < 0:
                    self.add(ERROR, (*rpath, "weight"), f"weight {weight!r} must be a number >= 0", "e.g. weight: 2")
                elif kind != "scorer":
                    self.add(WARNING, (*rpath, "weight"), f"{target} is a {kind}: the EPP ignores its weight",
                             "weights apply to scorers only; drop it", key=True)
        if len(pickers) > 1:
            self.add(ERROR, path, f"{what} references {len(pickers)} pickers ({', '.join(pickers)})",
                     "keep exactly one picker per profile", key=True)
        if any(f.severity == ERROR for f in self.findings):
            return  # what follows is about what an accepted config does; errors come first
        picker = types[pickers[0]] if pickers else registry.DEFAULT_PICKER
        if not scorers and picker in ("max-score-picker", "weighted-random-picker"):
            self.add(WARNING, path, f"{what} has no scorer: every endpoint scores 0 and {picker} picks at random",
                     "add a scorer (e.g. queue-scorer), or say so with random-picker", key=True)
        if "no-hit-lru-scorer" in scorers:
            prefix = [s for s in scorers if s in ("prefix-cache-scorer", "precise-prefix-cache-scorer")]
            if not prefix or scorers.index(prefix[0]) > scorers.index("no-hit-lru-scorer"):
                self.add(WARNING, path, f"{what}: no-hit-lru-scorer reads the prefix scorer's result, which must be "
                         "listed before it", "list prefix-cache-scorer before no-hit-lru-scorer", key=True)


def check(doc: Any, marks: Marks | None = None, *, file: str | None = None) -> list[Finding]:
    """Every problem of one EndpointPickerConfig document (empty list = the EPP accepts it)."""
    return _Checker(marks, file).run(doc)


def check_text(text: str, *, file: str | None = None, line_offset: int = 0, column_offset: int = 0
               ) -> list[Finding]:
    try:
        doc, marks = load(text, line_offset=line_offset, column_offset=column_offset)
    except yaml.YAMLError as exc:
        return [_yaml_error(exc, file, line_offset, column_offset)]
    return check(doc, marks, file=file)


def _yaml_error(exc: yaml.YAMLError, file: str | None, line0: int, col0: int) -> Finding:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    return Finding(ERROR, "", f"not valid YAML: {problem}", "fix the YAML syntax", file,
                   mark.line + 1 + line0 if mark else None, mark.column + 1 + col0 if mark else None)


# ---- files: an EndpointPickerConfig, or inferencepool values holding some under pluginsCustomConfig ----

def check_file(path: str) -> list[Finding]:
    try:
        text = FsPath(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return [Finding(ERROR, "", f"cannot read the file: {getattr(exc, 'strerror', None) or exc}",
                        "check the path", path)]
    return check_document_text(text, file=path)


def check_document_text(text: str, *, file: str | None = None) -> list[Finding]:
    try:
        doc, marks = load(text)
    except yaml.YAMLError as exc:
        return [_yaml_error(exc, file, 0, 0)]
    if isinstance(doc, dict) and "inferenceExtension" in doc and "plugins" not in doc:
        return check_values(text, doc, marks, file=file)
    return check(doc, marks, file=file)


def embedded_configs(text: str) -> dict[str, tuple[str, int, int]]:
    """pluginsCustomConfig entries of a values file: file name -> (YAML text, line offset, column offset)
    so positions inside a literal block map back to the values file."""
    from llmd.scheduler.marked_yaml import compose

    root = compose(text)
    out: dict[str, tuple[str, int, int]] = {}
    node = _child(_child(root, "inferenceExtension"), "pluginsCustomConfig")
    if not isinstance(node, yaml.MappingNode):
        return out
    lines = text.splitlines()
    for key_node, value_node in node.value:
        if not isinstance(value_node, yaml.ScalarNode):
            continue
        start = value_node.start_mark.line
        if value_node.style == "|":
            first = next((ln for ln in lines[start + 1:] if ln.strip()), "")
            indent = len(first) - len(first.lstrip(" "))
            out[str(key_node.value)] = (value_node.value, start + 1, indent)
        else:  # quoted or plain: positions inside are approximate; anchor them at the value
            out[str(key_node.value)] = (value_node.value, start, value_node.start_mark.column)
    return out


def _child(node: yaml.Node | None, key: str) -> yaml.Node | None:
    if not isinstance(node, yaml.MappingNode):
        return None
    return next((v for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == key), None)


def check_values(text: str, doc: dict[str, Any], marks: Marks, *, file: str | None = None) -> list[Finding]:
    checker = _Checker(marks, file)
    ext = doc.get("inferenceExtension")
    base: Path = ("inferenceExtension",)
    if not isinstance(ext, dict):
        checker.add(ERROR, base, "inferenceExtension must be a mapping")
        return checker.findings
    custom = ext.get("pluginsCustomConfig")
    name = ext.get("pluginsConfigFile")
    if custom is not None and not isinstance(custom, dict):
        checker.add(ERROR, (*base, "pluginsCustomConfig"), "pluginsCustomConfig must map file names to YAML text")
        return checker.findings
    custom = custom or {}
    if name is not None and name not in custom and name not in CHART_BUILTIN_CONFIGS:
        checker.add(ERROR, (*base, "pluginsConfigFile"), f"pluginsConfigFile {name!r} is neither in "
                    "pluginsCustomConfig nor a file of the chart (the EPP would not find its config)",
                    f"one of: {', '.join([*custom, *CHART_BUILTIN_CONFIGS])}")
    if not custom:
        checker.add(WARNING, (*base, "pluginsCustomConfig"), "no pluginsCustomConfig: nothing to check (the "
                    "chart's default-plugins.yaml is used)", None)
        return checker.findings
    findings = checker.findings
    embedded = embedded_configs(text)
    for fname, value in custom.items():
        if not isinstance(value, str):
            checker.add(ERROR, (*base, "pluginsCustomConfig", fname), "must be YAML text (a string, e.g. a `|` "
                        "block)", None)
            continue
        body, line0, col0 = embedded.get(str(fname), (value, 0, 0))
        findings += [_within(f, fname) for f in check_text(body, file=file, line_offset=line0, column_offset=col0)]
    return findings


def _within(f: Finding, fname: str) -> Finding:
    from dataclasses import replace

    where = f"pluginsCustomConfig[{fname}]"
    return replace(f, path=f"{where}.{f.path}" if f.path else where)
