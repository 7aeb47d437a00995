"""Where CRDs come from (the pinned release URL, or local files for air-gapped clusters) and how they
are applied: server-side, as field manager llmd, then waited on until Established.

A local directory replaces the download for every bundle it holds; its files' own bundle-version
annotations say which release they are, so the downgrade guard works the same on both paths.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from llmd.errors import ConfigError, ExitCode, PrereqError
from llmd.kube.kubectl import Kubectl
from llmd.ops.prereqs.catalog import (
    COMPONENT_LABEL,
    MANAGED_BY,
    VERSION_ANNOTATION,
    Catalog,
    CrdBundle,
    version_key,
)

FETCH_TIMEOUT_S = 30.0
APPLY_TIMEOUT_S = 120.0
ESTABLISHED_TIMEOUT_S = 60
SSA = ("apply", "--server-side", "--field-manager=llmd", "--force-conflicts")
CRD_SUFFIXES = (".yaml", ".yml", ".json")
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # CRD bundles are megabytes: libyaml is ~5x faster


@dataclass(frozen=True)
class CrdSource:
    bundle: CrdBundle
    version: str  # the release the documents are (their bundle-version annotation), "" when they do not say
    docs: tuple[dict[str, Any], ...]
    origin: str  # the URL or the files they came from

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(d["metadata"]["name"] for d in self.docs)


def parse_crds(text: str, origin: str) -> list[dict[str, Any]]:
    """The CustomResourceDefinition documents of a YAML/JSON stream (a List is unpacked; other kinds dropped)."""
    try:
        docs = [d for d in yaml.load_all(text, Loader=_LOADER) if isinstance(d, dict)]
    except yaml.YAMLError as exc:
        raise ConfigError(f"{origin} is not valid YAML: {exc}".splitlines()[0],
                          hint="pass CRD manifests (YAML or JSON), as the upstream release ships them") from None
    out: list[dict[str, Any]] = []
    for doc in docs:
        items = doc.get("items") if doc.get("kind") == "List" else [doc]
        out += [d for d in items or [] if isinstance(d, dict) and d.get("kind") == "CustomResourceDefinition"
                and (d.get("metadata") or {}).get("name")]
    return out


def bundle_version(bundle: CrdBundle, docs: Sequence[dict[str, Any]]) -> str:
    versions = {str(((d.get("metadata") or {}).get("annotations") or {}).get(bundle.version_annotation, "")).strip()
                for d in docs}
    versions.discard("")
    return max(versions, key=lambda v: version_key(v) or ()) if versions else ""


def group_of(doc: dict[str, Any]) -> str:
    return str((doc.get("spec") or {}).get("group", ""))


def from_dirs(dirs: Iterable[Path], cat: Catalog) -> dict[str, CrdSource]:
    """Every bundle the directories hold (files found recursively). Bad input is exit 2, before any call."""
    found: dict[str, list[dict[str, Any]]] = {}
    seen: dict[str, Path] = {}
    origins: dict[str, list[str]] = {}
    for d in dirs:
        root = Path(d).expanduser()
        if not root.is_dir():
            raise ConfigError(f"--crd-dir {d}: not a directory",
                              hint="pass a directory holding the CRD manifests (e.g. standard-install.yaml)")
        files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in CRD_SUFFIXES)
        for path in files:
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise ConfigError(f"--crd-dir: cannot read {path}: {exc}") from None
            for doc in parse_crds(text, str(path)):
                name = doc["metadata"]["name"]
                bundle = cat.bundle_of_group(group_of(doc))
                if bundle is None:
                    continue  # not a CRD llmd installs (a directory may hold others)
                if name in seen:
                    raise ConfigError(f"--crd-dir: CRD {name} is defined twice: {seen[name]} and {path}",
                                      hint="point --crd-dir at one channel/release only (e.g. config/crd/standard, "
                                           "not all of config/crd)")
                seen[name] = path
                found.setdefault(bundle.key, []).append(doc)
                if str(path) not in origins.setdefault(bundle.key, []):
                    origins[bundle.key].append(str(path))
    return {k: CrdSource(cat.crds[k], bundle_version(cat.crds[k], docs), tuple(docs), _origin(origins[k]))
            for k, docs in found.items()}


def _origin(files: list[str]) -> str:
    """One file by its path, several by their directories and count (a release ships one file per CRD)."""
    if len(files) == 1:
        return files[0]
    dirs = list(dict.fromkeys(str(Path(f).parent) for f in files))
    return f"{', '.join(dirs)} ({len(files)} files)"


def fetch(bundle: CrdBundle, *, timeout_s: float = FETCH_TIMEOUT_S) -> CrdSource:
    """Download the pinned release manifest (an HTTP GET with a timeout; no process)."""
    import httpx

    try:
        resp = httpx.get(bundle.url, timeout=timeout_s, follow_redirects=True)
        resp.raise_for_status()
    except httpx.HTTPError as exc:
        raise PrereqError(f"cannot download the {bundle.title} from {bundle.url}: {exc}",
                          hint="check the network or proxy, or download the file elsewhere and pass its directory "
                               "with --crd-dir (air-gapped clusters)") from None
    docs = parse_crds(resp.text, bundle.url)
    missing = [m for m in bundle.markers if m not in {d["metadata"]["name"] for d in docs}]
    if missing:
        raise PrereqError(f"{bundle.url} does not define {', '.join(missing)}",
                          hint="the download is not the expected release manifest; pass the files with --crd-dir")
    return CrdSource(bundle, bundle_version(bundle, docs) or bundle.version, tuple(docs), bundle.url)


def prepared(source: CrdSource, ours: Iterable[str]) -> list[dict[str, Any]]:
    """The documents to apply: status and server-set fields dropped; CRDs llmd creates (or already owns) are
    labelled as installed by llmd, with the release. A CRD someone else installed keeps its labels."""
    mine = set(ours)
    out = []
    for doc in source.docs:
        d = copy.deepcopy(doc)
        d.pop("status", None)
        meta = d.setdefault("metadata", {})
        for key in ("creationTimestamp", "resourceVersion", "uid", "generation", "managedFields"):
            meta.pop(key, None)
        if meta["name"] in mine:
            meta["labels"] = {**(meta.get("labels") or {}), **MANAGED_BY, COMPONENT_LABEL: source.bundle.key}
            meta["annotations"] = {**(meta.get("annotations") or {}),
                                   VERSION_ANNOTATION: source.version or "unknown"}
        out.append(d)
    return out


def apply(kubectl: Kubectl, source: CrdSource, docs: list[dict[str, Any]]) -> None:
    body = json.dumps({"apiVersion": "v1", "kind": "List", "items": docs}).encode()
    kubectl.run(*SSA, "--filename", "-", namespaced=False, mutates=True, stdin=body, timeout=APPLY_TIMEOUT_S,
                fail_code=ExitCode.DEPLOY_FAILED, title=f"apply {len(docs)} CRDs: {source.bundle.title}")


def wait_established(kubectl: Kubectl, names: Sequence[str], *, timeout_s: int = ESTABLISHED_TIMEOUT_S) -> None:
    kubectl.run("wait", "--for=condition=Established", f"--timeout={timeout_s}s",
                *(f"customresourcedefinitions/{n}" for n in names), namespaced=False,
                timeout=timeout_s + 15, fail_code=ExitCode.NOT_READY)
