"""`llmd version`: llmd's version and the stack it pins (llm-d release, chart versions, images)."""

from __future__ import annotations

from typing import Any

import typer

from llmd.cli.options import JsonOpt


def version(ctx: typer.Context, *, json: JsonOpt = False) -> None:
    """Show llmd's version and the pinned stack: the llm-d release, the three chart versions, and the images the
    default deployment pulls (plus the model-server image of every --accelerator). `llmd --version` prints
    llmd's version alone. `llmd render --list-images` lists the images of any settings."""
    ui = ctx.obj.ui(json_mode=json)
    doc = stack_versions()
    if json:
        ui.json(doc)
        return
    lines = [f"llmd {doc['llmd']}", f"llm-d {doc['llm_d']['release']} ({doc['llm_d']['guide']} guide)", "charts:"]
    lines += [f"  {key:<6} {chart['chart']} {chart['version']}" for key, chart in doc["charts"].items()]
    lines.append("images of the default deployment:")
    lines += [f"  {e['image']}  ({', '.join(e['files'])})" for e in doc["images"]]
    lines.append("model-server image per --accelerator:")
    lines += [f"  {acc:<12} {image}" for acc, image in doc["model_server_images"].items()]
    ui.data("\n".join(lines) + "\n")  # like `llmd --version`, on stdout: `llmd version | grep llm-d` works


def stack_versions() -> dict[str, Any]:
    from llmd import __version__, presets
    from llmd.render import layers, render_bundle
    from llmd.render.images import bundle_images
    from llmd.settings import ACCELERATORS, load_settings

    defaults = presets.load_shared("defaults")
    settings = load_settings({"no_hf_token": True}, environ={})  # the built-in default deployment, no env leaks
    return {
        "llmd": __version__,
        "llm_d": dict(defaults["llm_d"]),
        "charts": {k: {"chart": v["chart"], "version": v["version"]} for k, v in defaults["charts"].items()},
        "images": bundle_images(render_bundle(settings).files),
        "model_server_images": {acc: layers.ms(acc)["decode"]["containers"][0]["image"] for acc in ACCELERATORS},
    }
