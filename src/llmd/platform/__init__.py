"""Where the stack runs. The verbs (deploy, status, test, cleanup, scheduler, bench) talk to a `Platform`; `select()`
is the one place that decides which from `settings.platform`, so no verb branches on it.

Both implementations return the same report types (DeployReport, StatusReport, CleanupReport, an Endpoint), so the
CLI shows them, prints --json and picks exit codes the same way.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from llmd.ops.cleanup import CleanupReport
    from llmd.ops.deploy import DeployReport
    from llmd.ops.endpoint import Endpoint
    from llmd.ops.status import StatusReport
    from llmd.proc import Runner
    from llmd.settings import Settings


class Platform(Protocol):
    name: str

    def deploy(self, settings: Settings, runner: Runner, ui: Any, *, out_dir: Path,
               recover: bool = False) -> DeployReport: ...

    def status(self, settings: Settings, runner: Runner, *, say: Any = None) -> StatusReport: ...

    def cleanup(self, settings: Settings, runner: Runner, ui: Any, *, keep_pvc: bool, remove_namespace: bool,
                confirm: Any) -> CleanupReport: ...

    def open_endpoint(self, settings: Settings, runner: Runner | None, ui: Any,
                      **options: Any) -> AbstractContextManager[Endpoint]: ...

    def apply_scheduler(self, settings: Settings, runner: Runner, ui: Any, profile: str, *,
                        dry_run: bool = False) -> dict[str, Any]:
        """Make `profile` the scheduler of the running stack and return once it is in effect (`dry_run`: only
        say what would change)."""
        ...

    def running_scheduler(self, settings: Settings, runner: Runner) -> Any:
        """The EndpointPickerConfig the running scheduler uses (llmd.ops.scheduler_show.ShowReport)."""
        ...

    def metrics_session(self, settings: Settings, runner: Runner, ui: Any) -> Any:
        """A context manager whose snapshot() reads the picker's and every model server's metrics
        (llmd.ops.scheduler_metrics.Snapshot)."""
        ...

    def perf_defaults(self) -> dict[str, dict[str, Any]]:
        """Per workload, PerfOptions values that replace the generic defaults of the flags a user did not give when
        the load goes to this platform's stack (the local twin sizes shared-prefix against its replicas' cache)."""
        ...

    def pick_counts(self, settings: Settings) -> dict[str, int] | None:
        """Requests routed to each endpoint so far, when the platform can tell (the local gateway can)."""
        ...


def select(settings: Settings) -> Platform:
    if settings.platform == "local":
        from llmd.platform.local import LocalPlatform

        return LocalPlatform()
    from llmd.platform.kubernetes import KubernetesPlatform

    return KubernetesPlatform()
