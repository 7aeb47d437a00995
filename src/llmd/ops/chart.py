"""Charts of perf reports, sweeps and scheduler comparisons: latency, throughput and prefix-cache hit rate per
profile (or per stage), one PNG.

matplotlib (Agg backend, no display needed) is imported only here and only when a chart is drawn: it costs ~0.4 s
to import, which `llmd --help` and every other command must not pay.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from llmd.errors import ConfigError


def series(doc: dict[str, Any]) -> tuple[str, list[tuple[str, dict[str, Any]]]]:
    """(title, [(label, compared numbers)]) from an llmd.compare/v1 or llmd.perf/v1 document."""
    from llmd.ops.compare import SCHEMA, stage_summary

    schema = str(doc.get("schema", ""))
    if schema == SCHEMA:
        return (f"scheduler comparison ({doc.get('platform')} platform)",
                [(p, doc["entries"][p]) for p in doc.get("profiles", []) if p in doc.get("entries", {})])
    if schema.startswith("llmd.perf/"):
        stages = doc.get("stages") or []
        workload = (doc.get("config") or {}).get("workload", "")
        return (f"perf report ({workload} workload)" if workload else "perf report",
                [(str(s.get("label") or s.get("name")), stage_summary(s)) for s in stages])
    raise ConfigError(f"not an llmd perf report or comparison (schema {schema or 'missing'!r})",
                      hint="pass a JSON file written by `llmd test --perf --report-file` or "
                           "`llmd bench compare --report-file`")


def load(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}", hint="give the path of a report JSON") from None
    except ValueError as exc:
        raise ConfigError(f"{path} is not JSON: {exc}", hint="give the path of a report JSON") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{path} is not a report document (a JSON object)")
    return doc


def _bars(ax, labels: list[str], groups: list[tuple[str, list[float | None]]], ylabel: str, fmt: str) -> None:
    n = len(groups)
    width = 0.8 / max(n, 1)
    for gi, (name, values) in enumerate(groups):
        xs = [i + (gi - (n - 1) / 2) * width for i in range(len(labels))]
        ys = [v if v is not None else 0.0 for v in values]
        bars = ax.bar(xs, ys, width, label=name)
        for bar, v in zip(bars, values, strict=True):
            ax.annotate("n/a" if v is None else fmt.format(v), (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                        ha="center", va="bottom", fontsize=8)
    ax.set_xticks(range(len(labels)), labels, rotation=20 if max(map(len, labels), default=0) > 8 else 0)
    ax.set_ylabel(ylabel)
    if n > 1:
        ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)


def draw(doc: dict[str, Any], out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    title, rows = series(doc)
    if not rows:
        raise ConfigError("the report has no stages or profiles to draw")
    labels = [label for label, _ in rows]
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.2))
    _bars(axes[0], labels, [("p50", [r.get("ttft_p50_ms") for _, r in rows]),
                            ("p99", [r.get("ttft_p99_ms") for _, r in rows])], "TTFT (ms, lower is better)", "{:.0f}")
    _bars(axes[1], labels, [("output tok/s", [r.get("output_tok_s") for _, r in rows])],
          "output tokens/s (higher is better)", "{:.0f}")
    hits = [r.get("hit_rate") for _, r in rows]
    _bars(axes[2], labels, [("hit rate", [h * 100 if h is not None else None for h in hits])],
          "prefix-cache hit rate (%)", "{:.0f}%")
    axes[2].set_ylim(0, 105)
    errors = sum(int(r.get("errors") or 0) for _, r in rows)
    fig.suptitle(title + (f" — {errors} failed requests" if errors else ""))
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def chart_path(report: Path) -> Path:
    """The chart beside its JSON: report.json -> report.png."""
    return report.with_suffix(".png")
