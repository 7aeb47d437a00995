"""The prerequisites' helmfile: the gateway control plane (and LWS when asked) as plain helmfile releases.

Pure: the same file `llmd prereqs install` syncs is what `--dry-run` writes for review and what plain
`helmfile -f helmfile.yaml sync` applies. Chart sources can be replaced per release (a mirror, a local chart
directory) and repository URLs per repository name, so air-gapped clusters use the same file.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmd.errors import ConfigError
from llmd.ops.prereqs.catalog import ChartComponent

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
              known_repos: Sequence[str]) -> ChartSources:
        """`NAME=VALUE` items; an unknown name is bad input (exit 2) naming the names that exist.
        `known_releases`: release name -> the chart's own name (istiod -> istiod, istio-base -> base)."""
        pairs = _pairs("--chart", charts, list(known_releases))
        return cls({name: _source(name, value, known_releases[name]) for name, value in pairs.items()},
                   _pairs("--repo", repos, known_repos))


def _pairs(flag: str, items: Sequence[str], known: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not name or not value:
            raise ConfigError(f"{flag} {item!r}: expected NAME=VALUE", hint=f"e.g. {flag} "
                              + ("istiod=oci://mirror.example/istio/istiod" if flag == "--chart"
                                 else "istio=https://mirror.example/istio-charts"))
        if name not in known:
            raise ConfigError(f"{flag} {item!r}: no {'release' if flag == '--chart' else 'repository'} named "
                              f"{name!r} in this install", hint=f"names: {', '.join(known) or '(none)'}")
        out[name] = value
    return out


def _source(release: str, value: str, chart: str) -> str:
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
        raise ConfigError(f"--chart {release}={value}: {exc}",
                          hint="pass a chart directory, a packaged .tgz, an oci:// reference or a Helm repository "
                               "URL") from None
    if name != chart:
        raise ConfigError(f"--chart {release}={value}: that chart is {name!r}, not {chart!r}",
                          hint=f"point {release} at a copy of the {chart} chart")
    return str(path.resolve())


def release_charts(components: Sequence[ChartComponent]) -> dict[str, str]:
    """Release name -> the chart's own name (the last element of its reference), for --chart."""
    return {r.name: r.chart.rsplit("/", 1)[-1] for c in components for r in c.releases}


def helmfile_doc(components: Sequence[ChartComponent], sources: ChartSources | None = None) -> dict[str, Any]:
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
            if rel.values:
                doc["values"] = [dict(rel.values)]
            releases.append(doc)
    out: dict[str, Any] = {}
    used = {r["chart"].split("/", 1)[0] for r in releases}
    if repos:
        out["repositories"] = [{"name": n, "url": u} for n, u in repos.items() if n in used]
        if not out["repositories"]:
            del out["repositories"]
    out["releases"] = releases
    return out


def render_helmfile(components: Sequence[ChartComponent], sources: ChartSources | None = None) -> str:
    from llmd import __version__
    from llmd.render import engine

    return engine.render_file("prereqs-helmfile.yaml.j2", [helmfile_doc(components, sources)], version=__version__,
                              components=", ".join(f"{c.key} {c.version} ({c.namespace})" for c in components))
