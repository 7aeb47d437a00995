"""A tiny OpenAI-style streaming server on 127.0.0.1 for load-engine tests (runs in a thread, own event loop).

Behaviour per request header `x-test`: `status=503`, `rate_limit`, `error_frame`, `early_close`, `stall`,
`malformed`, `html`, `no_choices`, `crlf`, `split`, `no_done`, `no_usage`, `close` (Connection: close), `slow`
(TTFT 300 ms). Records (request id, recv_ns, first_ns) server-side like `llmd sim --record`.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time

import pytest


class StreamServer:
    def __init__(self, *, ttft_s: float = 0.0, itl_s: float = 0.0, tokens: int | None = None, fault: str = "",
                 cached: int | None = None) -> None:
        self.ttft_s, self.itl_s, self.tokens, self.fault, self.cached = ttft_s, itl_s, tokens, fault, cached
        self.requests: list[dict] = []
        self.bodies: list[dict] = []
        self.connections = 0
        self.loop = asyncio.new_event_loop()
        self.port = 0
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> StreamServer:
        self._thread.start()
        assert self._ready.wait(5)
        return self

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self.loop.run_forever()
        server.close()
        tasks = asyncio.all_tasks(self.loop)
        for t in tasks:
            t.cancel()
        self.loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        self.loop.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode().split("\r\n")
                headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
                body = json.loads(await reader.readexactly(int(headers.get("content-length", "0"))))
                rec = {"id": headers.get("x-request-id"), "recv_ns": time.perf_counter_ns(), "path": lines[0]}
                self.requests.append(rec)
                self.bodies.append(body)
                keep = await self._respond(writer, body, headers.get("x-test", self.fault), rec)
                if not keep:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def _respond(self, w: asyncio.StreamWriter, body: dict, fault: str, rec: dict) -> bool:
        if fault.startswith("status="):
            code = int(fault.split("=")[1])
            msg = b'{"error": {"message": "no healthy upstream"}}'
            w.write(b"HTTP/1.1 %d Err\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                    % (code, len(msg), msg))
            await w.drain()
            return True
        if fault == "rate_limit":
            w.write(b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 2\r\nContent-Length: 2\r\n\r\n{}")
            await w.drain()
            return True
        if fault == "html":
            page = b"<html><body>502 Bad Gateway</body></html>"
            w.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: %d\r\n\r\n%s" % (len(page), page))
            await w.drain()
            return True
        close = fault == "close"
        w.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n"
                + (b"Connection: close\r\n" if close else b"") + b"\r\n")
        nl = "\r\n" if fault == "crlf" else "\n"

        async def frame(text: str) -> None:
            data = f"data: {text}{nl}{nl}".encode()
            if fault == "split":
                half = len(data) // 2
                for part in (data[:half], data[half:]):
                    w.write(b"%x\r\n%s\r\n" % (len(part), part))
                    await w.drain()
                    await asyncio.sleep(0.001)
            else:
                w.write(b"%x\r\n%s\r\n" % (len(data), data))

        n = self.tokens or body.get("max_tokens", 8)
        chat = "messages" in body
        await asyncio.sleep(0.3 if fault == "slow" else self.ttft_s)
        if fault == "no_choices":
            await frame('{"id": "x", "object": "error"}')
        for k in range(n):
            if k and self.itl_s:
                await w.drain()
                await asyncio.sleep(self.itl_s)
            if k == 1 and fault == "error_frame":
                await frame('{"error": {"message": "engine died", "code": 500}}')
                break
            if k == 1 and fault == "malformed":
                await frame("{this is not json")
            if k == 1 and fault == "early_close":
                await w.drain()
                w.transport.abort()
                return False
            if k == 1 and fault == "stall":
                await w.drain()
                await asyncio.sleep(30)
            if k == 0:
                rec["first_ns"] = time.perf_counter_ns()
            last = k == n - 1
            choice = ({"index": 0, "delta": {"content": f"t{k} "}} if chat else {"index": 0, "text": f"t{k} "})
            choice["finish_reason"] = "length" if last else None
            await frame(json.dumps({"id": "x", "model": body.get("model"), "choices": [choice]}))
        if fault != "no_usage":
            usage = {"prompt_tokens": 10, "completion_tokens": n, "total_tokens": 10 + n}
            if self.cached is not None:
                usage["prompt_tokens_details"] = {"cached_tokens": self.cached}
            await frame(json.dumps({"id": "x", "model": body.get("model"), "choices": [], "usage": usage}))
        if fault != "no_done":
            await frame("[DONE]")
        w.write(b"0\r\n\r\n")
        await w.drain()
        return not close


@pytest.fixture
def stream_server():
    servers: list[StreamServer] = []

    def make(**kw) -> StreamServer:
        s = StreamServer(**kw).start()
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.stop()
