"""Where an HTTP/1.1 response body ends (RFC 9112 section 6): Content-Length, chunked, or the connection's close.

One framer for both ends of the local data path: the load generator's client (llmd.loadgen.client), which also
takes the payload out of the chunks to decode the SSE stream, and the local gateway (llmd.gateway.proxy), which
forwards the raw bytes and only needs to know when the body is complete so the upstream connection can be reused.
Both are measured hot paths (bench/perf_capacity.py, bench/gateway_overhead.py): `feed` walks each read once with
slices and `bytes.find`, no per-byte loop, and collects nothing when no list is given.
"""

from __future__ import annotations

_SIZE, _DATA, _CRLF, _TRAILER, _LENGTH, _UNTIL_CLOSE, _DONE = range(7)
_HEX = b"0123456789abcdefABCDEF"
MAX_LINE = 4096  # a chunk-size or trailer line longer than this is not a server speaking HTTP/1.1


class FramingError(ValueError):
    """The body's framing is broken; the message says how (for a `malformed_stream` error or a 502)."""


class BodyFramer:
    """Tracks one response body. `chunked` wins over `length` (RFC 9112 6.3); neither: the body ends at the close."""

    __slots__ = ("pending", "remaining", "state")

    def __init__(self, *, chunked: bool = False, length: int | None = None) -> None:
        self.pending = b""  # an incomplete chunk-size, CRLF or trailer line, kept for the next read
        self.remaining = 0
        if chunked:
            self.state = _SIZE
        elif length is not None:
            if length < 0:
                raise FramingError(f"invalid Content-Length {length}")
            self.state, self.remaining = (_LENGTH, length) if length else (_DONE, 0)
        else:
            self.state = _UNTIL_CLOSE

    @property
    def done(self) -> bool:
        return self.state == _DONE

    @property
    def until_close(self) -> bool:
        """The body is delimited by the connection's close: a close completes it, and the connection is not reused."""
        return self.state == _UNTIL_CLOSE

    def feed(self, data: bytes, body: list[bytes] | None = None) -> bool:
        """Advance over `data`; append the payload in it to `body` when given. True once the body is complete
        (bytes after its end are ignored). Raises FramingError, after appending the payload before the fault; a
        framer that raised is not fed again."""
        state = self.state
        if state == _LENGTH:
            take = min(self.remaining, len(data))
            if body is not None and take:
                body.append(data if take == len(data) else data[:take])
            self.remaining -= take
            if self.remaining:
                return False
            self.state = _DONE
            return True
        if state == _UNTIL_CLOSE:
            if body is not None and data:
                body.append(data)
            return False
        if state == _DONE:
            return True
        buf = self.pending + data if self.pending else data
        self.pending = b""
        pos, n = 0, len(buf)
        while pos < n:
            if state == _SIZE:  # the usual read holds whole chunks: size line, data and CRLF in one step
                eol = buf.find(b"\r\n", pos)
                if eol < 0:
                    self.state = state
                    self._keep(buf, pos)
                    return False
                size = _chunk_size(buf[pos:eol])
                pos = eol + 2
                if not size:
                    state = _TRAILER
                    continue
                end = pos + size
                if end + 2 <= n:
                    if buf[end:end + 2] != b"\r\n":
                        raise FramingError("chunk not followed by CRLF")
                    if body is not None:
                        body.append(buf[pos:end])
                    pos = end + 2
                    continue
                self.remaining, state = size, _DATA
            elif state == _DATA:
                take = min(self.remaining, n - pos)
                if body is not None:
                    body.append(buf[pos:pos + take])
                pos += take
                self.remaining -= take
                if not self.remaining:
                    state = _CRLF
            elif state == _CRLF:
                if n - pos < 2:
                    self.state, self.pending = state, buf[pos:]
                    return False
                if buf[pos:pos + 2] != b"\r\n":
                    raise FramingError("chunk not followed by CRLF")
                pos += 2
                state = _SIZE
            else:  # _TRAILER: lines up to an empty one
                eol = buf.find(b"\r\n", pos)
                if eol < 0:
                    self.state = state
                    self._keep(buf, pos)
                    return False
                if eol == pos:
                    self.state = _DONE
                    return True
                pos = eol + 2
        self.state = state
        return False

    def _keep(self, buf: bytes, pos: int) -> None:
        """An incomplete line: kept for the next read, within bounds."""
        if len(buf) - pos > MAX_LINE:
            raise FramingError(f"chunk-size or trailer line longer than {MAX_LINE} bytes")
        self.pending = buf[pos:]


def _chunk_size(line: bytes) -> int:
    """RFC 9112 7.1: 1*HEXDIG, then optional chunk extensions (ignored). No sign, space, underscore or 0x prefix,
    which int() alone would take. A stream repeats a handful of sizes: the parsed ones are remembered."""
    size = _SIZES.get(line)
    if size is not None:
        return size
    digits = line.split(b";", 1)[0].rstrip(b" \t")
    if not digits or digits.translate(None, _HEX) or len(digits) > 16:
        raise FramingError(f"invalid chunk size {digits[:20]!r} in chunked body")
    size = int(digits, 16)
    if len(_SIZES) < _SIZES_KEPT:
        _SIZES[line] = size
    return size


_SIZES: dict[bytes, int] = {}
_SIZES_KEPT = 4096
