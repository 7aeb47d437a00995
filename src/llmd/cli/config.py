"""`llmd config`: the resolved settings, each with the layer it came from."""

from __future__ import annotations

import typer

from llmd.cli.common import load
from llmd.cli.options import JsonOpt, settings_options


@settings_options
def config(ctx: typer.Context, *, json: JsonOpt = False, flags, sets, config) -> None:
    """Show the resolved settings and where each value came from (default, config file, env, flag, --set)."""
    ui, settings = load(ctx, flags, sets, config, json_mode=json, json_errors=json)
    table = settings.to_dict(with_sources=True)
    names = {
        "releases": list(settings.releases),
        "gateway": settings.gateway_name,
        "gateway_service": settings.gateway_service,
        "inference_pool": settings.pool_name,
        "epp": settings.epp_name,
        "decode_deployment": settings.decode_deployment,
        "httproute": settings.httproute_name,
        "hf_token_secret": settings.hf_secret_name,
        "model_cache_pvc": settings.pvc_name,
        "model_download_job": settings.download_job_name,
    }
    if json:
        ui.json({"settings": table, "names": names})
        return
    from rich.table import Table

    t = Table(title="llmd settings", show_lines=False)
    t.add_column("setting")
    t.add_column("value")
    t.add_column("source", style="dim")
    for key, entry in table.items():
        value = entry["value"]
        t.add_row(key, "\n".join(value) if isinstance(value, list) else str(value), entry["source"])
    ui.render(t)
    n = Table(title="derived names")
    n.add_column("object")
    n.add_column("name")
    for key, value in names.items():
        n.add_row(key, ", ".join(value) if isinstance(value, list) else str(value))
    ui.render(n)
