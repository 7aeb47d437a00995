"""Each replica's /metrics on a fixed ticker (the EPP's --refresh-metrics-interval, 50 ms by default).

Only the series the scorers read are parsed (vllm:num_requests_waiting, _running, kv_cache_usage_perc and the
cache_config_info labels), with bytes.find instead of a full Prometheus parser: 20 scrapes/s per replica must stay
cheap. A failed scrape keeps the last values (as the EPP does) and marks the endpoint not ready, the local
stand-in for a pod leaving the pool when its readiness probe fails, so the gateway stops picking it within one scrape.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Callable
from typing import Any

import orjson

from llmd.gateway.scheduling import Endpoint

SCRAPE_TIMEOUT_S = 1.0
_CACHE_CONFIG = re.compile(rb'vllm:cache_config_info\{[^}]*?block_size="(\d+)"[^}]*?num_gpu_blocks="(\d+)"')


def gauge(text: bytes, name: bytes) -> float | None:
    """The value of the first series of metric `name` (with or without labels), or None."""
    text = b"\n" + text
    for sep in (b"{", b" "):
        pos = text.find(b"\n" + name + sep)
        if pos < 0:
            continue
        end = text.find(b"\n", pos + 1)
        line = text[pos + 1: end if end >= 0 else len(text)]
        try:
            return float(line.rsplit(b" ", 1)[1])
        except (IndexError, ValueError):
            return None
    return None


def apply_metrics(ep: Endpoint, text: bytes) -> None:
    """Update the fields present (a partial scrape still counts as fresh)."""
    waiting = gauge(text, b"vllm:num_requests_waiting")
    running = gauge(text, b"vllm:num_requests_running")
    kv = gauge(text, b"vllm:kv_cache_usage_perc")
    if waiting is not None:
        ep.waiting = int(waiting)
    if running is not None:
        ep.running = int(running)
    if kv is not None:
        ep.kv_usage = kv
    m = _CACHE_CONFIG.search(text)
    if m:
        ep.block_size, ep.num_gpu_blocks = int(m.group(1)), int(m.group(2))


class Scraper:
    """One keep-alive connection per endpoint, one GET /metrics per tick."""

    def __init__(self, ep: Endpoint, host: str, port: int, interval: float) -> None:
        self.ep = ep
        self.host = host
        self.port = port
        self.interval = interval
        self.failures = 0
        # the precise prefix scorer's feed: GET /llmd/kv-events after each metrics scrape, when set
        self.kv_sink: Callable[[str, dict[str, Any]], None] | None = None
        self.kv_seq = -1  # -1: ask for a snapshot
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._request = f"GET /metrics HTTP/1.1\r\nhost: {host}:{port}\r\n\r\n".encode()

    async def _fetch(self, request: bytes | None = None) -> bytes:
        if self._writer is None or self._writer.is_closing():
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        assert self._reader is not None
        self._writer.write(request or self._request)
        head = await self._reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise ConnectionError(head.split(b"\r\n", 1)[0].decode(errors="replace"))
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        return await self._reader.readexactly(length)

    def _drop(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None

    async def scrape_once(self) -> bool:
        try:
            text = await asyncio.wait_for(self._fetch(), SCRAPE_TIMEOUT_S)
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            self._drop()
            self.failures += 1
            self.ep.ready = False
            return False
        apply_metrics(self.ep, text)
        self.ep.ready = True
        self.ep.scraped_at = time.time()
        sink = self.kv_sink
        if sink is not None:
            request = f"GET /llmd/kv-events?after={self.kv_seq} HTTP/1.1\r\nhost: {self.host}\r\n\r\n".encode()
            try:
                doc = orjson.loads(await asyncio.wait_for(self._fetch(request), SCRAPE_TIMEOUT_S))
            except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError):
                self._drop()
                return True  # metrics were fresh; the events are asked for again next tick
            sink(self.ep.name, doc)
            self.kv_seq = int(doc.get("seq", -1))
        return True

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        try:
            while True:
                await self.scrape_once()
                next_at += self.interval
                delay = next_at - loop.time()
                if delay < 0:  # fell behind (a slow scrape): skip the missed ticks
                    next_at = loop.time()
                    delay = 0
                await asyncio.sleep(delay)
        finally:
            with contextlib.suppress(Exception):
                self._drop()
