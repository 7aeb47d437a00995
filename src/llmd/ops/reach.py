"""One reachability budget for every verb that talks to the cluster.

Before its first real request, each verb probes the API server once with `kubectl version` (bounded by
preflight.REACH_TIMEOUT_S, under 15 s) and says what it is waiting for. Without the probe, a server that
accepts connections and never answers cost `status`, `cleanup` and `test` about 50 s of silence: kubectl's
discovery and get calls each spend their own --request-timeout.
"""

from __future__ import annotations

from collections.abc import Callable

from llmd.kube.kubectl import Kubectl, Scope
from llmd.ops.target import Target, pin_target
from llmd.proc import Runner


def reach_target(settings, runner: Runner, say: Callable[[str], None] | None = None) -> tuple[Scope, Target]:
    """pin_target, then the one probe: ClusterError (exit 4) when the server is unreachable or refuses us.
    A kubectl older than deploy's minimum is doctor's and deploy's business, not a reason to stop here."""
    from llmd.ops.preflight import check_reachable

    scope, target = pin_target(settings, runner)
    if not runner.dry_run:
        check_reachable(Kubectl(runner, scope), target, say)
    return scope, target
