"""Dynamic shell-completion choices for options (`llmd completion bash|zsh|fish` installs the hook).

Called by the shell on <TAB>: nothing here contacts a cluster; contexts and namespaces come from the kubeconfig
files (the one given with --kubeconfig on the same line, else $KUBECONFIG or ~/.kube/config).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import typer


def _matching(values: Iterable[str], incomplete: str) -> list[str]:
    return sorted({v for v in values if v.startswith(incomplete)})


def fixed(values: Callable[[], Iterable[str]]) -> Callable[[str], list[str]]:
    def complete(incomplete: str) -> list[str]:
        return _matching(values(), incomplete)

    return complete


def _kubeconfig_of(ctx: typer.Context) -> str | None:
    value = ctx.params.get("opt_kubeconfig")
    return value if isinstance(value, str) else None


def contexts(ctx: typer.Context, incomplete: str) -> list[str]:
    from llmd.kube.kubeconfig import read_contexts

    return _matching((c["name"] for c in read_contexts(_kubeconfig_of(ctx))), incomplete)


def namespaces(ctx: typer.Context, incomplete: str) -> list[str]:
    from llmd.kube.kubeconfig import read_contexts
    from llmd.settings import Settings

    found = {c["namespace"] for c in read_contexts(_kubeconfig_of(ctx)) if c["namespace"]}
    return _matching(found | {Settings().namespace}, incomplete)


def schedulers() -> Iterable[str]:
    from llmd.settings import SCHEDULERS

    return SCHEDULERS
