"""The local scheduling gateway: an OpenAI-compatible HTTP/1.1 reverse proxy that picks a replica per request with
the EPP's semantics (llmd.gateway.scheduling) and streams the answer through without buffering.

Requests are parsed by the simulator's server protocol (one `handle()` per request, keep-alive, pipelining). The
response is forwarded as each read arrives; only its framing (Content-Length or chunked) is tracked, so the upstream
connection can go back to the per-replica idle pool when the body ends. Admin routes under /llmd/ serve the state
(GET /llmd/gateway) and swap the scheduler (PUT /llmd/scheduler), which is how `scheduler apply` and
`bench compare` change the profile of a running local stack; a new scheduler starts with an empty prefix index,
as a rolled EPP does.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import time
from collections import deque
from typing import Any
from urllib.parse import urlsplit

import orjson

from llmd.errors import ConfigError
from llmd.gateway.scheduling import Decision, Endpoint, NoEndpoints, Request, Scheduler
from llmd.gateway.scrape import Scraper
from llmd.http1 import BodyFramer, FramingError
from llmd.sim.protocol import HttpConnection

GENERATE = (b"/v1/chat/completions", b"/v1/completions")
HOP_BY_HOP = frozenset({b"connection", b"keep-alive", b"transfer-encoding", b"host", b"content-length", b"te",
                        b"upgrade", b"proxy-connection", b"expect"})
JSON_CT = b"application/json"
TEXT_CT = b"text/plain; charset=utf-8"
CONNECT_TIMEOUT_S = 5.0
IDLE_PER_ENDPOINT = 256
MAX_HEAD = 64 * 1024  # an upstream's status line and headers; beyond it the replica is not speaking HTTP/1.1
# Envoy's texts, so the load generator classifies a dead replica the way it would behind the real gateway.
CONNECT_FAILURE = b"upstream connect error or disconnect/reset before headers. reset reason: connection failure"
RESET_BEFORE_HEADERS = (b"upstream connect error or disconnect/reset before headers. "
                        b"reset reason: connection termination")

_HEAD, _BODY, _DONE = range(3)  # an exchange's life: the upstream's headers, its body, ended


def config_digest(config: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:12]


def user_input(path: bytes, req: dict[str, Any]) -> bytes:
    """The bytes the prefix scorer hashes: the completions prompt, or the JSON of the chat messages."""
    if path == GENERATE[0]:
        return orjson.dumps(req.get("messages"))
    prompt = req.get("prompt")
    if isinstance(prompt, str):
        return prompt.encode()
    if isinstance(prompt, list) and all(isinstance(p, str) for p in prompt):
        return "".join(prompt).encode()
    return orjson.dumps(prompt)


def prompt_text(path: bytes, req: dict[str, Any]) -> str:
    """The prompt as the replicas tokenise it (the simulator's chat flattening), for token-exact block keys."""
    from llmd.sim.tokenizer import flatten_chat

    if path == GENERATE[0]:
        messages = req.get("messages")
        return flatten_chat(messages) if isinstance(messages, list) else ""
    prompt = req.get("prompt")
    if isinstance(prompt, list) and all(isinstance(p, str) for p in prompt):
        return "".join(prompt)
    return prompt if isinstance(prompt, str) else ""


class Upstream(asyncio.Protocol):
    """One keep-alive connection to a replica; carries one Exchange at a time."""

    def __init__(self, ep: Endpoint) -> None:
        self.ep = ep
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.exchange: Exchange | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def connection_lost(self, exc) -> None:
        self.closed = True
        if self.exchange is not None:
            self.exchange.upstream_lost()

    def data_received(self, data: bytes) -> None:
        if self.exchange is None:  # bytes outside an exchange: never reuse this connection
            self.abort()
            return
        self.exchange.feed(data)

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()


class ClientConnection(HttpConnection):
    """The server side: tells the exchange in progress when the client goes away."""

    exchange: Exchange | None = None

    def connection_lost(self, exc) -> None:
        super().connection_lost(exc)
        if self.exchange is not None:
            self.exchange.client_lost()


class Exchange:
    """One proxied request: send, forward every read to the client, track framing, finish or fail once."""

    __slots__ = ("client", "connect_task", "decision", "ep", "framer", "gw", "head", "keep_alive", "sent_any",
                 "state", "upstream")

    def __init__(self, gw: Gateway, client: ClientConnection, ep: Endpoint, decision: Decision | None,
                 keep_alive: bool) -> None:
        self.gw = gw
        self.client = client
        self.ep = ep
        self.decision = decision
        self.keep_alive = keep_alive
        self.upstream: Upstream | None = None
        self.connect_task: asyncio.Task | None = None
        self.state = _HEAD
        self.head = b""  # the upstream's status line and headers so far
        self.framer = BodyFramer()
        self.sent_any = False
        ep_inflight = gw.inflight
        ep_inflight[ep.name] = ep_inflight.get(ep.name, 0) + 1
        client.exchange = self

    # sending ----------------------------------------------------------------------------------------------------
    def send(self, up: Upstream, data: bytes) -> None:
        self.upstream = up
        up.exchange = self
        assert up.transport is not None
        up.transport.write(data)

    async def connect_and_send(self, data: bytes) -> None:
        loop = asyncio.get_running_loop()
        host, port = self.gw.addresses[self.ep.name]
        try:
            _, up = await asyncio.wait_for(loop.create_connection(lambda: Upstream(self.ep), host, port),
                                           CONNECT_TIMEOUT_S)
        except (OSError, asyncio.TimeoutError):
            # Passive health check: out of the pool until its /metrics answers again, so a burst of fast 503s does
            # not keep landing on a dead replica during the rest of the scrape interval.
            self.ep.ready = False
            self.fail("connect_error", 503, CONNECT_FAILURE)
            return
        if self.state == _DONE:  # the client left while we connected
            up.abort()
            return
        self.send(up, data)

    # receiving --------------------------------------------------------------------------------------------------
    def feed(self, data: bytes) -> None:
        if self.state == _HEAD:
            buf = self.head + data
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > MAX_HEAD:
                    return self._bad_framing(FramingError(f"response headers longer than {MAX_HEAD} bytes"))
                self.head = buf
                return
            self.head = b""
            head, rest = buf[:end], buf[end + 4:]
            try:
                self._framing(head)
            except FramingError as exc:
                return self._bad_framing(exc)
            first = head.find(b"\r\n")
            status_line, headers = (head, b"") if first < 0 else (head[:first], head[first:])
            extra = b"\r\nx-llmd-endpoint: " + self.ep.name.encode()
            if not self.keep_alive:
                extra += b"\r\nconnection: close"
            self.sent_any = True
            self.client.write(status_line + extra + headers + b"\r\n\r\n" + rest)
            data = rest
        else:
            self.client.write(data)
        try:
            done = self.framer.feed(data)
        except FramingError as exc:
            return self._bad_framing(exc)
        if done:
            self.finish()

    def _bad_framing(self, exc: FramingError) -> None:
        """The replica broke HTTP/1.1 framing: its connection cannot be reused, and the client's answer cannot be
        delimited once bytes of it went out (fail() then cuts the client connection, as Envoy resets the stream)."""
        up = self.upstream
        self.fail("upstream_framing", 502, f"upstream sent a malformed response: {exc}".encode())
        if up is not None:
            up.exchange = None
            up.abort()

    def _framing(self, head: bytes) -> None:
        length: int | None = None
        chunked = False
        upstream_close = False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                value = value.strip()
                if not value.isdigit():
                    raise FramingError(f"invalid Content-Length {value[:20]!r}")
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
            elif name == b"connection" and value.strip().lower() == b"close":
                upstream_close = True
        if upstream_close and self.upstream is not None:
            self.upstream.exchange = self  # keep it bound, but never return it to the pool
            self.upstream.closed = True
        self.framer = BodyFramer(chunked=chunked, length=length)
        self.state = _BODY

    # endings ----------------------------------------------------------------------------------------------------
    def _release(self) -> None:
        gw, ep = self.gw, self.ep
        gw.inflight[ep.name] -= 1
        if self.decision is not None:
            gw.scheduler.complete(ep)
        self.client.exchange = None

    def finish(self) -> None:
        self.state = _DONE
        up = self.upstream
        self._release()
        if up is not None:
            up.exchange = None
            if not up.closed:
                self.gw.give_back(up)
        self.gw.requests_done += 1
        self.client.done(self.keep_alive)

    def fail(self, kind: str, status: int, body: bytes) -> None:
        """Before any byte reached the client: answer `status`; after: cut the client connection."""
        if self.state == _DONE:
            return
        self.state = _DONE
        self._release()
        self.gw.count_failure(kind, self.ep.name)
        if self.sent_any:
            self.client.close()
        else:
            self.client.respond(status, body, TEXT_CT, self.keep_alive)

    def upstream_lost(self) -> None:
        if self.state == _BODY and self.framer.until_close:
            self.finish()
            self.client.close()
            return
        if not self.sent_any:
            self.ep.ready = False  # passive health check, as for a connect failure
        self.fail("upstream_reset" if self.sent_any else "reset_before_headers", 503, RESET_BEFORE_HEADERS)

    def client_lost(self) -> None:
        if self.state == _DONE:
            return
        self.state = _DONE
        self._release()
        if self.connect_task is not None:
            self.connect_task.cancel()
        if self.upstream is not None:
            self.upstream.exchange = None
            self.upstream.abort()  # the replica sees the client go away and frees its slot


class Gateway:
    """The app behind ClientConnection: routes, the endpoint pool, the scheduler and its scrapers."""

    def __init__(self, replicas: list[str], config: dict[str, Any], *, profile: str = "custom",
                 scrape_interval: float = 0.05, seed: int | None = None) -> None:
        self.endpoints: list[Endpoint] = []
        self.addresses: dict[str, tuple[str, int]] = {}
        for url in replicas:
            parts = urlsplit(url)
            if not parts.hostname or not parts.port:
                raise ConfigError(f"replica URL {url!r} needs a host and a port", hint="e.g. http://127.0.0.1:8001")
            name = f"{parts.hostname}:{parts.port}"
            self.endpoints.append(Endpoint(name=name, url=url.rstrip("/")))
            self.addresses[name] = (parts.hostname, parts.port)
        self.rng = random.Random(seed)
        self.scrape_interval = scrape_interval
        self.scheduler = Scheduler(config, rng=self.rng)
        self.profile = profile
        self.digest = config_digest(config)
        self.idle: dict[str, list[Upstream]] = {ep.name: [] for ep in self.endpoints}
        self.inflight: dict[str, int] = {}
        self.failures: dict[str, int] = {}
        self.failures_by_endpoint: dict[str, int] = {}
        self.requests = 0
        self.requests_done = 0
        self.schedule_s: deque[float] = deque(maxlen=4096)  # the latest scheduling cycles (as the EPP's histogram)
        self.schedule_failures = 0
        self.scheduled = 0  # successful scheduling cycles since start (the EPP's attempts_total{status=success})
        self.scrapers = [Scraper(ep, *self.addresses[ep.name], scrape_interval) for ep in self.endpoints]
        self._wire_kv_events()
        self.tasks: set[asyncio.Task] = set()
        self.started = time.time()
        self.scheduler_since = self.started  # when the current scheduler took effect (a swap resets it)
        self._rr = 0

    async def start_scraping(self) -> None:
        """One scrape of every replica first (so the pool is known before the first request), then the tickers."""
        await asyncio.gather(*(s.scrape_once() for s in self.scrapers))
        loop = asyncio.get_running_loop()
        for s in self.scrapers:
            self._spawn(loop, s.run())

    async def close(self) -> None:
        """Stop the scrapers and pending connects, and close idle upstream connections."""
        tasks = list(self.tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for idle in self.idle.values():
            for up in idle:
                up.abort()
            idle.clear()

    def _spawn(self, loop: asyncio.AbstractEventLoop, coro) -> asyncio.Task:
        task = loop.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    def count_failure(self, kind: str, endpoint: str | None) -> None:
        self.failures[kind] = self.failures.get(kind, 0) + 1
        if endpoint:
            self.failures_by_endpoint[endpoint] = self.failures_by_endpoint.get(endpoint, 0) + 1

    def give_back(self, up: Upstream) -> None:
        idle = self.idle[up.ep.name]
        if len(idle) < IDLE_PER_ENDPOINT:
            idle.append(up)
        else:
            up.abort()

    def set_scheduler(self, config: dict[str, Any], profile: str) -> None:
        self.scheduler = Scheduler(config, rng=self.rng)  # raises ConfigError: the old one stays
        self.profile = profile
        self.digest = config_digest(config)
        self.scheduler_since = time.time()
        self.schedule_s.clear()  # the scheduling-time statistics are the new scheduler's
        self.schedule_failures = 0
        self._wire_kv_events()

    def _wire_kv_events(self) -> None:
        """Feed each replica's KV events to the scheduler's precise scorers (a new one starts from a snapshot)."""
        sinks = self.scheduler.kv_event_sinks

        def feed(endpoint: str, doc: dict[str, Any]) -> None:
            for s in sinks:
                s.kv_events(endpoint, doc)

        self.needs_text = bool(sinks)
        for s in self.scrapers:
            s.kv_sink = feed if sinks else None
            s.kv_seq = -1

    # routing ----------------------------------------------------------------------------------------------------
    def handle(self, conn: ClientConnection, method: bytes, path: bytes, headers: dict, body: bytes,  # noqa: PLR0917
               keep_alive: bool, recv_ns: int) -> None:
        q = path.find(b"?")
        route = path if q < 0 else path[:q]
        if route in GENERATE:
            if method != b"POST":
                return self._error(conn, keep_alive, 405, f"use POST for {route.decode()}")
            return self._generate(conn, method, path, headers, body, keep_alive)
        if route.startswith(b"/llmd/"):
            return self._admin(conn, method, route, body, keep_alive)
        if method != b"GET":
            return self._error(conn, keep_alive, 405, "use GET")
        if route == b"/health":
            ok = any(e.ready for e in self.endpoints)
            return conn.respond(200 if ok else 503, b"" if ok else b"no healthy upstream", TEXT_CT, keep_alive)
        ready = [e for e in self.endpoints if e.ready]
        if not ready:
            return conn.respond(503, b"no healthy upstream", TEXT_CT, keep_alive)
        self._rr += 1
        self._forward(conn, ready[self._rr % len(ready)], None, method, path, headers, body, keep_alive)

    def _error(self, conn: HttpConnection, keep_alive: bool, status: int, message: str) -> None:
        err = {"error": {"message": message, "type": "BadRequestError" if status < 500 else "ServiceUnavailable",
                         "code": status}, "object": "error"}
        conn.respond(status, orjson.dumps(err), JSON_CT, keep_alive)

    def _generate(self, conn, method, path, headers, body, keep_alive) -> None:  # noqa: PLR0917 (hot path)
        self.requests += 1
        try:
            req = orjson.loads(body)
        except orjson.JSONDecodeError:
            self.count_failure("bad_request", None)
            return self._error(conn, keep_alive, 400, "request body is not valid JSON")
        model = req.get("model") if isinstance(req, dict) else None
        if not isinstance(model, str) or not model:
            self.count_failure("bad_request", None)
            return self._error(conn, keep_alive, 400, "`model` is required in the request body")
        salt = req.get("cache_salt")
        request = Request(model, user_input(path, req), salt if isinstance(salt, str) else "",
                          prompt_text(path, req) if self.needs_text else None)
        t0 = time.perf_counter()
        try:
            decision = self.scheduler.schedule(request, self.endpoints)
        except NoEndpoints as err:
            self.schedule_failures += 1
            self.count_failure("no_endpoint", None)
            return self._error(conn, keep_alive, err.status, str(err))
        self.schedule_s.append(time.perf_counter() - t0)
        self.scheduled += 1
        self._forward(conn, decision.targets[0], decision, method, path, headers, body, keep_alive)

    def _forward(self, conn, ep, decision, method, path, headers, body, keep_alive) -> None:  # noqa: PLR0917
        head = [method + b" " + path + b" HTTP/1.1", b"host: " + ep.name.encode(), b"content-length: %d" % len(body)]
        head += [k + b": " + v for k, v in headers.items() if k not in HOP_BY_HOP]
        data = b"\r\n".join(head) + b"\r\n\r\n" + body
        ex = Exchange(self, conn, ep, decision, keep_alive)
        idle = self.idle[ep.name]
        while idle:
            up = idle.pop()
            if not up.closed:
                ex.send(up, data)
                return
        ex.connect_task = self._spawn(asyncio.get_running_loop(), ex.connect_and_send(data))

    # admin ------------------------------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        now = time.time()
        return {
            "pid": os.getpid(), "profile": self.profile, "digest": self.digest,
            "scheduler_since": round(self.scheduler_since, 6),
            "scheduler": self.scheduler.describe(), "config": self.scheduler.config,
            "scrape_interval_s": self.scrape_interval,
            "requests": self.requests, "completed": self.requests_done, "failures": self.failures,
            "scheduling": self._scheduling_stats(),
            "uptime_s": round(now - self.started, 1),
            "endpoints": [{"name": e.name, "url": e.url, "ready": e.ready, "waiting": e.waiting, "running": e.running,
                           "kv_usage": round(e.kv_usage, 4), "picks": e.picks,
                           "inflight": self.inflight.get(e.name, 0),
                           "failures": self.failures_by_endpoint.get(e.name, 0),
                           "scrape_failures": s.failures,
                           "scrape_age_ms": round((now - e.scraped_at) * 1000) if e.scraped_at else None}
                          for e, s in zip(self.endpoints, self.scrapers, strict=True)],
        }

    def _scheduling_stats(self) -> dict[str, Any]:
        samples = sorted(self.schedule_s)
        if not samples:
            return {"recent": 0, "failures": self.schedule_failures, "scheduled": self.scheduled, "mean_ms": None,
                    "p99_ms": None}
        return {"recent": len(samples), "failures": self.schedule_failures, "scheduled": self.scheduled,
                "mean_ms": round(sum(samples) / len(samples) * 1000, 4),
                "p99_ms": round(samples[min(len(samples) - 1, int(len(samples) * 0.99))] * 1000, 4)}

    def _admin(self, conn, method, route, body, keep_alive) -> None:
        if route == b"/llmd/gateway" and method == b"GET":
            return conn.respond(200, orjson.dumps(self.state()), JSON_CT, keep_alive)
        if route == b"/llmd/scheduler" and method == b"PUT":
            try:
                doc = orjson.loads(body)
                self.set_scheduler(doc["config"], str(doc.get("profile") or "custom"))
            except (orjson.JSONDecodeError, KeyError, TypeError):
                return self._error(conn, keep_alive, 400, 'body must be {"profile": NAME, "config": {...}}')
            except ConfigError as err:
                return self._error(conn, keep_alive, 400, err.message + (f" ({err.hint})" if err.hint else ""))
            return conn.respond(200, orjson.dumps(self.state()), JSON_CT, keep_alive)
        return self._error(conn, keep_alive, 404, f"no admin route {method.decode()} {route.decode()}")


async def start(gw: Gateway, host: str = "127.0.0.1", port: int = 0) -> asyncio.base_events.Server:
    loop = asyncio.get_running_loop()
    conns: set = set()
    await gw.start_scraping()
    try:
        return await loop.create_server(lambda: ClientConnection(gw, conns), host, port, backlog=4096,
                                        reuse_address=True)
    except OSError as err:
        raise ConfigError(f"gateway cannot listen on {host}:{port}: {err.strerror or err}",
                          hint="pick another port, or 0 to let the kernel choose") from None
