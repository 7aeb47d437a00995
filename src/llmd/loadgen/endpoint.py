"""What the load engine (Endpoint) and a perf run (LiveEndpoint) need from an endpoint; llmd.ops.endpoint.Endpoint
is the real one, a worker process gets a picklable snapshot (llmd.loadgen.workers)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol


class Endpoint(Protocol):
    @property
    def url(self) -> str:
        """The base URL now: a restarted port-forward has a new local port."""

    @property
    def via_port_forward(self) -> bool: ...

    @property
    def generation(self) -> int:
        """Bumps when a port-forward restarts: a request sent on an older generation lost its tunnel."""

    @property
    def headers(self) -> Mapping[str, str]:
        """Sent with every request (Authorization from $LLMD_API_KEY)."""


class LiveEndpoint(Endpoint, Protocol):
    """An endpoint that may be a port-forward: perf asks it about losses and revives it between stages."""

    def lost_during(self, sent_ns: int | None, end_ns: int | None) -> bool:
        """True when the port-forward died under a request sent and ended at these perf_counter_ns stamps."""

    def ensure_alive(self) -> None:
        """Between phases: re-probe a port-forward, restarting it if it went idle or died."""
