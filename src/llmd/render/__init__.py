"""`render_bundle(settings)`: the complete deployment (helmfile, chart values, manifests) as a Bundle.

Pure: no I/O besides reading package data. `llmd render` writes it, `llmd deploy` applies the same files.
"""

from __future__ import annotations

from llmd.render.bundle import Bundle

__all__ = ["Bundle", "render_bundle"]


def render_bundle(settings) -> Bundle:
    from llmd import __version__, presets
    from llmd.render import bundle as B
    from llmd.render import engine, kv_events, manifests, mirror, values
    from llmd.scheduler import selection

    charts = presets.load("defaults")["charts"]
    overrides = settings.value_overrides
    chosen = selection.for_settings(settings)  # the EPP config; a bad one is exit 2 before any file
    chart_values = {
        "infra": values.apply_overrides(values.infra_values(settings), "infra", overrides),
        "gaie": values.apply_overrides(values.gaie_values(settings, chosen), "gaie", overrides),
        "ms": values.apply_overrides(values.ms_values(settings, chosen), "ms", overrides),
    }
    renamed = values.check_gaie(chart_values["gaie"], charts["gaie"]["version"])
    kv_events.check_model_servers(chart_values["gaie"], chart_values["ms"])
    rules = mirror.mirror_rules(settings)
    for tree in chart_values.values():  # after --set: a user-given image is mirrored too
        mirror.rewrite_images(tree, rules)
    values.check_schema(chart_values, overrides, charts)

    context = {"settings": settings, "version": __version__, "charts": charts,
               "sources": mirror.summary(settings)}
    files: dict[str, str] = {
        B.HELMFILE: engine.render_file("helmfile.yaml.j2", [manifests.helmfile(settings)], **context),
    }
    for key, rel in B.VALUES.items():
        files[rel] = engine.render_file("values.yaml.j2", [chart_values[key]], release=key, **context)
    files[B.HTTPROUTE] = engine.render_file("manifest.yaml.j2", [manifests.httproute(settings)],
                                            what="HTTPRoute from the gateway to the InferencePool", **context)
    if values.uses_model_cache(settings):
        files[B.PVC] = engine.render_file("manifest.yaml.j2", [manifests.model_cache_pvc(settings)],
                                          what="model-cache PVC (Hugging Face hub cache layout)", **context)
        files[B.DOWNLOAD_JOB] = engine.render_file(
            "manifest.yaml.j2", [mirror.rewrite_images(manifests.model_download_job(settings), rules)],
            what="Job that downloads the model into the cache PVC once (skips when complete)", **context)
    return Bundle(files, (*chosen.warnings, *renamed))
