"""The event loop the load engine, the simulator and the local gateway run on: uvloop when installed (measured:
about half the wake-up delay of the stdlib loop, hence more accurate TTFT/ITL, and more requests per core), else
asyncio's. `LLMD_LOOP=asyncio` forces the stdlib loop (for comparisons)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from typing import Any


def loop_kind() -> str:
    if os.environ.get("LLMD_LOOP", "").lower() == "asyncio":
        return "asyncio"
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio"
    return "uvloop"


def new_event_loop() -> asyncio.AbstractEventLoop:
    if loop_kind() == "uvloop":
        import uvloop

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    """asyncio.run() on the chosen loop (cancels leftover tasks, closes async generators and the loop)."""
    loop = new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(coro)
    finally:
        try:
            tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for t in tasks:
                t.cancel()
            if tasks:
                loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            loop.close()
