"""Options and styles shared by the `llmd prereqs` sub-commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

LwsOpt = Annotated[bool, typer.Option("--lws", help="Also LeaderWorkerSet 0.7.0 (multi-node serving) into lws-system")]
CrdDirOpt = Annotated[Optional[list[Path]], typer.Option(  # noqa: UP045
    "--crd-dir", help="Directory of CRD manifests used instead of downloading them (air-gapped clusters); repeatable")]
ChartOpt = Annotated[Optional[list[str]], typer.Option(  # noqa: UP045
    "--chart", help="RELEASE=SOURCE: oci://.../<chart>, a Helm repository URL, or a local chart dir/.tgz; repeatable "
                    "(over the setting prereq_charts, LLMD_PREREQ_CHARTS)")]
RepoOpt = Annotated[Optional[list[str]], typer.Option(  # noqa: UP045
    "--repo", help="NAME=URL: use another URL for a chart repository (e.g. istio=https://mirror/istio); repeatable "
                   "(over the setting prereq_repos, LLMD_PREREQ_REPOS)")]
OutOpt = Annotated[Optional[Path], typer.Option(  # noqa: UP045
    "--out", help="Where to write the prerequisites' helmfile (default $LLMD_STATE_DIR/prereqs)")]
WaitOpt = Annotated[int, typer.Option("--wait-timeout", min=10, max=86_400,
                                      help="Seconds to wait for the control plane to run")]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation")]
ForceOpt = Annotated[bool, typer.Option("--force", help="Uninstall even while llm-d stacks use the prerequisites "
                                                        "(their objects are deleted with the CRDs, and named)")]
