"""The prerequisites' helmfile: the gateway control plane (and LWS when asked) as plain helmfile releases.

Pure: the same file `llmd prereqs install` syncs is what `--dry-run` writes for review and what plain
`helmfile -f helmfile.yaml sync` applies. Chart sources can be replaced per release (a mirror, a local chart
directory) and repository URLs per repository name, and the image mirror (setting `image_mirror`, the stack's
rules) rewrites each release's image values, so air-gapped clusters use the same file.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmd.errors import ConfigError
from llmd.ops.prereqs.catalog import ChartComponent, ChartRelease
from llmd.render.mirror import rewrite_image, rewrite_images

Rules = Sequence[tuple[str, str]]  # llmd.render.mirror.parse_image_mirror's, longest prefix first

HELMFILE = "helmfile.yaml"


@dataclass(frozen=True)
class ChartSources:
    """Overrides of where charts come from. `charts`: release name -> source, the same forms as the stack's
    `--chart-source-*`: an OCI reference ending in the chart name (`oci://mirror/istio/istiod`), a Helm repository
    URL holding the chart under its own name (`https://mirror/istio`), a local chart directory or `.tgz`; or a
    `repo/chart` reference into one of the file's repositories. `repos`: repository name -> URL."""

    charts: Mapping[str, str] = field(default_factory=dict)
    repos: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, charts: Sequence[str], repos: Sequence[str], known_releases: Mapping[str, str],
              known_repos: Sequence[str], *, labels: tuple[str, str] = ("--chart", "--repo")) -> ChartSources:
        """`NAME=VALUE` items; an unknown name is bad input (exit 2) naming the names that exist.
        `known_releases`: release name -> the chart's own name (istiod -> istiod, istio-base -> base).
        `labels`: how errors name where the items came from (the flags, or the settings and their origin)."""
        pairs = _pairs(labels[0], charts, list(known_releases), "release")
        return cls({name: _source(labels[0], name, value, known_releases[name]) for name, value in pairs.items()},
                   _pairs(labels[1], repos, known_repos, "repository"))

    def over(self, base: ChartSources) -> ChartSources:
        """These sources over `base`'s, name by name (the flags over the settings)."""
        return ChartSources({**base.charts, **self.charts}, {**base.repos, **self.repos})


def _pairs(label: str, items: Sequence[str], known: Sequence[str], what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not name or not value:
            raise ConfigError(f"{label} {item!r}: expected NAME=VALUE", hint="e.g. "
                              + ("istiod=oci://mirror.example/istio/istiod" if what == "release"
                                 else "istio=https://mirror.example/istio-charts"))
        if name not in known:
            raise ConfigError(f"{label} {item!r}: no {what} named {name!r} in this install",
                              hint=f"names: {', '.join(known) or '(none)'}")
        out[name] = value
    return out


def _source(label: str, release: str, value: str, chart: str) -> str:
    """A local chart becomes its absolute path (helmfile runs from the file's directory), checked as the stack's
    local chart sources are (a chart directory or .tgz whose Chart.yaml names `chart`): bad input before any call."""
    if value.startswith(("oci://", "http://", "https://")):
        return value
    path = Path(value).expanduser()
    if not (value.startswith(("/", ".", "~")) or path.exists()):
        return value  # `repo/chart`
    from llmd.render.mirror import _local_chart_meta

    try:
        name = _local_chart_meta(path.resolve()).get("name")
    except ValueError as exc:
        raise ConfigError(f"{label} {release}={value}: {exc}",
                          hint="pass a chart directory, a packaged .tgz, an oci:// reference or a Helm repository "
                               "URL") from None
    if name != chart:
        raise ConfigError(f"{label} {release}={value}: that chart is {name!r}, not {chart!r}",
                          hint=f"point {release} at a copy of the {chart} chart")
    return str(path.resolve())


def release_charts(components: Sequence[ChartComponent]) -> dict[str, str]:
    """Release name -> the chart's own name (the last element of its reference), for --chart."""
    return {r.name: r.chart.rsplit("/", 1)[-1] for c in components for r in c.releases}


@dataclass(frozen=True)
class Image:
    """One image value of a release: the chart's default and what the mirror makes of it."""

    release: str
    path: str  # in the release's values
    before: str
    after: str  # == before when no rule matches
    value: Any  # what goes into the values at `path` (a string, or a {registry, repository} mapping)


def images(rel: ChartRelease, rules: Rules) -> list[Image]:
    out = []
    for path, default in rel.images.items():
        if isinstance(default, str):
            value: Any = rewrite_image(default, list(rules))
            before, after = default, value
        else:  # {registry, repository}: the same split the stack's values use
            value = rewrite_images({"image": dict(default)}, list(rules))["image"]
            before = f"{default['registry']}/{default['repository']}"
            after = f"{value['registry']}/{value['repository']}"
        out.append(Image(rel.name, path, before, after, value))
    return out


def check_mirror(components: Sequence[ChartComponent], rules: Rules) -> None:
    """An image mirror is applied to every release or refused (exit 2, before any call): never silently skipped."""
    for comp in components:
        if rules and comp.no_mirror:
            raise ConfigError(f"image_mirror cannot be applied to the {comp.title} {comp.version}: {comp.no_mirror}",
                              hint=f"mirror its images yourself: a copy of the chart whose values.yaml names your "
                                   f"registry, passed with --chart {comp.releases[-1].name}=<dir>, installed with "
                                   "--image-mirror '' (no rules); or use -e agentgateway, whose images llmd rewrites")


def mirror_notes(components: Sequence[ChartComponent], rules: Rules) -> list[str]:
    """What the mirror did to each image value, for the install report (a rule that matches nothing is visible)."""
    if not rules:
        return []
    lines = []
    for comp in components:
        for rel in comp.releases:
            for im in images(rel, rules):
                lines.append(f"image mirror: {im.release} {im.path} {im.before} -> {im.after}" if im.after != im.before
                             else f"image mirror: no rule matches {im.release} {im.path} {im.before} (pulled from "
                                  "there)")
    return lines


def _set_path(values: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    node = values
    for key in parents:
        node = node.setdefault(key, {})
    if isinstance(value, dict) and isinstance(node.get(last), dict):
        node[last] = {**node[last], **value}
    else:
        node[last] = value


def release_values(rel: ChartRelease, rules: Rules) -> dict[str, Any]:
    values = copy.deepcopy(dict(rel.values))
    for im in images(rel, rules):
        if im.after != im.before:
            _set_path(values, im.path, im.value)
    return values


def helmfile_doc(components: Sequence[ChartComponent], sources: ChartSources | None = None,
                 mirror: Rules = ()) -> dict[str, Any]:
    check_mirror(components, mirror)
    sources = sources or ChartSources()
    repos: dict[str, str] = {}
    releases: list[dict[str, Any]] = []
    for comp in components:
        for name, url in comp.repositories.items():
            repos[name] = sources.repos.get(name, url)
        for rel in comp.releases:
            chart = sources.charts.get(rel.name, rel.chart)
            if chart.startswith(("http://", "https://")):  # a repository holding the chart under its own name
                repos[f"llmd-mirror-{rel.name}"] = chart
                chart = f"llmd-mirror-{rel.name}/{rel.chart.rsplit('/', 1)[-1]}"
            doc: dict[str, Any] = {
                "name": rel.name,
                "namespace": comp.namespace,
                "chart": chart,
                "version": comp.version,
                "labels": {"component": comp.key, "managed-by": "llmd"},
            }
            if rel.needs:
                doc["needs"] = [f"{comp.namespace}/{n}" for n in rel.needs]
            values = release_values(rel, mirror)
            if values:
                doc["values"] = [values]
            releases.append(doc)
    out: dict[str, Any] = {}
    used = {r["chart"].split("/", 1)[0] for r in releases}
    if repos:
        out["repositories"] = [{"name": n, "url": u} for n, u in repos.items() if n in used]
        if not out["repositories"]:
            del out["repositories"]
    out["releases"] = releases
    return out


def render_helmfile(components: Sequence[ChartComponent], sources: ChartSources | None = None,
                    mirror: Rules = ()) -> str:
    from llmd import __version__
    from llmd.render import engine

    return engine.render_file("prereqs-helmfile.yaml.j2", [helmfile_doc(components, sources, mirror)],
                              version=__version__,
                              components=", ".join(f"{c.key} {c.version} ({c.namespace})" for c in components))
