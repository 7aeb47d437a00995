"""llmd.http1.BodyFramer, the one HTTP/1.1 body framer of the load generator's client and the local gateway."""

from __future__ import annotations

import pytest

from llmd.http1 import MAX_LINE, BodyFramer, FramingError

CHUNKED = b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\n\r\n"


def feed_in_pieces(framer: BodyFramer, data: bytes, size: int) -> tuple[bytes, list[bool]]:
    body: list[bytes] = []
    dones = [framer.feed(data[i:i + size], body) for i in range(0, len(data), size)]
    return b"".join(body), dones


@pytest.mark.parametrize("size", [1, 2, 3, 7, len(CHUNKED)])
def test_chunked_payload_and_end_whatever_the_read_sizes(size):
    payload, dones = feed_in_pieces(BodyFramer(chunked=True), CHUNKED, size)
    assert payload == b"hello, world"
    assert dones[-1] is True and not any(dones[:-1])  # complete exactly at the last byte, not before


def test_boundaries_only_mode_ends_at_the_same_byte():
    for size in (1, 4, len(CHUNKED)):
        f = BodyFramer(chunked=True)
        dones = [f.feed(CHUNKED[i:i + size]) for i in range(0, len(CHUNKED), size)]
        assert dones[-1] and not any(dones[:-1]) and f.done


def test_trailers_are_skipped_and_bytes_after_the_end_ignored():
    f = BodyFramer(chunked=True)
    body: list[bytes] = []
    assert f.feed(b"3\r\nabc\r\n0\r\nx-checksum: 1\r\n\r\nHTTP/1.1 200 OK", body)
    assert b"".join(body) == b"abc" and f.feed(b"more")


def test_content_length_split_and_overlong_reads():
    f = BodyFramer(length=10)
    body: list[bytes] = []
    assert not f.feed(b"01234", body)
    assert f.feed(b"56789extra", body)
    assert b"".join(body) == b"0123456789"
    assert BodyFramer(length=0).done


def test_until_close_never_ends_by_itself():
    f = BodyFramer()
    body: list[bytes] = []
    assert f.until_close and not f.feed(b"abc", body) and not f.feed(b"def", body)
    assert b"".join(body) == b"abcdef"


@pytest.mark.parametrize(("wire", "says"), [
    (b"zz\r\nhello\r\n", "invalid chunk size"),
    (b"-5\r\nhello\r\n", "invalid chunk size"),
    (b"+5\r\nhello\r\n", "invalid chunk size"),  # int() would take these three
    (b"1_0\r\nhello\r\n", "invalid chunk size"),
    (b"\r\n", "invalid chunk size"),
    (b"5\r\nhelloXY", "chunk not followed by CRLF"),
])
def test_broken_framing_raises_naming_it_after_the_good_payload(wire, says):
    f = BodyFramer(chunked=True)
    body: list[bytes] = []
    assert not f.feed(b"2\r\nok\r\n", body)
    with pytest.raises(FramingError, match=says):
        f.feed(wire, body)
    assert body[0] == b"ok"


def test_a_chunk_size_line_without_end_is_bounded():
    f = BodyFramer(chunked=True)
    f.feed(b"1" * MAX_LINE)  # kept: the line may still end in the next read
    with pytest.raises(FramingError, match="longer than"):
        f.feed(b"1")


def test_negative_content_length_is_refused():
    with pytest.raises(FramingError, match="Content-Length"):
        BodyFramer(length=-1)


def test_a_hex_prefix_is_no_chunk_size():
    with pytest.raises(FramingError, match="invalid chunk size"):
        BodyFramer(chunked=True).feed(b"0x5\r\nhello\r\n")


def test_a_chunk_split_anywhere_across_reads_with_an_extension():
    wire = b"3;name=value\r\nabc\r\n10\r\n" + b"p" * 16 + b"\r\n0\r\n\r\n"
    for cut in range(1, len(wire)):
        f = BodyFramer(chunked=True)
        body: list[bytes] = []
        assert not f.feed(wire[:cut], body)
        assert f.feed(wire[cut:], body), cut
        assert b"".join(body) == b"abc" + b"p" * 16
