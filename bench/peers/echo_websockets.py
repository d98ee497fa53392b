"""Python `websockets` echo server for bench/run.py (scenario z): `echo_websockets.py PORT`.

Echoes text and binary on any path, with the library's defaults: permessage-deflate on
(context takeover, server_max_window_bits=12, client_max_window_bits=12, memLevel 5: the
settings of `compression="deflate"`), except keepalive pings (off, as for wsx serve in the
benchmark). asyncio's default event loop. Prints `ready` once listening.
Runs with target/interop-venv/bin/python (scripts/interop.sh installs websockets there).
"""
import asyncio
import sys

from websockets.asyncio.server import serve


async def echo(ws):
    async for message in ws:
        await ws.send(message)


async def main(port):
    async with serve(echo, "127.0.0.1", port, compression="deflate", ping_interval=None):
        print("ready", flush=True)
        await asyncio.Future()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
