"""Pre-encoded byte fragments of OpenAI responses, so the hot path only joins bytes.

A streamed chat response is `role frame, content frames..., finish frame, [usage frame], [DONE]`;
every frame of one response shares the per-request prefix `data: {"id":...,"model":...,`.
Output text comes from a fixed original corpus split by the sim's tokenizer; every piece is
stored JSON-escaped so it can be spliced between quotes.
"""

from __future__ import annotations

import json

from llmd.sim.tokenizer import _TOKEN

_CORPUS = (
    "The quick simulator answers every request with plausible text. Tokens arrive at steady, "
    "measured intervals, and the first token waits for the configured prefill time. A scheduler "
    "that routes requests to warm caches sees shorter queues, while a random one spreads load "
    "evenly but forgets which replica already holds the prefix. Latency grows when many sequences "
    "share one replica; the time factor under load models that batch slowdown. Streams end with "
    "a finish reason, an optional usage chunk and the done marker. Errors may hide inside a "
    "successful stream, so clients must check every frame! Is that not why we test? Yes: faults "
    "are injected on purpose, counted, and reported. "
)
WORDS: list[bytes] = [json.dumps(p)[1:-1].encode() for p in _TOKEN.findall(_CORPUS)]
_REPEAT: list[bytes] = WORDS * (8192 // len(WORDS) + 2)


def words(start: int, n: int) -> list[bytes]:
    """n consecutive corpus pieces starting at `start` (cyclic)."""
    start %= len(WORDS)
    if start + n <= len(_REPEAT):
        return _REPEAT[start:start + n]
    return [WORDS[(start + i) % len(WORDS)] for i in range(n)]


def chunk(data: bytes) -> bytes:
    """One HTTP/1.1 chunk (transfer-encoding: chunked)."""
    return b"%x\r\n%s\r\n" % (len(data), data)


LAST_CHUNK = b"0\r\n\r\n"


def usage_json(prompt: int, completion: int, cached: int) -> bytes:
    return (b'{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d,"prompt_tokens_details":'
            b'{"cached_tokens":%d}}' % (prompt, completion, prompt + completion, cached))


def error_json(message: str, err_type: str, code: int, param: str | None = None) -> bytes:
    return json.dumps({"error": {"message": message, "type": err_type, "param": param, "code": code}},
                      separators=(",", ":")).encode()


class Frames:
    """SSE frames for one endpoint kind (chat or completions) and one line ending (LF or CRLF)."""

    def __init__(self, chat: bool, crlf: bool = False) -> None:
        end = b"\r\n\r\n" if crlf else b"\n\n"
        self.chat = chat
        self.id_prefix = b"chatcmpl-" if chat else b"cmpl-"
        obj = b"chat.completion.chunk" if chat else b"text_completion"
        self._obj = b'","object":"' + obj + b'","created":'
        if chat:
            self.open = b'"delta":{"content":"'
            self.close = b'"},"logprobs":null,"finish_reason":null}]}' + end
            self.role = b'"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}' + end
            self._finish = b'"delta":{},"logprobs":null,"finish_reason":"'
        else:
            self.open = b'"text":"'
            self.close = b'","logprobs":null,"finish_reason":null}]}' + end
            self.role = b""
            self._finish = b'"text":"","logprobs":null,"finish_reason":"'
        self._finish_end = b'"}]}' + end
        self.end = end
        self.done = b"data: [DONE]" + end
        self.malformed = b'data: {"choices":[{"index":0,"delta":{"content":"unterminated' + end
        self.error = (b"data: " + error_json("simulated engine failure after the stream started",
                                             "InternalServerError", 500) + end)

    def heads(self, rid: bytes, created: int, model_json: bytes) -> tuple[bytes, bytes]:
        """(head, pre): `data: {"id":..,"model":..,` and head + `"choices":[{"index":0,`."""
        head = b'data: {"id":"' + self.id_prefix + rid + self._obj + b"%d" % created + b',"model":' + model_json + b","
        return head, head + b'"choices":[{"index":0,'

    def first(self, pre: bytes) -> bytes:
        return pre + self.role if self.chat else b""

    def content(self, pre: bytes, word: bytes) -> bytes:
        return pre + self.open + word + self.close

    def tail(self, head: bytes, pre: bytes, finish: bytes, usage: bytes | None) -> bytes:
        out = pre + self._finish + finish + self._finish_end
        if usage is not None:
            out += head + b'"choices":[],"usage":' + usage + b"}" + self.end
        return out + self.done


def full_body(chat: bool, rid: bytes, created: int, model_json: bytes, *, text: bytes, finish: bytes,
              usage: bytes) -> bytes:
    """Non-streamed response body."""
    if chat:
        return (b'{"id":"chatcmpl-' + rid + b'","object":"chat.completion","created":%d,"model":' % created
                + model_json + b',"choices":[{"index":0,"message":{"role":"assistant","content":"' + text
                + b'"},"logprobs":null,"finish_reason":"' + finish + b'"}],"usage":' + usage + b"}")
    return (b'{"id":"cmpl-' + rid + b'","object":"text_completion","created":%d,"model":' % created
            + model_json + b',"choices":[{"index":0,"text":"' + text + b'","logprobs":null,"finish_reason":"'
            + finish + b'"}],"usage":' + usage + b"}")
