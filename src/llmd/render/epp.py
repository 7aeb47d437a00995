"""How the EPP config reaches the inferencepool chart, plus the older entry points of this module.

Profiles, overrides and validation live in llmd.scheduler (the stable import path); the names below
delegate to it so existing callers keep working.
"""

from __future__ import annotations

import hashlib
from typing import Any

from llmd.scheduler import profiles, registry, validate

API_VERSION = registry.API_VERSION
KIND = registry.KIND


def config_file_name(config_text: str) -> str:
    """`pluginsConfigFile` for a config: the chart starts the EPP with `--config-file /config/<this>`, so a
    name that changes with the content changes the pod template and the Deployment rolls the EPP."""
    return f"llmd-epp-{hashlib.sha256(config_text.encode('utf-8')).hexdigest()[:12]}.yaml"


def preset_names() -> tuple[str, ...]:
    return profiles.names()


def epp_config(preset: str, model: str = "{model}") -> dict[str, Any]:
    """The EndpointPickerConfig of profile (or deprecated alias) `preset`; see llmd.scheduler.effective_config."""
    return profiles.effective_config(preset, model=model)


def validate_epp_config(doc: Any) -> list[str]:
    """The errors that would make the pinned EPP refuse `doc` (warnings: llmd.scheduler.validate_config)."""
    return [str(f) for f in validate.errors(validate.check(doc))]
