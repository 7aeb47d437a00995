"""`llmd scheduler show`: the effective EPP config of a profile, or of the running EPP, as data."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from llmd.proc import Runner
from llmd.scheduler.plan import weight_rows
from llmd.scheduler.profiles import EppConfig


@dataclass
class ShowReport:
    source: str  # "profile default", "file x.yaml", "running EPP gaie-...-epp"
    config: EppConfig
    config_file: str | None = None  # the file the EPP reads (running: from its --config-file)
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # the running config fails validation (it crash-loops)

    def rows(self) -> list[dict[str, Any]]:
        return weight_rows(self.config) if not self.errors else []

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "config_file": self.config_file, "config": self.config,
                "plugins": self.rows(), "warnings": self.warnings, "errors": self.errors}


def show_profile(settings: Any) -> ShowReport:
    """The config `llmd deploy` would give the EPP for these settings (profile or file, and overrides)."""
    from llmd.render import epp, yamlsafe
    from llmd.scheduler import selection

    chosen = selection.for_settings(settings)
    return ShowReport(chosen.source, chosen.config, epp.config_file_name(yamlsafe.dump(chosen.config)),
                      list(chosen.warnings))


def show_running(settings: Any, runner: Runner) -> ShowReport:
    from llmd.kube.kubectl import Kubectl
    from llmd.ops.scheduler_running import read_running
    from llmd.ops.target import pin_target
    from llmd.scheduler import validate

    scope, target = pin_target(settings, runner)
    running = read_running(settings, Kubectl(runner, scope))
    source = f"running EPP {settings.epp_name} on {target.describe()}"
    if not running.text:
        from llmd.errors import NotReadyError

        raise NotReadyError(f"the EPP reads /config/{running.config_file or '?'} but ConfigMap {settings.epp_name} "
                            "has no such key", hint="`llmd deploy` (or `llmd scheduler apply`) writes both")
    findings = validate.check_text(running.text, file=f"ConfigMap {settings.epp_name}/{running.config_file}")
    doc = running.doc or {}
    return ShowReport(source, doc, running.config_file,
                      [str(f) for f in findings if f.severity == validate.WARNING],
                      [str(f) for f in validate.errors(findings)])
