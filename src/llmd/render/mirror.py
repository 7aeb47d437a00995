"""Air-gapped and mirrored installs: where each chart comes from, and which registry serves each image.

Chart sources (settings `chart_source_{infra,gaie,ms}`), one of:
  oci://registry.corp/charts/llm-d-infra   an OCI mirror; the reference ends with the chart name (version: the pin)
  https://charts.corp/llm-d                a Helm repository URL holding the chart (same name, pinned version)
  /srv/charts/llm-d-infra | ./x.tgz        a local chart directory or packaged .tgz (its Chart.yaml name must match)
Image mirror (setting `image_mirror`): comma-separated `from=to` prefix rules, e.g.
  ghcr.io/llm-d=registry.corp/llm-d,docker.io=registry.corp/docker
applied to every image in every rendered values file and manifest (the download Job's too); the longest
matching prefix wins, and a prefix matches only whole path elements (`ghcr.io/llm` does not match `ghcr.io/llm-d`).
"""

from __future__ import annotations

import hashlib
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from llmd import presets

CHART_KEYS = ("infra", "gaie", "ms")
# A registry host (optional port) and path, lowercase as image references are: no scheme, no tag or digest.
IMAGE_PREFIX = re.compile(r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]{1,5})?(/[a-z0-9]([a-z0-9._-]*[a-z0-9])?)*$")
OCI_REF = re.compile(r"^oci://[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]{1,5})?(/[a-z0-9]([a-z0-9._-]*[a-z0-9])?)+$")
REPO_URL = re.compile(r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~%-]*)*/?$")


@dataclass(frozen=True)
class ChartSource:
    key: str
    kind: str  # pinned | oci | repo | local
    chart: str  # the helmfile `chart:` field
    version: str | None  # None for local charts (helm reads the version from the chart itself)
    repo: dict[str, str] | None = None  # a helmfile `repositories:` entry
    detail: str = ""  # what `render` shows: the source and, for local charts, their version and content digest

    def describe(self) -> str:
        return f"{self.key}: {self.detail or self.chart}"


def chart_name(key: str) -> str:
    """The chart's own name (last element of the pinned reference): llm-d-infra, inferencepool, llm-d-modelservice."""
    return str(presets.load("defaults")["charts"][key]["chart"]).rsplit("/", 1)[-1]


def source_setting(settings: Any, key: str) -> str | None:
    return getattr(settings, f"chart_source_{key}", None)


def chart_source(settings: Any, key: str) -> ChartSource:
    pin = presets.load("defaults")["charts"][key]
    raw = source_setting(settings, key)
    if not raw:
        return ChartSource(key, "pinned", pin["chart"], pin["version"], dict(pin["repo"]) if "repo" in pin else None)
    name = chart_name(key)
    if raw.startswith("oci://"):
        return ChartSource(key, "oci", raw, pin["version"], None, f"{raw} {pin['version']} (OCI mirror)")
    if raw.startswith(("https://", "http://")):
        repo = {"name": f"llmd-mirror-{key}", "url": raw}
        return ChartSource(key, "repo", f"llmd-mirror-{key}/{name}", pin["version"], repo,
                           f"{name} {pin['version']} from Helm repository {raw}")
    path = Path(raw).expanduser().resolve()
    meta = _local_chart_meta(path)
    version = str(meta.get("version", "?"))
    return ChartSource(key, "local", str(path), None, None,
                       f"local chart {path} ({meta.get('name')} {version}, content {_content_digest(path)[:12]})")


def chart_sources(settings: Any) -> dict[str, ChartSource]:
    return {key: chart_source(settings, key) for key in CHART_KEYS}


def _local_chart_meta(path: Path) -> dict[str, Any]:
    """Chart.yaml of a chart directory or .tgz (raises ValueError with the reason)."""
    if path.is_dir():
        chart_yaml = path / "Chart.yaml"
        if not chart_yaml.is_file():
            raise ValueError(f"{path} is a directory without Chart.yaml (not a Helm chart)")
        text = chart_yaml.read_text(encoding="utf-8")
    elif path.is_file() and path.name.endswith((".tgz", ".tar.gz")):
        try:
            with tarfile.open(path, "r:gz") as tar:
                member = next((m for m in tar.getmembers()
                               if m.isfile() and m.name.count("/") == 1 and m.name.endswith("/Chart.yaml")), None)
                if member is None:
                    raise ValueError(f"{path} holds no <chart>/Chart.yaml (not a packaged Helm chart)")
                fh = tar.extractfile(member)
                text = fh.read().decode("utf-8") if fh else ""
        except (tarfile.TarError, OSError) as exc:
            raise ValueError(f"{path} is not a readable .tgz chart: {exc}") from None
    elif path.exists():
        raise ValueError(f"{path} is neither a chart directory nor a .tgz file")
    else:
        raise ValueError(f"{path} does not exist")
    try:
        meta = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: Chart.yaml is not valid YAML: {exc}") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{path}: Chart.yaml is not a mapping")
    return meta


def _content_digest(path: Path) -> str:
    """sha256 of a local chart's files: it goes into the rendered helmfile, so an edited chart changes the bundle
    digest and the next deploy syncs it (an unchanged one stays a no-op)."""
    h = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for f in files:
        h.update(str(f.relative_to(path) if f != path else f.name).encode() + b"\0")
        h.update(f.read_bytes())
    return h.hexdigest()


def validate_sources(settings: Any) -> list[str]:
    """Errors (with the fix) for every chart source and the image mirror; [] when all are usable."""
    errors: list[str] = []
    for key in CHART_KEYS:
        raw = source_setting(settings, key)
        if not raw:
            continue
        field = f"chart_source_{key}"
        name = chart_name(key)
        if raw.startswith("oci://"):
            if not OCI_REF.match(raw):
                errors.append(f"{field}: {raw!r} is not an OCI chart reference like oci://registry.corp/charts/{name}")
            elif raw.rsplit("/", 1)[-1] != name:
                errors.append(f"{field}: {raw!r} must end with the chart name: {raw.rstrip('/')}/{name}")
        elif raw.startswith(("https://", "http://")):
            if not REPO_URL.match(raw):
                errors.append(f"{field}: {raw!r} is not a Helm repository URL like https://charts.corp/llm-d")
        elif "://" in raw:
            errors.append(f"{field}: {raw!r}: use oci://, https:// (a Helm repository) or a local chart path")
        else:
            try:
                meta = _local_chart_meta(Path(raw).expanduser().resolve())
            except ValueError as exc:
                errors.append(f"{field}: {exc}; give the {name} chart directory or its .tgz")
                continue
            if meta.get("name") != name:
                errors.append(f"{field}: {raw!r} is chart {meta.get('name')!r}, not {name!r}")
    mirror = getattr(settings, "image_mirror", None)
    if mirror:
        try:
            parse_image_mirror(mirror)
        except ValueError as exc:
            errors.append(f"image_mirror: {exc}")
    image = getattr(settings, "download_image", None)
    if image is not None and not IMAGE_REF.match(image):
        errors.append(f"download_image: {image!r} is not an image reference like "
                      "registry.corp/library/python:3.12-slim")
    return errors


IMAGE_REF = re.compile(r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]{1,5})?(/[a-z0-9]([a-z0-9._-]*[a-z0-9])?)*"
                       r"(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?$")


def parse_image_mirror(text: str) -> list[tuple[str, str]]:
    """`from=to,...` -> rules, longest `from` first. ValueError names the bad rule and the expected form."""
    rules: list[tuple[str, str]] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        src, sep, dst = (s.strip().rstrip("/") for s in part.partition("="))
        if not sep or not src or not dst:
            raise ValueError(f"{part!r} is not a from=to rule (e.g. ghcr.io/llm-d=registry.corp/llm-d)")
        for what, prefix in (("from", src), ("to", dst)):
            if not IMAGE_PREFIX.match(prefix):
                raise ValueError(f"{part!r}: {what} {prefix!r} is not a registry/path prefix (lowercase, no scheme, "
                                 "no tag), e.g. registry.corp/llm-d")
        if any(src == s for s, _ in rules):
            raise ValueError(f"{src!r} is given twice; keep one rule per prefix")
        rules.append((src, dst))
    if not rules:
        raise ValueError("empty; give from=to rules or leave it unset")
    return sorted(rules, key=lambda r: len(r[0]), reverse=True)


def rewrite_image(image: str, rules: list[tuple[str, str]]) -> str:
    for src, dst in rules:
        if image == src or image.startswith((src + "/", src + ":", src + "@")):
            return dst + image[len(src):]
    return image


def rewrite_images(values: Any, rules: list[tuple[str, str]]) -> Any:
    """Every image in a values tree, in place: `image: <ref>` strings and `{hub, name, tag}` /
    `{registry, repository, tag}` image mappings (the inferencepool chart's forms)."""
    if not rules:
        return values
    if isinstance(values, list):
        for item in values:
            rewrite_images(item, rules)
    elif isinstance(values, dict):
        for key, value in values.items():
            if key == "image" and isinstance(value, str):
                values[key] = rewrite_image(value, rules)
            elif key == "image" and isinstance(value, dict):
                _rewrite_image_mapping(value, rules)
            else:
                rewrite_images(value, rules)
    return values


def _rewrite_image_mapping(image: dict[str, Any], rules: list[tuple[str, str]]) -> None:
    for host_key, path_key in (("hub", "name"), ("registry", "repository")):
        host, path = image.get(host_key), image.get(path_key)
        if not (isinstance(host, str) and isinstance(path, str)):
            continue
        new = rewrite_image(f"{host}/{path}", rules)
        if new == f"{host}/{path}":
            continue
        # keep the chart's split when the rule only moved the registry part
        if new.endswith("/" + path):
            image[host_key] = new[: -len(path) - 1]
        else:
            image[host_key], image[path_key] = new.rsplit("/", 1)


def mirror_rules(settings: Any) -> list[tuple[str, str]]:
    text = getattr(settings, "image_mirror", None)
    return parse_image_mirror(text) if text else []


def summary(settings: Any) -> list[str]:
    """Lines for `render` and `deploy --dry-run`: every non-default chart source and the image mirror."""
    lines = [f"chart {s.describe()}" for s in chart_sources(settings).values() if s.kind != "pinned"]
    rules = mirror_rules(settings)
    if rules:
        lines.append("image mirror: " + ", ".join(f"{a} -> {b}" for a, b in rules))
    return lines
