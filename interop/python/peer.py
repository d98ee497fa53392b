"""Python `websockets` as an interop peer of wsx, both ways.

  peer.py server PORT [--deflate off|default|fresh|w9] [--tls CERT KEY]
      an echo server: echoes text and binary, selects subprotocol "chat" when offered,
      and on /close/CODE closes with that code right after the handshake.
  peer.py client URL [--deflate ...] [--server-deflate off] [--cafile PEM]
      runs the checks below against a server that echoes (wsx serve /echo) and prints one line
      per check; exits 1 if any failed.
"""
import asyncio
import os
import ssl
import sys

from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    ServerPerMessageDeflateFactory,
)

MAX = 2**25
SIZES = [0, 1, 125, 126, 65535, 65536, 1 << 20, 16 << 20]


def deflate(kind, server):
    factory = ServerPerMessageDeflateFactory if server else ClientPerMessageDeflateFactory
    if kind == "off":
        return []
    if kind == "default":
        return [factory()] if server else [factory(client_max_window_bits=True)]
    if kind == "fresh":
        return [factory(server_no_context_takeover=True, client_no_context_takeover=True)]
    if kind == "w9":
        return [factory(server_max_window_bits=9, client_max_window_bits=9)]
    raise SystemExit("deflate is off, default, fresh or w9")


def option(args, name, default=None, count=1):
    if name not in args:
        return default
    i = args.index(name)
    return args[i + 1] if count == 1 else args[i + 1 : i + 1 + count]


async def run_server(port, args):
    async def handler(ws):
        path = ws.request.path
        if path.startswith("/close/"):
            await ws.close(int(path.split("/")[2]), "closing as asked")
            return
        async for message in ws:
            await ws.send(message)

    ctx = None
    tls = option(args, "--tls", count=2)
    if tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(tls[0], tls[1])
    extensions = deflate(option(args, "--deflate", "default"), True)
    async with serve(
        handler, "127.0.0.1", port, subprotocols=["chat"], max_size=MAX, ssl=ctx,
        compression=None, extensions=extensions, ping_interval=None,
    ):
        print("ready", flush=True)
        await asyncio.Future()


async def run_client(url, args):
    ctx = None
    cafile = option(args, "--cafile")
    if cafile:
        ctx = ssl.create_default_context(cafile=cafile)
    kind = option(args, "--deflate", "default")
    kw = dict(max_size=MAX, ssl=ctx, compression=None, extensions=deflate(kind, False), ping_interval=None)
    failures = 0

    def check(name, ok, detail=""):
        nonlocal failures
        failures += 0 if ok else 1
        print(f"{'ok  ' if ok else 'FAIL'} python client: {name} {detail}", flush=True)

    async with connect(url, subprotocols=["chat", "superchat"], **kw) as ws:
        # wsx serve picks the client's first supported subprotocol on /chat/ROOM, none on /echo;
        # `chat` relays messages as they are (a one-member room echoes; `superchat` would wrap
        # them: docs/rooms.md)
        expected = "chat" if "/chat/" in url else None
        check("subprotocol", ws.subprotocol == expected, f"{ws.subprotocol} (expected {expected})")
        ext = ws.response.headers.get("Sec-WebSocket-Extensions", "")
        agree = kind != "off" and option(args, "--server-deflate", "on") != "off"
        check("deflate negotiated" if agree else "no deflate", agree == ("permessage-deflate" in ext), ext)
        for size in SIZES:
            text = ("é" * (size // 2))
            await ws.send(text)
            got = await ws.recv()
            data = bytes(i % 251 for i in range(size))
            await ws.send(data)
            got_b = await ws.recv()
            check(f"echo {size} B text and binary", got == text and got_b == data)
        # Random bytes do not compress: deflated, a message at wsx serve's default limit
        # (16 MiB) is larger than the limit on the wire, and must still pass.
        for size in (16 << 20, (16 << 20) - 1):
            data = os.urandom(size)
            await ws.send(data)
            check(f"echo {size} B of random bytes", await ws.recv() == data)
        await ws.send(["Hel", "lo, ", "fragments"])
        check("fragmented message", await ws.recv() == "Hello, fragments")
        pong = await ws.ping(b"ping-payload")
        await asyncio.wait_for(pong, 10)
        check("ping answered", True)
        await ws.close(4000, "bye")
        check("close code echoed", ws.close_code == 4000, str(ws.close_code))
    return failures


def main():
    args = sys.argv[1:]
    if len(args) < 2:
        raise SystemExit(__doc__)
    if args[0] == "server":
        asyncio.run(run_server(int(args[1]), args[2:]))
    else:
        sys.exit(1 if asyncio.run(run_client(args[1], args[2:])) else 0)


if __name__ == "__main__":
    main()
