"""SSE decoding and rule-12 stream validation (F46-F48 at the parser level)."""
# The IDs cited here (rule N, F##) are defined in docs/behaviours.md.

from __future__ import annotations

import json

import pytest

from llmd.sse import FAILURE_CLASSES, SSEDecoder, StreamValidator, cached_tokens


def chunk(content=None, finish=None, usage=None, model="m", role=None):
    delta = {}
    if role:
        delta["role"] = role
    if content is not None:
        delta["content"] = content
    body = {"id": "x", "model": model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    if usage is not None:
        body = {"id": "x", "model": model, "choices": [], "usage": usage}
    return "data: " + json.dumps(body) + "\n\n"


def good_stream(words=("Hello", " world")) -> bytes:
    parts = [chunk(role="assistant", content="")]
    parts += [chunk(w) for w in words]
    parts.append(chunk("", finish="stop"))
    parts.append(chunk(usage={"prompt_tokens": 5, "completion_tokens": len(words),
                              "prompt_tokens_details": {"cached_tokens": 3}}))
    parts.append("data: [DONE]\n\n")
    return "".join(parts).encode()


def run(data: bytes, split: int | None = None, body_complete: bool = True):
    dec, val = SSEDecoder(), StreamValidator()
    pieces = [data] if not split else [data[i:i + split] for i in range(0, len(data), split)]
    for piece in pieces:
        for payload in dec.feed(piece):
            val.on_payload(payload)
    for payload in dec.flush():
        val.on_payload(payload)
    val.check_decoder(dec)
    return val.finish(body_complete)


def test_good_stream_ok_with_usage_and_cache_hits():
    out = run(good_stream())
    assert out.ok and out.failure is None
    assert out.content == "Hello world"
    assert out.content_events == 2  # role-only and empty frames are not content-bearing
    assert out.finish_reason == "stop" and out.done
    assert out.usage["completion_tokens"] == 2
    assert out.cached_tokens == 3
    assert out.model == "m"


@pytest.mark.parametrize("split", [1, 2, 3, 7, 64])
def test_frames_split_at_every_byte(split):
    out = run(good_stream(), split=split)
    assert out.ok and out.content == "Hello world"


@pytest.mark.parametrize("split", [None, 1, 5])
def test_crlf_and_cr_line_endings(split):
    crlf = good_stream().replace(b"\n", b"\r\n")
    out = run(crlf, split=split)
    assert out.ok and out.content == "Hello world"
    cr = good_stream().replace(b"\n", b"\r")
    assert run(cr, split=split).ok


def test_crlf_split_between_cr_and_lf_does_not_end_event():
    dec = SSEDecoder()
    assert dec.feed(b"data: a\r") == []
    assert dec.feed(b"\ndata: b\r\n\r\n") == ["a\nb"]


def test_comments_multiline_and_ignored_fields():
    dec = SSEDecoder()
    got = dec.feed(b": keep-alive\nevent: message\nid: 7\nretry: 10\ndata:x\ndata: y\n\n")
    assert got == ["x\ny"]
    assert dec.invalid_count == 0


def test_utf8_split_inside_multibyte_char():
    payload = chunk("héllo ☃", finish="stop").encode() + b"data: [DONE]\n\n"
    out = run(payload, split=1)
    assert out.ok and out.content == "héllo ☃"


def test_invalid_json_is_malformed():
    first = b'data: {"id": "x", "model": "m", "choices": [{"index": 0, "delta": {"content": "Hello"'
    data = good_stream().replace(first, b"data: {not json", 1)
    out = run(data)
    assert not out.ok and out.failure == "malformed_stream" and "not JSON" in out.error


def test_missing_data_prefix_is_malformed():
    data = b'{"choices": []}\n\n' + good_stream()
    out = run(data)
    assert out.failure == "malformed_stream" and "data: prefix" in out.error


def test_error_frame_in_200_stream():
    data = chunk("Hi").encode() + b'data: {"error": {"message": "boom", "code": 500}}\n\ndata: [DONE]\n\n'
    out = run(data)
    assert out.failure == "stream_error" and "boom" in out.error


def test_truncated_without_done():
    data = chunk("Hi").encode()
    out = run(data, body_complete=False)
    assert out.failure == "truncated" and "connection closed" in out.error
    assert run(data, body_complete=True).failure == "truncated"


def test_done_without_finish_reason_fails():
    out = run(chunk("Hi").encode() + b"data: [DONE]\n\n")
    assert out.failure == "truncated" and "finish_reason" in out.error


def test_no_choices_frame_is_malformed():
    out = run(b'data: {"id": "x"}\n\ndata: [DONE]\n\n')
    assert out.failure == "malformed_stream" and "choices" in out.error


def test_completions_text_frames():
    frames = [{"choices": [{"text": "ab", "finish_reason": None}]},
              {"choices": [{"text": "c", "finish_reason": "length"}]}]
    data = "".join(f"data: {json.dumps(f)}\n\n" for f in frames) + "data: [DONE]\n\n"
    out = run(data.encode())
    assert out.ok and out.content == "abc" and out.finish_reason == "length" and out.content_events == 2


def test_first_failure_wins_and_classes_are_known():
    val = StreamValidator()
    val.on_payload('{"error": "first"}')
    val.on_payload("not json")
    out = val.finish(True)
    assert out.failure == "stream_error" and "first" in out.error
    assert out.failure in FAILURE_CLASSES


def test_cached_tokens_absent():
    assert cached_tokens(None) is None
    assert cached_tokens({"prompt_tokens": 3}) is None
    assert cached_tokens({"prompt_tokens_details": None}) is None
