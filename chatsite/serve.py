"""Serve the site with daphne on uvloop's event loop: `python -m chatsite.serve`, with daphne's own arguments.

    python -m chatsite.serve -b 127.0.0.1 -p 8000 chatsite.asgi:application

is `daphne -b 127.0.0.1 -p 8000 chatsite.asgi:application` (`make run`),
every option the same, but its Twisted reactor runs on uvloop (libuv's
event loop, MagicStack) instead of asyncio's own: the loop every consumer,
reply and upstream read of the process runs on. A class of 50 replies at
once took 35.5 ms of daphne's CPU a reply instead of 43, and their requests
reached the upstream 155 ms after the sends instead of 202.5 (medians,
bench/README.md, the fifteenth round).

Daphne makes its reactor's loop with `asyncio.new_event_loop()` when
`daphne.server` is first imported, so uvloop's policy is set here before
anything imports it. Plain `daphne` still serves the site, on asyncio's loop.
"""

import asyncio
import sys

import uvloop


def main() -> None:
    """Run daphne's command line with this process's arguments, on uvloop's loop.

    Raises:
        RuntimeError: `daphne.server` was imported before, its loop made already.
    """
    if "daphne.server" in sys.modules:
        raise RuntimeError("daphne.server was imported before chatsite.serve could set uvloop's event loop policy")
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    from daphne.cli import CommandLineInterface  # type: ignore[import-untyped]  # Imports daphne.server.

    CommandLineInterface().run(sys.argv[1:])


if __name__ == "__main__":
    main()
