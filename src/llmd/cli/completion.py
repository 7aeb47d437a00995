"""`llmd completion bash|zsh|fish`: the shell hook; choices come from cli/complete.py on each <TAB>."""

from __future__ import annotations

from enum import Enum
from typing import Annotated

import typer

COMPLETE_VAR = "_LLMD_COMPLETE"


class Shell(str, Enum):
    bash = "bash"
    zsh = "zsh"
    fish = "fish"


def completion(ctx: typer.Context, shell: Annotated[Shell, typer.Argument(help="bash, zsh or fish")]) -> None:
    """Print the shell-completion script: commands, options, and the choices of --environment, --accelerator,
    --scheduler, --workload, ... plus contexts and namespaces from the kubeconfig (read locally, no cluster call).

    bash: `source <(llmd completion bash)` (or save it as ~/.local/share/bash-completion/completions/llmd);
    zsh: `llmd completion zsh > "${fpath[1]}/_llmd"`;
    fish: `llmd completion fish > ~/.config/fish/completions/llmd.fish`.
    """
    from typer._click.shell_completion import get_completion_class
    from typer._completion_classes import completion_init

    completion_init()
    cls = get_completion_class(shell.value)
    assert cls is not None  # registered just above
    root = ctx.find_root().command
    ctx.obj.ui().data(cls(root, {}, "llmd", COMPLETE_VAR).source() + "\n")
