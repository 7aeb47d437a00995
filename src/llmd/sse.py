"""Server-sent events for OpenAI-style streams: an incremental decoder and a strict validator.

Pure (no I/O), shared by the smoke test and the perf load engine. The validator implements rule 12:
a stream succeeds only if every `data:` frame parses, no frame carries an `error`, a `finish_reason` arrives and
`[DONE]` arrives. vLLM reports errors *inside* a stream that already answered 200, so the HTTP status alone says
nothing about success.
"""
# The IDs cited here (rule N, F##) are defined in docs/behaviours.md.

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

try:  # about 3x faster per frame; the load engine parses every frame of every stream (rule 12)
    from orjson import loads as _loads
except ImportError:  # pragma: no cover - orjson is a declared dependency, this keeps the module importable
    from json import loads as _loads  # type: ignore[assignment]

FAILURE_CLASSES = (
    "http_4xx",
    "http_5xx",
    "timeout",
    "stalled",
    "truncated",
    "malformed_stream",
    "stream_error",
    "tunnel_lost",
    "connect_error",
)

_IGNORED_FIELDS = (b"event", b"id", b"retry")
_MAX_KEPT_INVALID = 5


class SSEDecoder:
    """Incremental SSE decoder: `feed(bytes)` returns the complete `data:` payloads seen so far.

    Handles LF, CRLF and CR line endings (also a CRLF split across two chunks), frames split across chunks at any
    byte, comment lines (':'), multi-line data (joined with '\\n'), and ignores `event:`/`id:`/`retry:`. Lines that
    are none of these (for instance a JSON object without the `data:` prefix) are counted in `invalid_count`, with
    the first few kept in `invalid_lines`, so a validator can reject the stream instead of silently skipping them.
    """

    __slots__ = ("_buf", "_data", "_skip_lf", "invalid_count", "invalid_lines")

    def __init__(self) -> None:
        self._buf = b""
        self._data: list[str] = []
        self._skip_lf = False  # the previous chunk ended in '\r': a leading '\n' belongs to that line ending
        self.invalid_count = 0
        self.invalid_lines: list[str] = []

    def feed(self, data: bytes) -> list[str]:
        if self._skip_lf:
            self._skip_lf = False
            if data[:1] == b"\n":
                data = data[1:]
        buf = self._buf + data if self._buf else data
        if b"\r" in buf:
            buf = buf.replace(b"\r\n", b"\n")
            if buf[-1:] == b"\r":
                self._skip_lf = True
            buf = buf.replace(b"\r", b"\n")
        lines = buf.split(b"\n")
        self._buf = lines.pop()  # the unterminated rest (b"" when buf ended with a newline)
        out: list[str] = []
        for line in lines:
            self._line(line, out)
        return out

    def flush(self) -> list[str]:
        """End of body: treat an unterminated last line and event as complete (lenient about the final blank line)."""
        out: list[str] = []
        if self._buf:
            self._line(self._buf, out)
            self._buf = b""
        self._line(b"", out)
        return out

    def _line(self, line: bytes, out: list[str]) -> None:
        if not line:
            if self._data:
                out.append("\n".join(self._data))
                self._data = []
            return
        if line[:5] == b"data:":
            value = line[6:] if line[5:6] == b" " else line[5:]
            try:
                self._data.append(value.decode("utf-8"))
            except UnicodeDecodeError:
                self._invalid(line)
            return
        if line[:1] == b":":
            return
        name = line.split(b":", 1)[0]
        if name in _IGNORED_FIELDS:
            return
        self._invalid(line)

    def _invalid(self, line: bytes) -> None:
        self.invalid_count += 1
        if len(self.invalid_lines) < _MAX_KEPT_INVALID:
            self.invalid_lines.append(line[:200].decode("utf-8", "replace"))


@dataclass
class StreamOutcome:
    ok: bool
    failure: str | None = None  # one of FAILURE_CLASSES when not ok
    error: str | None = None  # human-readable reason (server message for stream_error)
    content: str = ""
    finish_reason: str | None = None
    usage: dict | None = None
    model: str | None = None
    content_events: int = 0
    done: bool = False
    cached_tokens: int | None = field(default=None)  # usage.prompt_tokens_details.cached_tokens when reported


def content_of(chunk: dict[str, Any]) -> tuple[str, str | None, bool]:
    """(visible text, finish_reason, content_bearing) of one chat or completions chunk.

    Content-bearing means the frame carries generated tokens: `delta.content`, `delta.reasoning_content`/`reasoning`
    (reasoning models) or completions `text`. Role-only and usage-only frames are not content-bearing.
    """
    text = ""
    finish = None
    bearing = False
    for choice in chunk.get("choices") or ():
        if not isinstance(choice, dict):
            continue
        delta = choice.get("delta")
        if isinstance(delta, dict):
            piece = delta.get("content")
            if piece:
                text += piece
                bearing = True
            elif delta.get("reasoning_content") or delta.get("reasoning"):
                bearing = True
        piece = choice.get("text")
        if piece:
            text += piece
            bearing = True
        if choice.get("finish_reason"):
            finish = choice["finish_reason"]
    return text, finish, bearing


class StreamValidator:
    """Feed each SSE payload to `on_payload`, then call `finish(body_complete)` once for the verdict.

    The first failure wins; later frames are ignored for the verdict. `on_payload` returns True when the frame was
    content-bearing, so a caller can timestamp first/last token without parsing twice. `keep_content=False` avoids
    building the text (the load engine only needs counts).
    """

    __slots__ = (
        "_content",
        "_error",
        "_failure",
        "content_events",
        "done",
        "finish_reason",
        "keep_content",
        "model",
        "usage",
    )

    def __init__(self, keep_content: bool = True) -> None:
        self.keep_content = keep_content
        self._content: list[str] = []
        self._failure: str | None = None
        self._error: str | None = None
        self.finish_reason: str | None = None
        self.usage: dict | None = None
        self.model: str | None = None
        self.content_events = 0
        self.done = False

    @property
    def failed(self) -> bool:
        return self._failure is not None

    def fail(self, failure: str, error: str) -> None:
        """Record a failure found outside the payloads (invalid lines, transport errors); the first one wins."""
        if self._failure is None:
            self._failure, self._error = failure, error

    def check_decoder(self, decoder: SSEDecoder) -> None:
        """Fail the stream when the decoder saw lines that are not SSE fields (e.g. JSON without `data:`)."""
        if decoder.invalid_count and self._failure is None:
            self.fail("malformed_stream", f"line without a data: prefix: {decoder.invalid_lines[0][:80]!r}")

    def on_payload(self, payload: str) -> bool:
        if self._failure is not None:
            return False
        if payload == "[DONE]" or payload.strip() == "[DONE]":
            self.done = True
            return False
        if self.done:
            self.fail("malformed_stream", "data frame after [DONE]")
            return False
        try:
            chunk = _loads(payload)
        except ValueError:
            self.fail("malformed_stream", f"data frame is not JSON: {payload[:80]!r}")
            return False
        if not isinstance(chunk, dict):
            self.fail("malformed_stream", f"data frame is not a JSON object: {payload[:80]!r}")
            return False
        err = chunk.get("error")
        if err:
            msg = err.get("message") if isinstance(err, dict) else None
            self.fail("stream_error", f"error frame in stream: {msg or str(err)[:200]}")
            return False
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self.usage = usage
        if self.model is None and chunk.get("model"):
            self.model = chunk["model"]
        choices = chunk.get("choices")
        if not isinstance(choices, list) or (not choices and usage is None):
            self.fail("malformed_stream", f"data frame without choices: {payload[:80]!r}")
            return False
        text, finish, bearing = content_of(chunk)
        if finish:
            self.finish_reason = finish
        if bearing:
            self.content_events += 1
            if self.keep_content and text:
                self._content.append(text)
        return bearing

    def finish(self, body_complete: bool) -> StreamOutcome:
        if self._failure is None:
            if not self.done:
                how = "body ended" if body_complete else "connection closed"
                self.fail("truncated", f"stream incomplete: {how} without [DONE]"
                          + ("" if self.finish_reason else " and without finish_reason"))
            elif not self.finish_reason:
                self.fail("truncated", "stream ended with [DONE] but no finish_reason")
        ok = self._failure is None
        return StreamOutcome(
            ok=ok, failure=self._failure, error=self._error, content="".join(self._content),
            finish_reason=self.finish_reason, usage=self.usage, model=self.model,
            content_events=self.content_events, done=self.done, cached_tokens=cached_tokens(self.usage),
        )


def cached_tokens(usage: dict | None) -> int | None:
    """Prefix-cache hits as reported by the server (`usage.prompt_tokens_details.cached_tokens`), else None."""
    if not usage:
        return None
    details = usage.get("prompt_tokens_details")
    if isinstance(details, dict) and isinstance(details.get("cached_tokens"), int):
        return details["cached_tokens"]
    return None
