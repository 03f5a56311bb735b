"""A server of known capacity, run as a process of its own (``python -m
tests.support.capacity_server WORKERS SERVICE_S``): at most WORKERS requests are served at once,
each holding its worker for SERVICE_S (measured from when it got the worker, so timer slack does
not add up), the rest wait in line; it serves ``WORKERS / SERVICE_S`` requests per second at
most. It prints its port on the first line of stdout, then serves until killed."""

from __future__ import annotations

import asyncio
import sys

import uvloop
from aiohttp import web


async def serve(workers: int, service_s: float) -> None:
    """Listen on a free port of 127.0.0.1, print it, serve for ever."""
    busy = asyncio.Semaphore(workers)
    loop = asyncio.get_running_loop()

    async def respond(request: web.Request) -> web.Response:
        async with busy:
            done_at = loop.time() + service_s
            while (left := done_at - loop.time()) > 0:
                await asyncio.sleep(left)
        return web.Response(body=b"ok")

    app = web.Application()
    app.add_routes([web.route("*", "/{tail:.*}", respond)])
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    print(runner.addresses[0][1], flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    uvloop.run(serve(int(sys.argv[1]), float(sys.argv[2])))
