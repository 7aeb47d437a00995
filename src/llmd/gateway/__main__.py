"""`python -m llmd.gateway`: the local platform's scheduling gateway as a process of its own.

    python -m llmd.gateway --config epp.yaml --replica http://127.0.0.1:8001 --replica ... [--port 0]

Prints its URL as the first stdout line once it listens (the local platform reads it), serves until SIGINT or
SIGTERM. argparse, not Typer: the supervisor starts it on every deploy and start-up time counts.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

import yaml

from llmd.errors import ConfigError


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m llmd.gateway", description=__doc__.splitlines()[0])
    p.add_argument("--config", required=True, help="EndpointPickerConfig YAML/JSON file")
    p.add_argument("--profile", default="custom", help="Name shown for the config (a scheduler preset name)")
    p.add_argument("--replica", action="append", required=True, help="Replica base URL (repeat)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--scrape-interval", type=float, default=0.05, help="Seconds between /metrics scrapes")
    p.add_argument("--seed", type=int, default=None, help="Seed of tie-breaks and random pickers")
    return p.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    from llmd.gateway.proxy import Gateway, start

    with open(args.config, encoding="utf-8") as fh:
        config = yaml.safe_load(fh)
    gw = Gateway(args.replica, config, profile=args.profile, scrape_interval=args.scrape_interval, seed=args.seed)
    server = await start(gw, args.host, args.port)
    port = server.sockets[0].getsockname()[1]
    sys.stdout.write(f"http://{args.host}:{port}\n")
    sys.stdout.flush()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()
    await gw.close()


def main(argv: list[str] | None = None) -> int:
    from llmd.loadgen.loop import new_event_loop

    args = parse_args(argv)
    loop = new_event_loop()
    try:
        loop.run_until_complete(serve(args))
    except ConfigError as err:
        sys.stderr.write(f"✗ {err.message}\n" + (f"hint: {err.hint}\n" if err.hint else ""))
        return 2
    except OSError as err:
        sys.stderr.write(f"✗ gateway: {err}\n")
        return 2
    finally:
        loop.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
