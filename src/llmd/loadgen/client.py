"""A minimal streaming HTTP/1.1 client on asyncio.Protocol, built for measuring, not for general use.

Why not httpx/aiohttp here (measured by bench/perf_capacity.py and bench/perf_accuracy.py): timestamps are taken
in `data_received`, the moment bytes leave the kernel, with no parser or task hop in between; there is no pool scan
per request (encode/httpx#3215), and chunked + SSE decoding run inline on the bytes. httpx stays the client
everywhere else in llmd.

One `Exchange` at a time per connection (HTTP/1.1 keep-alive, no pipelining). Every exchange has a connect
deadline, a per-read stall deadline and a total deadline (rule 10) and ends in exactly one `Result`.
"""
# The IDs cited here (rule N, F##) are defined in docs/behaviours.md.

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from time import perf_counter_ns
from urllib.parse import urlsplit

from llmd.http1 import BodyFramer, FramingError
from llmd.sse import SSEDecoder, StreamValidator

_MAX_ERROR_BODY = 2048
_MAX_HEADER = 64 * 1024


@dataclass(slots=True)
class Result:
    """What one request produced; times are perf_counter_ns (CLOCK_MONOTONIC)."""

    status: int = 0
    ok: bool = False
    failure: str | None = None
    error: str | None = None
    sent_ns: int = 0  # the request was handed to the transport (reached the wire)
    first_ns: int = 0  # first content-bearing event arrived
    last_ns: int = 0  # last content-bearing event arrived
    end_ns: int = 0  # the exchange ended (body complete or failure)
    content_events: int = 0
    event_ns: list[int] = field(default_factory=list)  # arrival time of every content-bearing event
    usage: dict | None = None
    finish_reason: str | None = None
    retry_after: str | None = None
    bytes_in: int = 0


class Target:
    """Where requests go: scheme/host/port/path parsed once from a base URL."""

    def __init__(self, url: str, path: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self.url = url
        self.host = parts.hostname
        self.tls = parts.scheme == "https"
        self.port = parts.port or (443 if self.tls else 80)
        base = parts.path.rstrip("/")
        self.path = base + path if not base.endswith(path) else base
        if base.endswith("/v1") and path.startswith("/v1/"):
            self.path = base + path[3:]
        self.host_header = parts.netloc.rsplit("@", 1)[-1]


class Timeouts:
    __slots__ = ("connect_s", "read_s", "total_s")

    def __init__(self, connect_s: float = 10.0, read_s: float = 30.0, total_s: float = 300.0) -> None:
        self.connect_s, self.read_s, self.total_s = connect_s, read_s, total_s


class _Conn(asyncio.Protocol):
    """One keep-alive connection; parses status and headers, frames the body (llmd.http1) and decodes SSE inline."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport = None  # type: ignore[assignment]  # set by connection_made
        self.closed = False
        self.used = 0
        self._reset()

    def _reset(self) -> None:
        self.fut: asyncio.Future | None = None
        self.res: Result | None = None
        self.head = b""  # the status line and headers so far
        self.framer: BodyFramer | None = None  # set once the headers are in: where the body ends
        self.keep_alive = True
        self.sse = False
        self.decoder: SSEDecoder | None = None
        self.validator: StreamValidator | None = None
        self.err_body = b""
        self.last_rx = 0
        self.timers: list[asyncio.TimerHandle] = []

    # -- asyncio callbacks ---------------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self.transport = transport

    def connection_lost(self, exc) -> None:
        self.closed = True
        if self.res is not None:
            if self.framer is not None and self.framer.until_close:
                self._complete(perf_counter_ns())  # body delimited by the close
            elif self.res.bytes_in == 0:
                self._fail("connect_error" if self.used <= 1 else "stale", "connection closed before any response byte")
            else:
                self._fail("truncated", "connection closed mid-response", body_complete=False)

    def data_received(self, data: bytes) -> None:
        now = perf_counter_ns()
        res = self.res
        if res is None:  # bytes outside an exchange: protocol violation; never reuse this connection
            self.closed = True
            self.transport.close()
            return
        self.last_rx = now
        res.bytes_in += len(data)
        buf = data
        if self.framer is None:  # still in the status line and headers
            buf = self.head + data if self.head else data
            self.head = b""
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > _MAX_HEADER:
                    self._fail("malformed_stream", "response headers too large")
                else:
                    self.head = buf
                return
            if not self._headers(buf[:end]):
                return
            buf = buf[end + 4:]
        framer = self.framer
        assert framer is not None  # set by _headers
        body: list[bytes] = []
        try:
            done = framer.feed(buf, body)
        except FramingError as exc:
            self._feed(body, now)
            self._fail("malformed_stream", str(exc))
            return
        if body:
            self._feed(body, now)
        if done:
            self._complete(now)

    # -- parsing -------------------------------------------------------------------------------------------------
    def _headers(self, head: bytes) -> bool:
        res = self.res
        assert res is not None  # data_received returns early outside an exchange
        lines = head.split(b"\r\n")
        status_line = lines[0]
        try:
            version, code = status_line.split(b" ", 2)[:2]
            res.status = int(code)
        except ValueError:
            self._fail("malformed_stream", f"not an HTTP response: {status_line[:80]!r}")
            return False
        chunked = False
        length = -1
        ctype = b""
        conn = b""
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            value = value.strip()
            if name == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif name == b"content-length":
                length = int(value) if value.isdigit() else -2
                if length < 0:
                    self._fail("malformed_stream", "invalid Content-Length")
                    return False
            elif name == b"content-type":
                ctype = value.lower()
            elif name == b"connection":
                conn = value.lower()
            elif name == b"retry-after":
                res.retry_after = value.decode("latin-1")
        self.keep_alive = version == b"HTTP/1.1" and b"close" not in conn
        if res.status in (204, 304):  # never a body, whatever the headers say
            chunked, length = False, 0
        self.framer = framer = BodyFramer(chunked=chunked, length=length if length >= 0 else None)
        if framer.until_close:
            self.keep_alive = False
        if res.status == 200:
            self.sse = b"text/event-stream" in ctype
            self.decoder = SSEDecoder()
            self.validator = StreamValidator(keep_content=False)
            if not self.sse:
                self.validator.fail("malformed_stream",
                                    f"expected text/event-stream, got {ctype.decode('latin-1') or 'no content-type'}")
        if framer.done:  # Content-Length: 0 (or a 204/304)
            self._complete(perf_counter_ns())
            return False
        return True

    def _feed(self, body: list[bytes], now: int) -> None:
        res = self.res
        if res is None:
            return
        data = body[0] if len(body) == 1 else b"".join(body)
        if not data:
            return
        val = self.validator
        if val is None:  # non-200: keep the start of the body for the error message
            if len(self.err_body) < _MAX_ERROR_BODY:
                self.err_body += data[:_MAX_ERROR_BODY - len(self.err_body)]
            return
        if not self.sse:  # a 200 that is no event stream (failed at its headers): keep its start for the error
            if len(self.err_body) < 200:
                self.err_body += data[:200 - len(self.err_body)]
            return
        if val.failed:
            return
        decoder = self.decoder
        assert decoder is not None  # made with the validator
        for payload in decoder.feed(data):
            if val.on_payload(payload):
                if not res.first_ns:
                    res.first_ns = now
                res.last_ns = now
                res.event_ns.append(now)
        if decoder.invalid_count:
            val.check_decoder(decoder)

    # -- endings -------------------------------------------------------------------------------------------------
    def _complete(self, now: int) -> None:
        res = self.res
        if res is None:
            return
        res.end_ns = now
        val = self.validator
        if val is not None:
            assert self.decoder is not None  # made with the validator
            for payload in self.decoder.flush():
                if val.on_payload(payload) and not res.first_ns:
                    res.first_ns = res.last_ns = now
            out = val.finish(body_complete=True)
            res.ok, res.failure, res.error = out.ok, out.failure, out.error
            if out.error and self.err_body and not self.sse:
                res.error = f"{out.error}; body starts {self.err_body[:200]!r}"
            res.usage, res.finish_reason, res.content_events = out.usage, out.finish_reason, out.content_events
        else:
            res.ok = False
            res.failure = "http_5xx" if res.status >= 500 else "http_4xx"
            res.error = f"HTTP {res.status}: {self.err_body[:300].decode('utf-8', 'replace').strip()}"
        self._finish(reuse=self.keep_alive)

    def _fail(self, failure: str, error: str, *, body_complete: bool | None = None) -> None:
        res = self.res
        if res is None:
            return
        res.end_ns = perf_counter_ns()
        res.ok = False
        if body_complete is False and self.validator is not None and self.sse:
            out = self.validator.finish(body_complete=False)  # keeps an earlier, more precise failure
            res.failure, res.error = out.failure, out.error
            res.usage, res.finish_reason, res.content_events = out.usage, out.finish_reason, out.content_events
            if out.ok:  # [DONE] and finish_reason arrived; only the chunked terminator was lost
                res.ok, res.failure, res.error = True, None, None
        else:
            res.failure, res.error = failure, error
        self._finish(reuse=False)

    def _finish(self, *, reuse: bool) -> None:
        fut = self.fut
        for t in self.timers:
            t.cancel()
        res = self.res
        self._reset()
        if not reuse and not self.closed:
            self.closed = True
            self.transport.abort()
        if fut is not None and not fut.done():
            fut.set_result(res)

    # -- timers --------------------------------------------------------------------------------------------------
    def arm(self, read_s: float, total_s: float) -> None:
        loop = self.loop
        self.timers = [loop.call_later(total_s, self._on_total, total_s),
                       loop.call_later(read_s, self._on_stall, read_s)]

    def _on_total(self, total_s: float) -> None:
        if self.res is not None:
            self._fail("timeout", f"no complete response within the total deadline of {total_s:g} s")

    def _on_stall(self, read_s: float) -> None:
        if self.res is None:
            return
        idle = (perf_counter_ns() - self.last_rx) / 1e9
        if idle >= read_s * 0.999:
            # before the first token it is a (TTFT) timeout; after it, a stalled stream
            started = self.res.first_ns != 0
            what = "stream stalled" if started else ("no response" if self.res.bytes_in == 0 else "no first token")
            cls = "stalled" if started else "timeout"
            self._fail(cls, f"{what}: no bytes for {idle:.1f} s (read timeout {read_s:g} s)")
        else:
            self.timers.append(self.loop.call_later(read_s - idle, self._on_stall, read_s))


class Client:
    """A keep-alive pool of `_Conn`s to one target. `await client.request(...)` never raises for HTTP failures."""

    def __init__(self, target: Target, timeouts: Timeouts, *, extra_headers: Mapping[str, str] | None = None) -> None:
        self.target = target
        self.timeouts = timeouts
        self.idle: list[_Conn] = []
        self.opened = 0
        self._ssl = ssl.create_default_context() if target.tls else None
        hdrs = "".join(f"{k}: {v}\r\n" for k, v in (extra_headers or {}).items())
        self._head = (f"POST {target.path} HTTP/1.1\r\nHost: {target.host_header}\r\n"
                      f"Content-Type: application/json\r\nAccept: text/event-stream\r\n{hdrs}").encode("latin-1")

    async def _connect(self, loop) -> _Conn:
        t = self.target
        _, conn = await asyncio.wait_for(
            loop.create_connection(lambda: _Conn(loop), t.host, t.port, ssl=self._ssl), self.timeouts.connect_s)
        self.opened += 1
        return conn

    async def request(self, body: bytes, request_id: str, *, headers: bytes = b"") -> Result:
        """Send one POST and wait for its complete streamed answer. Timeouts and failures become Result fields."""
        loop = asyncio.get_running_loop()
        msg = b"".join((self._head, b"x-request-id: ", request_id.encode("latin-1"), b"\r\n", headers,
                        b"Content-Length: ", str(len(body)).encode(), b"\r\n\r\n", body))
        for attempt in (0, 1):
            conn = None
            while self.idle:
                c = self.idle.pop()
                if not c.closed:
                    conn = c
                    break
            if conn is None:
                t0 = perf_counter_ns()
                try:
                    conn = await self._connect(loop)
                except (OSError, asyncio.TimeoutError) as exc:
                    now = perf_counter_ns()
                    timed_out = isinstance(exc, asyncio.TimeoutError)
                    why = f"connect timeout after {self.timeouts.connect_s:g} s" if timed_out else str(exc)
                    return Result(failure="connect_error", error=f"cannot connect to {self.target.host}:"
                                  f"{self.target.port}: {why or type(exc).__name__}", sent_ns=t0, end_ns=now)
            res = Result()
            fut = loop.create_future()
            conn.res, conn.fut = res, fut
            conn.used += 1
            conn.arm(self.timeouts.read_s, self.timeouts.total_s)
            conn.last_rx = res.sent_ns = perf_counter_ns()
            conn.transport.write(msg)
            try:
                res = await fut
            except asyncio.CancelledError:
                conn.res = None  # abandon: the connection is closed, never reused
                for t in conn.timers:
                    t.cancel()
                if not conn.closed:
                    conn.closed = True
                    conn.transport.abort()
                raise
            if res.failure == "stale":  # a reused keep-alive connection the server had closed: not a server answer
                if attempt == 0:
                    continue
                res.failure = "connect_error"
            if not conn.closed:
                self.idle.append(conn)
            return res
        raise AssertionError("unreachable")

    def close(self) -> None:
        for c in self.idle:
            if not c.closed:
                c.closed = True
                c.transport.close()
        self.idle.clear()
