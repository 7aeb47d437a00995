"""The smoke test's HTTP exchange and its retries: one request with explicit timeouts and an overall deadline
(rule 10), retried only while transient (rule 11: RETRY_STATUSES and connection errors, a 500 once, never after a
stream started), Retry-After honoured up to a cap."""
# The IDs cited here (rule N, F##) are defined in docs/behaviours.md.

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from llmd.ops.endpoint import Endpoint
from llmd.redact import redact
from llmd.retry import RetryPolicy

RETRY_STATUSES = frozenset({408, 425, 429, 502, 503, 504})
RETRY_AFTER_CAP_S = 10.0
BODY_CAP = 256 * 1024  # bytes of an error/non-stream body we keep
EXCERPT = 200


# ---- one HTTP exchange ----------------------------------------------------------------------------


class _Transport(Exception):
    """No HTTP response at all (connect refused/reset, timeout before headers)."""

    def __init__(self, kind: str, message: str, retryable: bool) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.retryable = retryable


@dataclass
class _Reply:
    status: int
    headers: dict[str, str]
    body: bytes = b""  # non-stream body, or the head of an unexpected stream body
    outcome: Any = None  # llmd.sse.StreamOutcome for a 200 event stream
    elapsed_s: float = 0.0

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")

    def excerpt(self) -> str:
        return redact(self.body[:EXCERPT].decode("utf-8", errors="replace"))


def _timeouts(remaining: float, read: float):
    import httpx

    r = max(0.05, remaining)
    return httpx.Timeout(connect=min(5.0, r), read=min(read, r), write=min(10.0, r), pool=min(5.0, r))


class SmokeClient:
    """httpx with explicit timeouts and an overall deadline per call; reads the URL from the endpoint
    each time (a restarted port-forward has a new local port)."""

    def __init__(self, endpoint: Endpoint, *, request_timeout: float = 60.0, read_timeout: float = 30.0) -> None:
        import httpx

        self.endpoint = endpoint
        self.request_timeout = request_timeout
        self.read_timeout = read_timeout
        self.client = httpx.Client(trust_env=False, follow_redirects=False)
        self.headers = {"accept": "application/json", **endpoint.headers}

    def close(self) -> None:
        self.client.close()

    def exchange(self, method: str, path: str, body: dict | None = None, *, stream: bool = False) -> _Reply:
        import httpx

        from llmd.sse import SSEDecoder, StreamValidator

        started = time.monotonic()
        deadline = started + self.request_timeout
        url = self.endpoint.url.rstrip("/") + path
        headers = dict(self.headers)
        if stream:
            headers["accept"] = "text/event-stream"
        got_headers = False
        try:
            with self.client.stream(method, url, json=body, headers=headers,
                                    timeout=_timeouts(deadline - time.monotonic(), self.read_timeout)) as r:
                got_headers = True
                reply = _Reply(r.status_code, {k.lower(): v for k, v in r.headers.items()})
                is_sse = "text/event-stream" in reply.content_type
                if not (stream and r.status_code == 200 and is_sse):
                    reply.body = _read_capped(r, deadline)
                    reply.elapsed_s = time.monotonic() - started
                    return reply
                decoder, validator = SSEDecoder(), StreamValidator()
                complete = False
                try:
                    for chunk in r.iter_bytes():
                        for payload in decoder.feed(chunk):
                            validator.on_payload(payload)
                        if time.monotonic() > deadline:
                            validator.fail("timeout", f"stream exceeded the {self.request_timeout:g}s deadline")
                            break
                    else:
                        complete = True
                        for payload in decoder.flush():
                            validator.on_payload(payload)
                except httpx.ReadTimeout:
                    validator.fail("stalled", f"no bytes for {self.read_timeout:g}s in the middle of the stream")
                except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
                    validator.fail("truncated", f"connection cut mid-stream ({type(exc).__name__}: {exc})")
                validator.check_decoder(decoder)
                reply.outcome = validator.finish(complete)
                reply.elapsed_s = time.monotonic() - started
                return reply
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise _Transport("connect_error", f"cannot connect to {url}: {_why(exc)}", True) from None
        except httpx.TimeoutException as exc:
            if got_headers:
                raise _Transport("timeout", f"response body from {url} timed out ({type(exc).__name__})",
                                 False) from None
            raise _Transport("timeout", f"no response from {url} within {self.read_timeout:g}s", False) from None
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
            # Closed before any response bytes: the server (or tunnel) dropped us; safe to retry.
            raise _Transport("connect_error", f"connection to {url} dropped: {_why(exc)}", not got_headers) from None


def _why(exc: Exception) -> str:
    return str(exc) or type(exc).__name__


def _read_capped(r, deadline: float) -> bytes:
    """The body, up to BODY_CAP bytes; a body still arriving at the deadline is a timeout, not a short answer."""
    import httpx

    buf = bytearray()
    for chunk in r.iter_bytes():
        buf += chunk
        if len(buf) >= BODY_CAP:
            break
        if time.monotonic() > deadline:
            raise httpx.ReadTimeout("the response body was still arriving at the request deadline")
    return bytes(buf[:BODY_CAP])


# ---- retries --------------------------------------------------------------------------------------


def retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP-date), capped; None if absent/invalid."""
    if not value:
        return None
    value = value.strip()
    try:
        secs = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        secs = when.timestamp() - time.time()
    return max(0.0, min(RETRY_AFTER_CAP_S, secs))


def send_with_retry(call: Callable[[], _Reply], policy: RetryPolicy) -> tuple[_Reply | _Transport, int, list[str]]:
    """Run `call` until a final answer. Returns (reply or transport error, attempts, notes on retries)."""
    started = time.monotonic()
    attempt, five_hundreds = 0, 0
    notes: list[str] = []
    while True:
        attempt += 1
        try:
            result: _Reply | _Transport = call()
        except _Transport as exc:
            result = exc
        if isinstance(result, _Transport):
            retryable, label, wait = result.retryable, result.kind, None
        else:
            label, wait = f"HTTP {result.status}", retry_after(result.headers.get("retry-after"))
            retryable = result.status in RETRY_STATUSES
            if result.status == 500 and five_hundreds == 0:
                five_hundreds, retryable = 1, True
        if not retryable or attempt >= policy.max_attempts:
            return result, attempt, notes
        delay = wait if wait is not None else policy.delay(attempt)
        if time.monotonic() - started + delay > policy.window_s:
            return result, attempt, notes
        notes.append(f"{label}, retried after {delay:.2f}s" + (" (Retry-After)" if wait is not None else ""))
        policy.sleep(delay)
