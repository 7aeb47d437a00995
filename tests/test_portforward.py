"""PortForward with pytest-subprocess playing kubectl (rows F33, F35-F39). The end-to-end probe is real:
the fake kubectl "forwards" to a FaultServer on 127.0.0.1 by printing that server's port."""
# The IDs cited here (rule N, F##) are defined in docs/behaviours.md.

from __future__ import annotations

import socket
import threading
import time

import pytest

from llmd import proc
from llmd.errors import ExitCode, TestFailed
from llmd.kube.kubectl import Kubectl, Scope
from llmd.kube.portforward import PortForward, port_in_use
from llmd.proc import Runner
from smoke_faults import FaultServer, Reply

PF_ARGV = ("kubectl", "--namespace", "ns", "--request-timeout=10s", "port-forward", "--address", "127.0.0.1",
           "svc/gw")


@pytest.fixture
def srv():
    s = FaultServer()
    yield s
    s.close()


@pytest.fixture
def kubectl():
    return Kubectl(Runner(), Scope("ns"))


class FakeKubectl:
    """Registers `kubectl port-forward` children; each lives `lives` seconds or until signalled."""

    def __init__(self, fp) -> None:
        self.fp = fp
        self.signals: list[list[int]] = []

    def add(self, port: int | None, *, lives: float | None = 30.0, stderr=(), returncode: int = 0) -> None:
        got: list[int] = []
        self.signals.append(got)
        done = threading.Event()
        stdout = [f"Forwarding from 127.0.0.1:{port} -> 80"] if port else []
        kw = {}
        if lives is not None:
            kw = {"callback": lambda p: _live(p, done, lives),
                  "signal_callback": lambda _p, sig: (got.append(sig), done.set())}
        self.fp.register([*PF_ARGV, self.fp.any(min=1, max=1)], stdout=stdout, stderr=list(stderr),
                         returncode=returncode, **kw)


def _live(process, done: threading.Event, lives: float) -> None:
    # FakePopen exposes its output only once finished; a live kubectl has printed its lines already.
    for stream in (process.stdout, process.stderr):
        if stream is not None:
            stream.seek(0)
    done.wait(lives)


@pytest.fixture
def fake(fp):
    return FakeKubectl(fp)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def restarted(pf) -> bool:
    return any(e["event"] == "restarted" for e in pf.events)


def wait_for(pred, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.02)
    return pred()


def test_ready_only_after_forwarding_line_and_probe_then_stopped(fp, fake, srv, kubectl):
    fake.add(srv.port)
    with PortForward(kubectl, "svc/gw", ready_timeout=3) as pf:
        assert pf.url == srv.url and pf.generation == 1 and pf.is_up
        assert srv.hits("/v1/models"), "ready must mean an HTTP answer came through the tunnel"
        assert fp.calls[0] == [*PF_ARGV, ":80"]  # the kernel picks the local port, bound to 127.0.0.1
    assert fake.signals[0][0] == 2  # SIGINT first: kubectl exits cleanly on it
    assert proc.live_children() == []


def test_f33_local_port_in_use_fails_before_anything_starts(fp, kubectl):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert port_in_use(port)
        with pytest.raises(TestFailed) as err:
            PortForward(kubectl, "svc/gw", local_port=port).__enter__()
    assert err.value.exit_code == ExitCode.TEST_FAILED and f"port {port} in use" in err.value.message
    assert len(fp.calls) == 0  # no orphan kubectl: none was started


def test_free_local_port_is_passed_to_kubectl(fp, fake, srv, kubectl):
    port = free_port()
    fake.add(srv.port)
    with PortForward(kubectl, "svc/gw", local_port=port, ready_timeout=3):
        assert fp.calls[0][-1] == f"{port}:80"


def test_f35_no_forwarding_line_kills_the_child_within_the_deadline(fp, fake, kubectl):
    fake.add(None, stderr=["I1128 some unrelated chatter"])
    started = time.monotonic()
    with pytest.raises(TestFailed) as err:
        with PortForward(kubectl, "svc/gw", ready_timeout=0.5):
            pass
    assert time.monotonic() - started < 3
    assert "no 'Forwarding from' line within 0.5s" in err.value.message
    assert "unrelated chatter" in err.value.details
    assert fake.signals[0] and fake.signals[0][0] == 2


def test_f35_forwarding_but_no_http_answer_is_not_ready(fp, fake, kubectl):
    fake.add(free_port())  # nothing listens there
    with pytest.raises(TestFailed) as err:
        with PortForward(kubectl, "svc/gw", ready_timeout=0.8, probe_timeout=0.2):
            pass
    assert "did not answer" in err.value.message and fake.signals[0]


def test_f36_immediate_exit_reports_stderr_without_retrying(fp, fake, kubectl):
    fake.add(None, lives=None, returncode=1,
             stderr=["error: unable to forward port because pod is not running. Current status=Pending"])
    with pytest.raises(TestFailed) as err:
        with PortForward(kubectl, "svc/gw", ready_timeout=5):
            pass
    assert err.value.exit_code == 7 and "exited (code 1) before forwarding" in err.value.message
    assert "pod is not running" in err.value.details
    assert len(fp.calls) == 1


def test_f37_child_dies_mid_run_is_detected_and_restarted(fp, fake, srv, kubectl):
    other = FaultServer()
    try:
        fake.add(srv.port, lives=0.4, returncode=1, stderr=["E1128 portforward.go:413] lost connection to pod"])
        fake.add(other.port)
        # watch_interval 5 s: the exit is noticed through the closed pipes at once, not by the periodic check
        with PortForward(kubectl, "svc/gw", ready_timeout=3, watch_interval=5, backoff_base=0.05) as pf:
            entered = time.monotonic()
            assert wait_for(lambda: restarted(pf), 4), pf.events
            assert pf.generation == 3  # +1 when the loss was seen (in-flight requests are lost), +1 when back
            lost = next(e for e in pf.events if e["event"] == "lost")
            assert "lost connection to pod" in lost["reason"]
            assert lost["at"] - (time.time() - (time.monotonic() - entered)) < 0.4 + 0.5  # well within 1 s of the exit
            assert pf.url == other.url and pf.restarts == 1  # the new tunnel has a new local port
            pf.ensure_alive()
        assert len(fp.calls) == 2
    finally:
        other.close()


def test_a_request_cut_just_before_the_loss_is_seen_counts_as_lost(fp, fake, srv, kubectl):
    """The race behind `truncated` vs `tunnel_lost`: when kubectl dies, its sockets close (a request in flight
    fails) before the watchdog sees the exit, so `generation` still looks unchanged at that instant.
    lost_during() judges by the loss window instead."""
    other = FaultServer()
    try:
        at_exit: dict = {}
        holder: dict = {}

        def dies(process):
            for stream in (process.stdout, process.stderr):
                stream.seek(0)
            time.sleep(0.3)
            at_exit["ns"] = time.perf_counter_ns()  # the instant a request through this tunnel would be cut
            at_exit["generation"] = holder["pf"].generation

        fp.register([*PF_ARGV, fp.any(min=1, max=1)], stdout=[f"Forwarding from 127.0.0.1:{srv.port} -> 80"],
                    returncode=1, callback=dies)
        fake.add(other.port)
        with PortForward(kubectl, "svc/gw", ready_timeout=3, backoff_base=0.05) as pf:
            holder["pf"] = pf
            assert wait_for(lambda: restarted(pf), 4), pf.events
            cut = at_exit["ns"]
            assert at_exit["generation"] == 1  # a generation check at the failure would say "not lost"
            (suspected, seen), = pf.losses
            assert suspected == seen  # a dead child: no earlier sign of trouble
            assert 0 <= seen - cut < 1e9  # seen within the grace after the cut
            assert pf.lost_during(cut - 200_000_000, cut)  # the request that was cut
            assert not pf.lost_during(cut - 5_000_000_000, cut - 3_000_000_000)  # failed long before: not ours
            assert not pf.lost_during(seen + 1_000_000, seen + 50_000_000)  # started after the loss was seen
            assert not pf.lost_during(None, None)
    finally:
        other.close()


def test_f38_wedged_tunnel_is_restarted(fp, fake, srv, kubectl):
    other = FaultServer()
    try:
        srv.script("/v1/models", Reply(json={"data": []}), Reply(delay=1.5, json={"data": []}), repeat=True)
        fake.add(srv.port)
        fake.add(other.port)
        with PortForward(kubectl, "svc/gw", ready_timeout=3, probe_timeout=0.3, probe_interval=0.2,
                         watch_interval=0.05, backoff_base=0.05) as pf:
            assert wait_for(lambda: restarted(pf), 5), pf.events
            assert "failed probes" in pf.events[0]["reason"]
            assert pf.url == other.url
            (suspected, seen), = pf.losses
            assert seen - suspected >= 0.3e9  # trouble began at the first failed probe, before the restart
            assert pf.lost_during(suspected - 2_000_000_000, suspected + 100_000_000)  # timed out while wedged
    finally:
        other.close()


def test_f39_ensure_alive_restarts_a_tunnel_that_died_between_phases(fp, fake, srv, kubectl):
    fake.add(srv.port, lives=0.2, returncode=1)
    fake.add(srv.port)
    with PortForward(kubectl, "svc/gw", ready_timeout=3, watch_interval=60, backoff_base=0.01) as pf:
        time.sleep(0.4)
        pf.ensure_alive()
        assert pf.generation == 3 and pf.is_up and restarted(pf)


def test_restart_budget_is_capped_then_ensure_alive_fails(fp, fake, srv, kubectl):
    fake.add(srv.port, lives=0.2, returncode=1)
    for _ in range(2):
        fake.add(None, lives=None, returncode=1, stderr=["error: unable to forward port"])
    with PortForward(kubectl, "svc/gw", ready_timeout=3, watch_interval=0.05, backoff_base=0.01,
                     restart_budget=2) as pf:
        assert wait_for(lambda: pf.failed is not None, 4)
        with pytest.raises(TestFailed) as err:
            pf.ensure_alive()
    assert "not restored after 2 restart(s)" in err.value.message
    assert len(fp.calls) == 3  # the first child + exactly the budget


def test_ctrl_c_inside_the_block_stops_the_child(fp, fake, srv, kubectl):
    fake.add(srv.port)
    with pytest.raises(KeyboardInterrupt):
        with PortForward(kubectl, "svc/gw", ready_timeout=3):
            raise KeyboardInterrupt
    assert fake.signals[0][0] == 2
    assert proc.live_children() == []


def test_f56_unhandled_exception_still_stops_the_child(fp, fake, srv, kubectl):
    fake.add(srv.port)
    with pytest.raises(RuntimeError):
        with PortForward(kubectl, "svc/gw", ready_timeout=3) as pf:
            assert pf.is_up
            raise RuntimeError("bug")
    assert fake.signals[0][0] == 2 and not pf.is_up
    assert proc.live_children() == []
