"""A small HTTP/1.1 server protocol: keep-alive, pipelined requests answered in order,
Content-Length request bodies; responses use Content-Length or chunked transfer (streams).

No framework on the hot path: one `data_received` parses the head with bytes.find/split and hands
(method, path, headers, body) to the app, which answers synchronously or from a task and then
calls `done()` so the next buffered request is parsed.
"""

from __future__ import annotations

import asyncio
import time
import traceback
from typing import Any

MAX_HEAD = 64 * 1024
MAX_BODY = 64 * 1024 * 1024

REASONS = {200: b"OK", 400: b"Bad Request", 404: b"Not Found", 405: b"Method Not Allowed",
           411: b"Length Required", 413: b"Payload Too Large", 429: b"Too Many Requests",
           431: b"Request Header Fields Too Large", 500: b"Internal Server Error", 501: b"Not Implemented",
           502: b"Bad Gateway", 503: b"Service Unavailable", 504: b"Gateway Timeout"}


def status_line(status: int) -> bytes:
    return b"HTTP/1.1 %d %s\r\n" % (status, REASONS.get(status, b"Status"))


def response(status: int, body: bytes, ctype: bytes, keep_alive: bool, extra: bytes = b"") -> bytes:
    """Bytes of a complete Content-Length response; `extra` holds more header lines."""
    return (status_line(status) + b"content-type: " + ctype + b"\r\ncontent-length: %d\r\n" % len(body) + extra
            + (b"" if keep_alive else b"connection: close\r\n") + b"\r\n" + body)


class HttpConnection(asyncio.Protocol):
    """One client connection. `app.handle(conn, method, path, headers, body, keep_alive, recv_ns)`."""

    def __init__(self, app: Any, conns: set) -> None:
        self.app = app
        self.conns = conns
        self.transport: asyncio.Transport = None  # type: ignore[assignment]  # set by connection_made
        self.buf = b""
        self.busy = False  # a request is being answered; later ones wait in buf
        self.parsing = False
        self.closed = False
        self.continued = False  # "100 Continue" already sent for the request being received
        self.task: asyncio.Task | None = None  # the task answering the current request, if any

    # asyncio callbacks -------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self.transport = transport
        self.conns.add(self)

    def connection_lost(self, exc) -> None:
        self.closed = True
        self.conns.discard(self)
        if self.task is not None and not self.task.done():
            self.task.cancel()  # the client went away: free the slot and KV blocks now

    def data_received(self, data: bytes) -> None:
        self.buf = self.buf + data if self.buf else data
        if not self.busy:
            self._parse()

    # answering ---------------------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        if not self.closed:
            self.transport.write(data)

    def close(self) -> None:
        """Close after flushing what was written (FIN, not RST)."""
        if not self.closed:
            self.closed = True
            self.transport.close()

    def done(self, keep_alive: bool) -> None:
        """The current response is complete."""
        self.task = None
        self.busy = False
        if not keep_alive:
            self.close()
        elif self.buf and not self.parsing and not self.closed:
            self._parse()

    def respond(self, status: int, body: bytes, ctype: bytes, keep_alive: bool, extra: bytes = b"") -> None:
        """A complete Content-Length response in one write, then `done()`."""
        self.write(response(status, body, ctype, keep_alive, extra))
        self.done(keep_alive)

    # parsing -----------------------------------------------------------------------------------
    def _parse(self) -> None:
        self.parsing = True
        try:
            while not self.busy and self.buf and not self.closed:
                buf = self.buf
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    if len(buf) > MAX_HEAD:
                        self._fail(431, b"request head too large")
                    return
                lines = buf[:end].split(b"\r\n")
                parts = lines[0].split(b" ")
                if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
                    self._fail(400, b"malformed request line")
                    return
                headers: dict[bytes, bytes] = {}
                for line in lines[1:]:
                    name, _, value = line.partition(b":")
                    headers[name.strip().lower()] = value.strip()
                if b"transfer-encoding" in headers:
                    self._fail(501, b"chunked request bodies are not supported; send Content-Length")
                    return
                try:
                    length = int(headers.get(b"content-length", b"0"))
                except ValueError:
                    self._fail(400, b"invalid Content-Length")
                    return
                if length > MAX_BODY or length < 0:
                    self._fail(413, b"request body too large")
                    return
                total = end + 4 + length
                if len(buf) < total:
                    if headers.get(b"expect", b"").lower() == b"100-continue" and not self.continued:
                        self.continued = True  # curl waits for this before sending a large body
                        self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                    return
                self.continued = False
                body = buf[end + 4:total]
                self.buf = buf[total:]
                conn_hdr = headers.get(b"connection", b"").lower()
                keep_alive = conn_hdr != b"close" if parts[2] == b"HTTP/1.1" else conn_hdr == b"keep-alive"
                self.busy = True
                try:
                    self.app.handle(self, parts[0], parts[1], headers, body, keep_alive, time.perf_counter_ns())
                except Exception:  # a sim bug must not kill the connection silently: answer 500 and log it
                    traceback.print_exc()
                    self._fail(500, b"internal simulator error")
                    return
        finally:
            self.parsing = False

    def _fail(self, status: int, message: bytes) -> None:
        self.busy = True
        self.buf = b""
        self.respond(status, message, b"text/plain", keep_alive=False)
