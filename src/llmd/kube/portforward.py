"""`kubectl port-forward` as a supervised, always-reaped tunnel (rule 13, faults F33-F39).

The kernel picks the local port (`:80`) unless one is asked for, and then it is checked free before
anything starts. The tunnel counts as ready only after kubectl prints `Forwarding from` AND an HTTP
probe through it gets any answer. A watchdog thread notices a dead child within a second and a wedged
one (probes time out) within a few probe intervals, and restarts it with exponential backoff up to a
budget; every restart bumps `generation` so the load engine can count in-flight requests as
`tunnel_lost`. The child runs in its own process group, is registered with `llmd.proc` (Ctrl-C and
atexit reap it) and is always stopped in `__exit__`.

kubectl tunnels every connection through one API-server -> kubelet stream to ONE pod behind the
Service: numbers measured through it are not a neutral throughput path (rule 14).
"""
# The IDs cited here (rule N, F##) are defined in docs/behaviours.md.

from __future__ import annotations

import collections
import contextlib
import errno
import re
import socket
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from llmd.errors import LlmdError, TestFailed
from llmd.kube.kubectl import Kubectl
from llmd.proc import stop_process
from llmd.redact import redact
from llmd.retry import RetryPolicy

if TYPE_CHECKING:  # only llmd.proc starts processes
    import subprocess

FORWARDING = re.compile(r"Forwarding from 127\.0\.0\.1:(\d+) -> (\d+)")
# stderr lines kubectl prints when a tunnel is broken or wedged: probe at once instead of waiting.
TROUBLE_MARKERS = ("lost connection to pod", "error creating error stream", "Timeout occurred",
                   "an error occurred forwarding", "error creating forwarding stream")
PROBE_PATH = "/v1/models"
STDERR_KEEP = 40
STOP_GRACE_S = 2.0  # kubectl exits on SIGINT at once; do not wait the runner's generic 5 s
# A request that failed up to this long before a loss was *seen* died with the tunnel: the sockets of a dying
# kubectl close (and the request fails) a moment before the watchdog notices the exit (F37: within ~0.3 s).
LOSS_GRACE_S = 1.0


def port_in_use(port: int) -> bool:
    """True when 127.0.0.1:<port> cannot be bound (someone listens there)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return True
            raise
    return False


def probe(url: str, timeout: float = 3.0) -> str | None:
    """GET <url>/v1/models through the tunnel. None when anything answered (any status), else the error."""
    import httpx

    t = httpx.Timeout(connect=timeout, read=timeout, write=timeout, pool=timeout)
    try:
        with httpx.Client(timeout=t, trust_env=False) as client:
            client.get(url + PROBE_PATH, headers={"connection": "close"})
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return None


class _Child:
    """One kubectl process and the threads draining its pipes (a full pipe would block kubectl)."""

    def __init__(self, proc: subprocess.Popen, on_trouble: Callable[[str], None]) -> None:
        self.proc = proc
        self.port: int | None = None
        self.forwarding = threading.Event()
        self.stderr: collections.deque[str] = collections.deque(maxlen=STDERR_KEEP)
        self.stdout: collections.deque[str] = collections.deque(maxlen=STDERR_KEEP)
        self._on_trouble = on_trouble
        self._threads = [threading.Thread(target=self._pump, args=(proc.stdout, True), daemon=True),
                         threading.Thread(target=self._pump, args=(proc.stderr, False), daemon=True)]
        for t in self._threads:
            t.start()

    def _pump(self, stream, is_stdout: bool) -> None:
        if stream is None:
            return
        with contextlib.suppress(ValueError, OSError):  # closed under us while stopping
            while True:
                raw = stream.readline()
                if raw:
                    self._line(raw, is_stdout)
                    continue
                # EOF while the child lives on (a closed pipe, or a buffer not yet filled): keep watching
                # until it exits, then drain what is left.
                if self.proc.poll() is not None:
                    for rest in iter(stream.readline, b""):
                        self._line(rest, is_stdout)
                    self._on_trouble("")  # exited: wake the watchdog now rather than at its next tick
                    return
                time.sleep(0.05)

    def _line(self, raw: bytes, is_stdout: bool) -> None:
        line = redact(raw.decode("utf-8", errors="replace").rstrip("\r\n"))
        if is_stdout:
            self.stdout.append(line)
            m = FORWARDING.search(line)
            if m and self.port is None:
                self.port = int(m.group(1))
                self.forwarding.set()
        else:
            self.stderr.append(line)
            if any(mark.lower() in line.lower() for mark in TROUBLE_MARKERS):
                self._on_trouble(line)

    def output_tail(self) -> str:
        lines = list(self.stderr) or list(self.stdout)
        return "\n".join(lines[-15:]) if lines else "(kubectl printed nothing)"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        stop_process(self.proc, grace_int=STOP_GRACE_S, grace_term=STOP_GRACE_S)
        for t in self._threads:
            t.join(timeout=1)


class PortForward:
    """`with PortForward(kubectl, "svc/<name>") as pf:` then use `pf.url`; see the module docstring."""

    def __init__(
        self,
        kubectl: Kubectl,
        target: str,
        remote_port: int = 80,
        local_port: int | None = None,
        *,
        ready_timeout: float = 20.0,
        probe_timeout: float = 3.0,
        watch_interval: float = 0.2,
        probe_interval: float = 5.0,
        probe_failures: int = 2,
        restart_budget: int = 5,
        backoff_base: float = 0.5,
        backoff_max: float = 8.0,
        on_event: Callable[[str], None] | None = None,
    ) -> None:
        self.kubectl = kubectl
        self.target = target
        self.remote_port = remote_port
        self.local_port = local_port
        self.ready_timeout = ready_timeout
        self.probe_timeout = probe_timeout
        self.watch_interval = watch_interval
        self.probe_interval = probe_interval
        self.probe_failures = probe_failures
        self.restart_budget = restart_budget
        # restarts paced by the one retry policy, unjittered: one tunnel has nobody to de-synchronise from
        self.restart_policy = RetryPolicy(base=backoff_base, cap=backoff_max, jitter=False)
        self.on_event = on_event or (lambda _msg: None)

        self.url: str | None = None
        # 1 once up; +1 when a loss is seen and +1 when the replacement is up: a request that started in an older
        # generation and failed was lost with its tunnel (the load engine counts it as tunnel_lost).
        self.generation = 0
        self.restarts = 0  # restart attempts made (bounded by restart_budget)
        self.events: list[dict] = []  # losses and restarts, for the report
        self.failed: LlmdError | None = None  # set when the watchdog gave up (restart budget spent)
        # (suspected_ns, seen_ns) per loss, in time.perf_counter_ns (CLOCK_MONOTONIC, system-wide on Linux: the
        # load engine's sent/end stamps, worker processes included, compare directly). See lost_during().
        self.losses: list[tuple[int, int]] = []

        self._child: _Child | None = None
        self._children: list[_Child] = []
        self._lock = threading.RLock()  # one (re)start at a time: watchdog vs ensure_alive
        self._stop = threading.Event()
        self._trouble = threading.Event()  # kubectl printed a trouble line: probe now
        self._wake = threading.Event()  # wakes the watchdog early (child exit, trouble line, close)
        self._watchdog: threading.Thread | None = None

    # ---- lifecycle ---------------------------------------------------------------------------------

    def __enter__(self) -> PortForward:
        if self.local_port is not None and port_in_use(self.local_port):  # F33: nothing started
            raise TestFailed(f"port {self.local_port} in use on 127.0.0.1",
                             hint="pick another --local-port, or omit it to let the kernel choose a free one")
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        self._watchdog = threading.Thread(target=self._watch, name="port-forward-watchdog", daemon=True)
        self._watchdog.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Stop the watchdog and every child this tunnel ever started (idempotent)."""
        self._stop.set()
        self._wake.set()
        if self._watchdog is not None and self._watchdog is not threading.current_thread():
            self._watchdog.join(timeout=self.ready_timeout + 5)
        with self._lock:
            for child in self._children:
                child.stop()
            self._children.clear()
            self._child = None

    @property
    def is_up(self) -> bool:
        child = self._child
        return child is not None and child.alive() and self.failed is None

    @property
    def pid(self) -> int | None:
        child = self._child
        return child.proc.pid if child else None

    # ---- start / restart ---------------------------------------------------------------------------

    def _argv_port(self) -> str:
        return f"{self.local_port if self.local_port is not None else ''}:{self.remote_port}"

    def _start(self) -> None:
        """Spawn kubectl and wait for `Forwarding from` + a probe; TestFailed (exit 7) otherwise."""
        cmd = self.kubectl.cmd("port-forward", "--address", "127.0.0.1", self.target, self._argv_port(),
                               title=f"port-forward {self.target}")
        proc = self.kubectl.runner.spawn(cmd)
        child = _Child(proc, self._note_trouble)
        with self._lock:
            self._children.append(child)
        deadline = time.monotonic() + self.ready_timeout
        try:
            self._wait_ready(child, deadline)
        except BaseException:
            self._discard(child)
            raise
        with self._lock:
            self._child = child
            self.url = f"http://127.0.0.1:{child.port}"
            self.generation += 1
            self._trouble.clear()

    def _wait_ready(self, child: _Child, deadline: float) -> None:
        while not child.forwarding.wait(0.05):
            if not child.alive():  # F36: e.g. "error: unable to forward port", pod not running
                time.sleep(0.1)  # let the pumps collect the last stderr lines
                raise TestFailed(f"kubectl port-forward {self.target} exited (code {child.proc.returncode}) "
                                 "before forwarding", hint=self._hint(), details=child.output_tail())
            if self._stop.is_set():
                raise TestFailed("port-forward cancelled while starting")
            if time.monotonic() >= deadline:  # F35: prints nothing / hangs
                raise TestFailed(f"kubectl port-forward {self.target} printed no 'Forwarding from' line within "
                                 f"{self.ready_timeout:g}s", hint=self._hint(), details=child.output_tail())
        url = f"http://127.0.0.1:{child.port}"
        last = "no probe made"
        while True:
            err = probe(url, min(self.probe_timeout, max(0.2, deadline - time.monotonic())))
            if err is None:
                return
            last = err
            if not child.alive():
                raise TestFailed(f"kubectl port-forward {self.target} exited (code {child.proc.returncode}) "
                                 "right after forwarding", hint=self._hint(), details=child.output_tail())
            if time.monotonic() >= deadline or self._stop.wait(0.2):
                raise TestFailed(f"port-forward {self.target} printed 'Forwarding from' but {url}{PROBE_PATH} "
                                 f"did not answer within {self.ready_timeout:g}s ({last})", hint=self._hint(),
                                 details=child.output_tail())

    def _hint(self) -> str:
        ns = self.kubectl.scope.namespace
        return (f"check the gateway pod behind {self.target}: kubectl get pods -n {ns}; "
                f"kubectl describe {self.target} -n {ns}; or test another endpoint with --url")

    def _discard(self, child: _Child) -> None:
        child.stop()
        with self._lock:
            if child in self._children:
                self._children.remove(child)
            if self._child is child:
                self._child = None

    def _note_trouble(self, line: str) -> None:
        if line:
            self._trouble.set()
        self._wake.set()

    def _record(self, kind: str, reason: str) -> None:
        self.events.append({"at": time.time(), "event": kind, "generation": self.generation, "reason": reason})

    def lost_during(self, sent_ns: int | None, end_ns: int | None, grace_s: float = LOSS_GRACE_S) -> bool:
        """Did this tunnel die under a request that ran from sent_ns to end_ns (perf_counter_ns)?

        True when a loss window [suspected - grace, seen] overlaps the request. Unlike comparing `generation`
        when the request fails, this also catches the request that failed in the instant before the loss was
        seen, so ask it after the stage (or at least `grace_s` after the failure)."""
        if not end_ns:
            return False
        start = sent_ns or end_ns
        grace = int(grace_s * 1e9)
        return any(start <= seen and end_ns >= suspected - grace for suspected, seen in list(self.losses))

    def _restart(self, reason: str, suspected_ns: int | None = None) -> None:
        """Replace the current child: backoff, respawn, re-probe; give up after the restart budget.

        `generation` bumps at once (requests still in flight belong to a lost tunnel) and again when the
        new tunnel is up (its new URL). `suspected_ns`: when trouble began, if before now (a wedged tunnel's
        first failed probe)."""
        with self._lock:
            seen = time.perf_counter_ns()
            self.losses.append((min(suspected_ns or seen, seen), seen))
            self.generation += 1
            self._record("lost", reason)
            self.on_event(f"port-forward lost ({reason}); restarting")
            old = self._child
            if old is not None:
                self._discard(old)
            attempt = 0
            while not self._stop.is_set():
                if self.restarts >= self.restart_budget:
                    self.failed = TestFailed(
                        f"port-forward {self.target} lost and not restored after {self.restarts} restart(s)",
                        hint=self._hint(), details=reason)
                    self._record("gave_up", reason)
                    return
                delay = self.restart_policy.delay(attempt + 1)
                attempt += 1
                if self._stop.wait(delay):
                    return
                self.restarts += 1
                try:
                    if self.local_port is not None and port_in_use(self.local_port):
                        raise TestFailed(f"port {self.local_port} still in use")
                    self._start()
                except TestFailed as exc:
                    reason = exc.message
                    self._record("restart_failed", reason)
                    continue
                self._record("restarted", self.url or "")
                self.on_event(f"port-forward restarted: {self.url} (generation {self.generation})")
                return

    # ---- watching ------------------------------------------------------------------------------------

    def _watch(self) -> None:
        next_probe = time.monotonic() + self.probe_interval
        failures = 0
        suspected_ns = None  # start of the first failed probe of a run of failures (a wedged tunnel)
        while True:
            self._wake.wait(self.watch_interval)
            self._wake.clear()
            if self._stop.is_set():
                return
            if self.failed is not None:
                return
            child = self._child
            reason = None
            if child is None or not child.alive():  # F37: detected within one watch interval
                code = child.proc.returncode if child else None
                reason = f"kubectl exited (code {code}): {child.output_tail() if child else ''}".strip()
            elif self._trouble.is_set() or time.monotonic() >= next_probe:  # F38: wedged tunnel
                self._trouble.clear()
                next_probe = time.monotonic() + self.probe_interval
                probe_ns = time.perf_counter_ns()
                err = probe(self.url or "", self.probe_timeout)
                failures = failures + 1 if err else 0
                if failures == 1:
                    suspected_ns = probe_ns
                if failures >= self.probe_failures:
                    reason = f"{failures} failed probes ({err})"
                elif err:
                    next_probe = time.monotonic() + min(1.0, self.probe_interval)
            if reason and not self._stop.is_set():
                self._restart(reason, suspected_ns if failures else None)
                failures, suspected_ns = 0, None
                next_probe = time.monotonic() + self.probe_interval

    def ensure_alive(self) -> None:
        """Re-probe between phases (F39: idle past the kubelet streaming timeout) and restart if needed."""
        if self.failed is not None:
            raise self.failed
        with self._lock:
            child = self._child
            err = "no tunnel" if child is None or not child.alive() else probe(self.url or "", self.probe_timeout)
            if err is not None:
                self._restart(f"re-probe failed: {err}")
        if self.failed is not None:
            raise self.failed
        if not self.is_up:
            raise TestFailed(f"port-forward {self.target} is not running", hint=self._hint())

    def to_dict(self) -> dict:
        return {"target": self.target, "url": self.url, "generation": self.generation, "restarts": self.restarts,
                "events": list(self.events)}
