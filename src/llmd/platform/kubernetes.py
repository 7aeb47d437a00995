"""The Kubernetes platform: the existing ops (helmfile deploy, kubectl status/cleanup, port-forward) behind the seam."""

from __future__ import annotations

import dataclasses
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any


class KubernetesPlatform:
    name = "kubernetes"

    def deploy(self, settings, runner, ui, *, out_dir: Path, recover: bool = False):
        from llmd.ops.deploy import deploy

        return deploy(settings, runner, ui, out_dir=out_dir, recover=recover)

    def status(self, settings, runner, *, say=None):
        from llmd.ops.status import collect_status

        return collect_status(settings, runner, say=say)

    def cleanup(self, settings, runner, ui, *, keep_pvc: bool, remove_namespace: bool, confirm):
        from llmd.ops.cleanup import cleanup

        return cleanup(settings, runner, ui, keep_pvc=keep_pvc, remove_namespace=remove_namespace, confirm=confirm)

    def open_endpoint(self, settings, runner, ui, **options: Any) -> AbstractContextManager:
        from llmd.ops.endpoint import cluster_endpoint

        return cluster_endpoint(settings, runner, ui, **options)

    def running_scheduler(self, settings, runner):
        from llmd.ops.scheduler_show import show_running

        return show_running(settings, runner)

    def metrics_session(self, settings, runner, ui):
        from llmd.ops.scheduler_metrics import MetricsSession

        return MetricsSession(settings, runner, ui)

    def perf_defaults(self) -> dict[str, dict[str, Any]]:
        return {}  # a cluster's size is its own: the generic workload defaults

    def pick_counts(self, settings) -> dict[str, int] | None:
        return None  # the EPP exports no per-endpoint pick counter

    def apply_scheduler(self, settings, runner, ui, profile: str, *, dry_run: bool = False) -> dict[str, Any]:
        """Sync only the inferencepool release with the new EPP config and return once the new EPP pod is Ready and
        the old one gone; the model servers keep running (llmd.ops.scheduler_apply)."""
        from llmd.ops.scheduler_apply import apply_scheduler
        from llmd.paths import rendered_dir

        target = dataclasses.replace(settings, scheduler=profile)
        report = apply_scheduler(target, runner, ui, out_dir=rendered_dir(target), dry_run=dry_run)
        return {**report.to_dict(), "profile": profile, "platform": self.name}
