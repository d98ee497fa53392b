"""A `superchat` client written from docs/rooms.md only (Python `websockets`, asyncio).

`Conn` is one connection: its `welcome`, then events (`message`, `join`, `leave`, `error`).
`Follower` is a member that keeps its place in the room across reconnections (since/epoch), and
checks what it receives: offsets up by exactly one, `first` as documented, `recovered`.
"""
import asyncio
import base64
import json
import random
import time
import urllib.parse

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

TIMEOUT = 10.0


class ProtocolError(Exception):
    """The server sent something docs/rooms.md does not describe."""


def chat_url(base, room, **query):
    """`base` is ws://HOST:PORT; query values None are left out."""
    q = {k: v for k, v in query.items() if v is not None}
    qs = urllib.parse.urlencode(q)
    return f"{base}/chat/{room}" + (f"?{qs}" if qs else "")


def parse(frame):
    if not isinstance(frame, str):
        raise ProtocolError(f"a binary frame from the server: {frame[:40]!r}")
    try:
        event = json.loads(frame)
    except ValueError as e:
        raise ProtocolError(f"not JSON: {frame[:200]!r} ({e})")
    if not isinstance(event, dict) or not isinstance(event.get("type"), str):
        raise ProtocolError(f"not an object with a type: {frame[:200]!r}")
    return event


def payload(event):
    """A `message`'s content: str for `text`, bytes for `binary`."""
    if "text" in event:
        return event["text"]
    if "binary" in event:
        return base64.b64decode(event["binary"], validate=True)
    raise ProtocolError(f"a message without text or binary: {event}")


async def open_ws(url, subprotocols=("superchat",), timeout=TIMEOUT, headers=None):
    return await asyncio.wait_for(
        connect(url, subprotocols=list(subprotocols), proxy=None, open_timeout=timeout,
                close_timeout=5, max_size=None, max_queue=None, additional_headers=headers),
        timeout + 2,
    )


async def http_refusal(url, timeout=TIMEOUT):
    """(status, body) when the upgrade is refused with an HTTP status, None when it is accepted."""
    try:
        ws = await open_ws(url, timeout=timeout)
    except InvalidStatus as e:
        return e.response.status_code, (e.response.body or b"").decode(errors="replace")
    await ws.close()
    return None


class Conn:
    """One superchat connection."""

    def __init__(self, ws):
        self.ws = ws
        self.node = ws.response.headers.get("X-Wsx-Node")
        self.welcome = None
        self.others = []  # join/leave/error events seen while waiting for messages

    @classmethod
    async def open(cls, url, timeout=TIMEOUT):
        conn = cls(await open_ws(url, timeout=timeout))
        first = await conn.event(timeout)
        if first["type"] != "welcome":
            await conn.close()
            raise ProtocolError(f"the first message is not a welcome: {first}")
        conn.welcome = first
        return conn

    async def event(self, timeout=TIMEOUT):
        frame = await asyncio.wait_for(self.ws.recv(), timeout)
        return parse(frame)

    async def next_of(self, types, timeout=TIMEOUT):
        """The next event whose type is in `types`; the others go to `self.others`."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise asyncio.TimeoutError(f"no {types} within {timeout} s")
            e = await self.event(left)
            if e["type"] in types:
                return e
            self.others.append(e)

    async def messages(self, n, timeout=TIMEOUT):
        return [await self.next_of(("message",), timeout) for _ in range(n)]

    async def quiet(self, seconds):
        """Events that arrive within `seconds` (to check that nothing more comes)."""
        got = []
        deadline = time.monotonic() + seconds
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return got
            try:
                got.append(await self.event(left))
            except asyncio.TimeoutError:
                return got

    async def send(self, data):
        await self.ws.send(data)

    async def close(self):
        try:
            await asyncio.wait_for(self.ws.close(), 10)
        except (asyncio.TimeoutError, OSError, ConnectionClosed):
            pass


class Follower:
    """A member that keeps its place: joins with history=0 (or `history`), and after any
    disconnect resumes with since/epoch through `base_url` until stopped. Every message is
    checked against the last one (same epoch, offset + 1); problems are collected, not raised.

    `log`: [(epoch, offset, payload)] in the order received (one entry per offset).
    """

    def __init__(self, name, base, room, history=None, deadline_per_connect=40.0):
        self.name = name
        self.base = base
        self.room = room
        self.history = history
        self.deadline_per_connect = deadline_per_connect
        self.epoch = None
        self.last = None  # offset of the last message received (or welcome.offset before any)
        self.log = []
        self.problems = []
        self.welcomes = []
        self.nodes = []  # X-Wsx-Node of every connection
        self.closes = []  # how each connection ended
        self.presence_events = 0
        self.errors = []
        self.conn = None
        self.connected = asyncio.Event()  # set once the welcome's replay is complete
        self.caught_up = asyncio.Event()
        self.stopping = False
        self.task = None
        self.on_ready = None  # async callback after (re)connect and replay done
        self.on_message = None  # sync callback (epoch, offset, payload)
        self.first_welcome = asyncio.Event()

    # -- the receiving side -------------------------------------------------------------
    def url(self):
        if self.epoch is None:
            return chat_url(self.base, self.room, name=self.name, history=self.history)
        return chat_url(self.base, self.room, name=self.name, since=self.last, epoch=self.epoch)

    def _welcome(self, w, since):
        self.welcomes.append(w)
        for k in ("epoch", "offset", "first", "member", "presence"):
            if k not in w:
                self.problems.append(f"welcome without {k}: {w}")
        if since is None:
            if "recovered" in w:
                self.problems.append(f"recovered in a fresh join's welcome: {w}")
        else:
            if w.get("recovered") is not True:
                self.problems.append(f"resume since={since} epoch={self.epoch}: not recovered: {w}")
            elif w.get("first") != since + 1 or w.get("epoch") != self.epoch:
                self.problems.append(f"resume since={since} epoch={self.epoch}: recovered "
                                     f"but first/epoch {w.get('first')}/{w.get('epoch')}")
            if w.get("offset", 0) < since and w.get("epoch") == self.epoch:
                self.problems.append(f"resume since={since}: welcome.offset {w.get('offset')} < since")
        if w.get("epoch") != self.epoch:
            # A fresh join (or a lost epoch, reported above): the place starts at first - 1.
            self.epoch = w.get("epoch")
            self.last = w.get("first", 1) - 1
        elif w.get("recovered") is not True and since is not None:
            self.last = w.get("first", 1) - 1
        self.target = w.get("offset", 0)

    def _message(self, m):
        epoch, offset = m.get("epoch"), m.get("offset")
        if epoch != self.epoch:
            self.problems.append(f"epoch changed {self.epoch} -> {epoch} at offset {offset}")
            self.epoch, self.last = epoch, offset - 1
        if offset != self.last + 1:
            kind = "duplicate/old" if offset <= self.last else "gap"
            self.problems.append(f"{kind}: after {self.last} came {offset}")
            if offset <= self.last:
                return
        self.last = offset
        data = payload(m)
        self.log.append((epoch, offset, data))
        if self.on_message:
            self.on_message(epoch, offset, data)

    async def _connect_once(self):
        """Opens one connection (retrying refusals) and reads its welcome; None on giving up."""
        deadline = time.monotonic() + self.deadline_per_connect
        delay = 0.05
        while not self.stopping:
            since = self.last if self.epoch is not None else None
            url = self.url()
            try:
                ws = await open_ws(url)
            except (OSError, InvalidHandshake, asyncio.TimeoutError, ConnectionClosed) as e:
                if time.monotonic() > deadline:
                    self.problems.append(f"could not reconnect in {self.deadline_per_connect} s: {e!r}")
                    return None
                await asyncio.sleep(delay + random.random() * delay)
                delay = min(delay * 2, 0.5)
                continue
            conn = Conn(ws)
            try:
                w = await conn.event()
            except (ConnectionClosed, asyncio.TimeoutError, OSError) as e:
                self.closes.append(f"before welcome: {e!r}")
                await conn.close()
                continue
            if w["type"] != "welcome":
                self.problems.append(f"first message not a welcome: {w}")
                await conn.close()
                return None
            conn.welcome = w
            self.nodes.append(conn.node)
            self._welcome(w, since)
            self.first_welcome.set()
            return conn
        return None

    async def run(self):
        while not self.stopping:
            conn = await self._connect_once()
            if conn is None:
                return
            self.conn = conn
            try:
                await self._pump(conn)
            except ConnectionClosed as e:
                rcvd = e.rcvd.code if e.rcvd else None
                self.closes.append(rcvd)
            except (OSError, asyncio.TimeoutError) as e:
                self.closes.append(repr(e))
            finally:
                self.connected.clear()
                self.conn = None
            if not self.stopping:
                await asyncio.sleep(0.05 + random.random() * 0.1)

    async def _pump(self, conn):
        ready = False
        if self.last >= self.target:
            ready = True
            await self._ready(conn)
        while True:
            # Bounded: a room of this suite is never silent for a minute (and the client's
            # pings notice a dead connection within 40 s).
            try:
                frame = await asyncio.wait_for(conn.ws.recv(), 60)
            except asyncio.TimeoutError:
                self.problems.append("nothing received for 60 s")
                raise
            e = parse(frame)
            t = e["type"]
            if t == "message":
                self._message(e)
            elif t in ("join", "leave"):
                self.presence_events += 1
            elif t == "error":
                self.errors.append(e)
            elif t == "welcome":
                self.problems.append(f"a second welcome: {e}")
            else:
                self.problems.append(f"unknown event type: {e}")
            if not ready and self.last >= self.target:
                ready = True
                await self._ready(conn)

    async def _ready(self, conn):
        if self.on_ready:
            await self.on_ready(conn)
        self.connected.set()

    def start(self):
        self.task = asyncio.create_task(self.run())
        return self

    async def stop(self):
        self.stopping = True
        conn = self.conn
        if conn is not None:
            await conn.close()
        if self.task:
            try:
                await asyncio.wait_for(self.task, 15)
            except asyncio.TimeoutError:
                self.task.cancel()
                self.problems.append("did not stop within 15 s")
            except Exception as e:  # noqa: BLE001 - reported, not raised
                self.problems.append(f"task failed: {e!r}")

    async def wait_offset(self, offset, timeout):
        """Waits (bounded) until the last offset received reaches `offset`; whether it did."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.last is not None and self.last >= offset:
                return True
            if self.task and self.task.done():
                return False
            await asyncio.sleep(0.05)
        return False
