"""Start and stop simulated replicas.

    server = await SimServer.start(cfg)          # inside a running loop
    handle = run_in_thread(cfg)                  # own event loop in a daemon thread; handle.url, handle.stop()
    await serve([cfg, ...], duration=2.0)        # the CLI: N replicas until the duration or SIGINT/SIGTERM

uvloop is used when installed (new loops only; an already running loop is used as is).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import Callable
from dataclasses import replace

from llmd.errors import ConfigError
from llmd.loadgen.loop import new_event_loop  # the one loop factory
from llmd.sim.app import SimApp
from llmd.sim.config import SimConfig
from llmd.sim.protocol import HttpConnection
from llmd.sim.record import Recorder


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class SimServer:
    """One listening replica. Build it with `await SimServer.start(cfg)`."""

    def __init__(self, app: SimApp, server: asyncio.base_events.Server, conns: set, own_recorder: bool) -> None:
        self.app = app
        self._server = server
        self._conns = conns
        self._own_recorder = own_recorder
        self.port: int = app.port
        self.url = _url(app.cfg.host, app.port)

    @classmethod
    async def start(cls, cfg: SimConfig, recorder: Recorder | None = None) -> SimServer:
        """Listen on cfg.host:cfg.port (0 = a free port). Raises ConfigError for bad settings or a busy port."""
        cfg.validate()
        own = recorder is None and cfg.record is not None
        if recorder is None and cfg.record is not None:
            recorder = Recorder(cfg.record)
        app = SimApp(cfg, recorder)
        loop = asyncio.get_running_loop()
        app.loop = loop
        conns: set[HttpConnection] = set()
        try:
            server = await loop.create_server(lambda: HttpConnection(app, conns), cfg.host, cfg.port,
                                              backlog=4096, reuse_address=True)
        except OSError as err:
            raise ConfigError(f"sim cannot listen on {cfg.host}:{cfg.port}: {err.strerror or err}",
                              hint="pick another --port, or --port 0 to let the kernel choose") from None
        app.port = server.sockets[0].getsockname()[1]
        return cls(app, server, conns, own)

    @property
    def stats(self):
        return self.app.stats

    async def stop(self) -> None:
        """Stop listening, cancel in-flight requests, close connections, flush the record file."""
        self._server.close()
        tasks = list(self.app.tasks)
        for task in tasks:
            task.cancel()
        for conn in list(self._conns):
            conn.close()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._server.wait_closed(), 2.0)
        if self._own_recorder and self.app.recorder is not None:
            self.app.recorder.flush()


class ThreadedSim:
    """A SimServer running on its own event loop in a daemon thread."""

    def __init__(self, cfg: SimConfig, recorder: Recorder | None = None) -> None:
        self._cfg = cfg
        self._recorder = recorder
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.server: SimServer | None = None
        self._thread = threading.Thread(target=self._main, name=f"llmd-sim-{cfg.port}", daemon=True)

    def _main(self) -> None:
        loop = self.loop = new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            self.server = loop.run_until_complete(SimServer.start(self._cfg, self._recorder))
        except BaseException as err:  # handed to the starting thread
            self._error = err
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(self.server.stop())
            loop.close()

    def start(self, timeout: float = 10.0) -> ThreadedSim:
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError("simulator thread did not start in time")
        if self._error is not None:
            raise self._error
        return self

    @property
    def started(self) -> SimServer:
        assert self.server is not None, "start() first"
        return self.server

    @property
    def url(self) -> str:
        return self.started.url

    @property
    def port(self) -> int:
        return self.started.port

    @property
    def app(self) -> SimApp:
        return self.started.app

    def stop(self, timeout: float = 10.0) -> None:
        if self._thread.is_alive() and self.loop is not None and not self.loop.is_closed():
            with contextlib.suppress(RuntimeError):  # loop already closed between the check and the call
                self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout)

    def __enter__(self) -> ThreadedSim:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def run_in_thread(cfg: SimConfig, recorder: Recorder | None = None) -> ThreadedSim:
    """Start one replica in a background thread; returns once it listens (`.url`, `.stop()`)."""
    return ThreadedSim(cfg, recorder).start()


def replica_configs(cfg: SimConfig, replicas: int) -> list[SimConfig]:
    """N replicas on consecutive ports (or all on kernel-chosen ports with port 0); distinct seeds."""
    out = []
    for i in range(replicas):
        port = 0 if cfg.port == 0 else cfg.port + i
        seed = None if cfg.seed is None else cfg.seed + i
        out.append(replace(cfg, port=port, seed=seed))
    return out


async def serve(cfgs: list[SimConfig], *, duration: float | None = None,
                on_ready: Callable[[list[SimServer]], None] | None = None, handle_signals: bool = True) -> int:
    """Run replicas until `duration` elapses or SIGINT/SIGTERM; returns the signal number (0 if none)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    got: list[int] = []

    def on_signal(signum: int) -> None:
        got.append(signum)
        stop.set()

    previous = {}
    if handle_signals:
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.getsignal(sig)
            loop.add_signal_handler(sig, on_signal, sig)
    recorder = Recorder(cfgs[0].record) if cfgs and cfgs[0].record else None
    servers: list[SimServer] = []
    try:
        for cfg in cfgs:
            servers.append(await SimServer.start(replace(cfg, record=None), recorder))
        if on_ready is not None:
            on_ready(servers)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), duration)
    finally:
        for server in servers:
            await server.stop()
        if recorder is not None:
            recorder.flush()
        for sig, handler in previous.items():
            loop.remove_signal_handler(sig)
            signal.signal(sig, handler)
    return got[0] if got else 0
