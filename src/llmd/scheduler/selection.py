"""The EPP config a deployment's settings select (profile or --scheduler-config file, then overrides),
validated: errors are bad input (exit 2) before anything renders, warnings travel with the result."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmd.errors import ConfigError
from llmd.scheduler import profiles, validate
from llmd.scheduler.profiles import EppConfig


@dataclass(frozen=True)
class Selection:
    config: EppConfig
    source: str  # "profile default", "file custom.yaml"
    warnings: tuple[str, ...] = ()


def raise_findings(what: str, findings: list[validate.Finding], hint: str) -> None:
    errs = validate.errors(findings)
    if errs:
        raise ConfigError(f"{what} is invalid ({len(errs)} error{'s' if len(errs) > 1 else ''}):\n"
                          + "\n".join(f"  • {f}" for f in findings), hint=hint)


def load_custom(path: str) -> tuple[EppConfig, list[validate.Finding]]:
    """An EndpointPickerConfig file, or inferencepool values holding one (the one pluginsConfigFile names,
    or the only pluginsCustomConfig entry). Findings carry file:line:column; errors raise ConfigError."""
    from llmd.scheduler import marked_yaml

    findings = validate.check_file(path)
    raise_findings(f"--scheduler-config {path}", findings,
                   "fix the file (`llmd scheduler validate FILE` lists every problem), or use a --scheduler profile")
    doc, _ = marked_yaml.load(Path(path).read_text(encoding="utf-8"))
    if isinstance(doc, dict) and "inferenceExtension" in doc and "plugins" not in doc:
        ext = doc["inferenceExtension"]
        custom: dict[str, Any] = ext.get("pluginsCustomConfig") or {}
        name = ext.get("pluginsConfigFile")
        if name not in custom:
            if len(custom) != 1:
                raise ConfigError(f"--scheduler-config {path}: pluginsConfigFile does not say which of "
                                  f"{', '.join(custom)} the EPP runs", hint="set inferenceExtension.pluginsConfigFile")
            name = next(iter(custom))
        doc, _ = marked_yaml.load(custom[name])
    return doc, findings


def for_settings(settings: Any) -> Selection:
    """The effective EndpointPickerConfig of `settings` (scheduler, scheduler_config, scorer_weights,
    scorer_params), validated against the pinned EPP."""
    warnings: list[str] = []
    custom = None
    seen: set[str] = set()  # messages already reported with their file position
    if settings.scheduler_config:
        custom, file_findings = load_custom(settings.scheduler_config)
        source = f"file {settings.scheduler_config}"
        warnings += [str(f) for f in file_findings]
        seen = {f.message for f in file_findings}
    else:
        resolved = profiles.resolve(settings.scheduler)
        source = f"profile {resolved.name}"
        if resolved.notice:
            warnings.append(resolved.notice)
    doc = profiles.effective_config(settings.scheduler, model=settings.served_model_name,
                                    weights=settings.scorer_weights, params=settings.scorer_params, custom=custom)
    if settings.scorer_weights or settings.scorer_params or custom is None:
        findings = validate.check(doc, file="effective EPP config")
        raise_findings(f"the EPP config ({source} with the --scorer-weight/--scorer-param overrides)", findings,
                       "fix the override, or see `llmd scheduler show` for the profile's plugins")
        warnings += [str(f) for f in findings if f.message not in seen]
    return Selection(doc, source, tuple(warnings))
