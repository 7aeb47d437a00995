"""`llmd render`: write the complete deployment (helmfile, chart values, manifests) without touching a cluster."""

# No `from __future__ import annotations` here: @settings_options rebuilds the signature, and Typer must see
# the Annotated option objects themselves (string annotations would lose --out's help and its -o alias).
from pathlib import Path
from typing import Annotated

import typer

from llmd.cli.common import load
from llmd.cli.options import settings_options

OutOpt = Annotated[str, typer.Option("--out", help="Directory to write, or '-' for one YAML stream on stdout",
                                     show_default=True)]
ListImagesOpt = Annotated[bool, typer.Option(
    "--list-images", help="Print every image the stack pulls (one per line; --json: with the files using it) "
                          "and write nothing: the list to mirror for an air-gapped registry")]
JsonFilesOpt = Annotated[bool, typer.Option("--json", help="Print a JSON list of the files written "
                                            "(with --out -: a list of {path, content})")]


@settings_options
def render(ctx: typer.Context, *, out: OutOpt = "rendered", list_images: ListImagesOpt = False,
           json: JsonFilesOpt = False, flags, sets, config) -> None:
    """Render the helmfile, one values file per release, the HTTPRoute and the model-cache manifests.

    The output also works without llmd: the hint at the end lists the kubectl/helmfile commands in the order
    deploy runs them. Invalid settings exit 2 before anything is written.
    """
    ui, settings = load(ctx, flags, sets, config, json_mode=json, json_errors=json)
    from llmd.cli.lifecycle import json_failure

    with json_failure(ui, json):
        if list_images:
            _list_images(ui, settings, json)
        else:
            _render(ui, settings, out, json)


def _list_images(ui, settings, json: bool) -> None:
    from llmd.render import render_bundle
    from llmd.render.images import bundle_images

    images = bundle_images(render_bundle(settings).files)
    if json:
        ui.json(images)
    else:
        ui.data("".join(f"{entry['image']}\n" for entry in images))


def _render(ui, settings, out: str, json: bool) -> None:
    from llmd.errors import ConfigError
    from llmd.render import render_bundle
    from llmd.render.mirror import summary

    bundle = render_bundle(settings)
    for line in summary(settings):  # air-gap sources are part of what was rendered: say so
        ui.info(line)
    for warning in bundle.warnings:
        ui.warn(warning)
    if out == "-":
        if json:
            ui.json([{"path": rel, "content": text} for rel, text in bundle.files.items()])
        else:
            ui.data(bundle.to_stream())
        return
    if not out.strip():
        raise ConfigError("--out is empty", hint="give a directory (default: rendered) or '-' for stdout")
    try:
        directory = bundle.write(Path(out))
    except OSError as exc:
        raise ConfigError(f"cannot write the rendered files to {out}: {exc.strerror} ({exc.filename})",
                          hint="choose another --out directory, or '-' to print them") from None
    written = [str(directory / rel) for rel in bundle.files]
    if json:
        ui.json(written)
        return
    for path in written:
        ui.result(path)
    ui.ok(f"rendered {len(written)} files into {directory}")
    from llmd.ops.deploy_steps import by_hand

    ui.hint("deploy with `llmd deploy`, or by hand in this order:\n"
            + "\n".join(f"  {line}" for line in by_hand(settings, bundle.files, directory)))
