#!/usr/bin/env python3
"""Soak test of `wsx serve`: many connections for a long time, with every message checked, and
the server's memory watched for growth.

usage: bench/soak.py [--ci] [--wsx PATH] [--connections 10000] [--duration 600] [--sample 10]
                     [--workers N] [--max-rss-slope-kib-per-min K] [--max-failures F] [...]

Needs Python 3.11 and the `websockets` package (interop/requirements.txt):
    python3 -m venv target/interop-venv
    target/interop-venv/bin/pip install -r interop/requirements.txt
    target/interop-venv/bin/python bench/soak.py --ci
and a release build of the server (`cargo build --release -p wsx-cli`, or --wsx PATH).

It starts `wsx serve` on a free port of 127.0.0.1, in a session of its own (stopped by its pid at
the end, also on failure or Ctrl-C), with the open files limit raised to the hard limit (as it
does for itself), and opens --connections WebSocket connections from a few worker processes
(--workers, asyncio and websockets: 10,000 connections cost the clients about half a core;
each worker has its own share of connections and whole rooms, and reports counts back), for
--duration seconds (the handshakes included), then stops the traffic, waits for the last room
messages (at most 15 s), closes everything, checks, and stops the server. The mix:

  echo       ~40 % of the connections, on /echo; each sends a message (text or binary, 1 B to
             64 KiB) every --echo-interval seconds on average and checks that the echo is the same.
  rooms      the rest, in --rooms chat rooms (/chat/soak-N, every room in one worker). Random
             members send numbered messages `{sender-id}:{seq} {send time}`, --room-rate a
             second to each room. Each room has a reference member that stays from the start to
             the end: its sequence is the room's order. Every other member must receive exactly
             the reference's sequence over its span: no gap (missing), no duplicate, nothing out
             of order. Its span starts at its first message, which must come no later than the
             first message sent after its handshake completed (wsx serve joins the room before
             the 101 goes out), and ends at its own leave message (a member that leaves with a
             Close sends one and waits for it: the sender is included), or at the end of the
             run. Every message a sender sent must be in the reference's sequence, in its order.
  churn      --churn of the connections (echo and members) are replaced every minute: a member
             leaves and a new one joins a room; --abrupt of the leaves drop the TCP connection
             without a Close frame (half with an RST, half with a FIN): their members are
             checked up to the last message they got.
  slow       --slow members of a busy room (8 KiB messages at 50/s) that, one at a time, stop
             reading: the server must close each (1013; it counts it in /metrics, and then the
             member reads again at once, to find the Close after what was buffered), within 45 s,
             while the room's other members go on (their delivery latency is bounded by
             --max-stall). Then it joins again, and waits for its next turn.

Every --sample seconds it prints the server's RSS and CPU (from /proc/PID/status and stat) and
the traffic so far; at the end, the RSS slope (least squares over the samples after --warmup, in
KiB per minute), the counts and the checks. Exits 1 when a check fails (and says which), 2 when
the run could not be made (server did not start, a worker crashed).
"""
import argparse
import array
import asyncio
import bisect
import gc
import http.client
import multiprocessing as mp
import os
import queue
import random
import resource
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter

from run import free_port  # bench/run.py, beside this file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WSX = os.path.join(ROOT, "target/release/wsx")
HOST = "127.0.0.1"

# Slow members: in turn, one stops reading (with a 4 KiB receive buffer). Its busy room gets
# SLOW_SIZE-byte messages at SLOW_RATE/s: the server's buffers for it (a few MiB) fill in about
# 8 s, and the server gives up 5 s later (--slow-timeout) or when it is 1024 messages behind
# (--room-backlog, 20 s at this rate): measured 11-14 s, up to 30 s on a loaded machine. It reads again as soon as the server
# counts the disconnect in /metrics (the Close can only go out while the server waits 2 s for
# room in the socket), or after STALL s, and must then find the connection closed within
# SLOW_DRAIN s.
STALL = 45.0
SLOW_DRAIN = 15.0
SLOW_TYPICAL = 20.0  # a stall is started while the run has this long left (cut short: not counted)
SLOW_SIZE = 8192
SLOW_RATE = 50.0
SLOW_KEPT = 8  # members of the busy room that keep up (one of them sends the busy traffic)
# End of the run: at most END_DRAIN s for the last room messages, CLOSE_TIMEOUT s for a close.
END_DRAIN = 15.0
CLOSE_TIMEOUT = 10.0
OP_TIMEOUT = 20.0  # a send, a handshake, an echo's answer, a member's own message coming back


# ---------------------------------------------------------------------------------------------
# the client side: one worker process, asyncio


class Conn:
    __slots__ = ("ws", "kind", "room", "sid", "seq", "got", "state", "task", "joined_ms", "bye",
                 "wait_key", "wait_fut", "at_end")

    def __init__(self, ws, kind, room=None, sid=0):
        self.ws = ws
        self.kind = kind  # echo | ref | member | slow
        self.room = room
        self.sid = sid
        self.seq = 0  # numbered messages sent
        self.got = array.array("q")  # keys (sid << 32 | seq) received, in order
        # open -> leaving (waits for its leave message) -> closing; or abrupt; or failed
        self.state = "open"
        self.task = None
        self.joined_ms = now_ms()  # its handshake is complete: from here on, it is a member
        self.bye = None
        self.wait_key = None
        self.wait_fut = None
        self.at_end = False  # still a member when the traffic stopped


class Room:
    def __init__(self, name, busy=False):
        self.name = name
        self.path = f"/chat/{name}"
        self.busy = busy
        self.ref = None
        self.ref_ts = array.array("q")  # send time of each message of the reference's sequence
        self.members = []  # live members that take part in the traffic (not ref, not slow)
        self.all = []  # every member that ever joined (not ref, not slow), for the checks
        self.latency_max = 0


def now_ms():
    return int(time.monotonic() * 1000)


class Worker:
    def __init__(self, index, plan, opts, port, t0, reports):
        self.index = index
        self.plan = plan
        self.opts = opts
        self.url = f"ws://{HOST}:{port}"
        self.port = port
        self.t0 = t0
        self.stop_at = t0 + opts.duration
        self.reports = reports
        self.rng = random.Random(opts.seed * 1000 + index)
        self.stats = Counter()
        self.failures = Counter()  # unexpected failures, by kind
        self.examples = []  # the first few failures and mismatches, for the report
        self.rooms = [Room(name) for name in plan["rooms"]]
        self.busy = Room(plan["busy"], busy=True) if plan["busy"] else None
        self.echoes = []
        self.next_sid = index * 10_000_000 + 1
        self.stopping = False
        self.ready = False
        self.tasks = set()
        self.loop_lag_max = 0.0
        self.handshakes = None  # semaphore, made in the loop
        self.closes = None
        self.stall_turn = None  # one slow member stalls at a time
        self.churning = {}  # replacements under way: task -> what it is doing

    # -- bookkeeping

    def spawn(self, coro):
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    def fail(self, kind, detail=""):
        self.failures[kind] += 1
        if len(self.examples) < 10:
            self.examples.append(f"worker {self.index}: {kind} {detail}".strip())

    def snapshot(self, final=False):
        open_ = len(self.echoes) + sum(len(r.members) + (r.ref is not None) for r in self.all_rooms())
        return {"worker": self.index, "final": final, "ready": self.ready, "open": open_,
                "stats": dict(self.stats), "failures": dict(self.failures), "examples": self.examples,
                "loop_lag_max": self.loop_lag_max,
                "latency_max": max([r.latency_max for r in self.rooms] or [0]),
                "busy_latency_max": self.busy.latency_max if self.busy else 0,
                "cpu": sum(resource.getrusage(resource.RUSAGE_SELF)[:2])}

    def all_rooms(self):
        return self.rooms + ([self.busy] if self.busy else [])

    def time_left(self):
        return self.stop_at - time.monotonic()

    # -- connections

    async def open_ws(self, path, deflate, rcvbuf=None, max_queue=1024):
        from websockets.asyncio.client import connect
        async with self.handshakes:
            sock = None
            try:
                kwargs = {}
                if rcvbuf:
                    sock = socket.socket()
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
                    sock.setblocking(False)
                    await asyncio.wait_for(asyncio.get_running_loop().sock_connect(sock, (HOST, self.port)),
                                           OP_TIMEOUT)
                    kwargs["sock"] = sock
                ws = await asyncio.wait_for(
                    connect(self.url + path, compression="deflate" if deflate else None, proxy=None,
                            ping_interval=None, ping_timeout=None, open_timeout=OP_TIMEOUT,
                            close_timeout=CLOSE_TIMEOUT / 2, max_size=1 << 20, max_queue=max_queue,
                            **kwargs),
                    OP_TIMEOUT + 1)
                self.stats["handshakes"] += 1
                return ws
            except Exception as e:  # refused, timed out, reset: all unexpected
                if sock is not None:
                    sock.close()
                self.fail("handshake failed", f"{path}: {type(e).__name__} {e}")
                return None

    def abort(self, c, rst):
        """Drops the TCP connection without a Close frame: with an RST, or a FIN."""
        transport = c.ws.transport
        sock = transport.get_extra_info("socket")
        if rst and sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()

    async def close(self, c):
        c.state = "closing"
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await c.ws.close()
        except Exception as e:
            self.fail("close failed", f"{c.kind}: {type(e).__name__} {e}")
            return
        # the server's answer to our Close (1000); 1006: it did not answer
        if c.ws.close_code != 1000:
            self.fail(f"close answered with {c.ws.close_code}", c.kind)

    def closed(self, c, e):
        """The connection ended under a reader or a send: unexpected unless we ended it."""
        if c.state in ("closing", "abrupt", "slow"):
            return
        code = e.rcvd.code if getattr(e, "rcvd", None) is not None else 1006
        c.state = "failed"
        self.fail(f"{c.kind} connection closed by the server ({code})", str(e)[:120])
        self.forget(c)

    def forget(self, c):
        if c.kind == "echo":
            if c in self.echoes:
                self.echoes.remove(c)
        elif c.room is not None and c in c.room.members:
            c.room.members.remove(c)

    # -- rooms

    def new_sid(self):
        sid = self.next_sid
        self.next_sid += 1
        return sid

    async def send_numbered(self, c, pad=""):
        """Sends c's next numbered message; returns its key, None if it could not be sent."""
        c.seq += 1
        key = (c.sid << 32) | c.seq
        text = f"{c.sid}:{c.seq} {now_ms()}{pad}"
        try:
            async with asyncio.timeout(OP_TIMEOUT):  # (wait_for would cost a task and a turn)
                await c.ws.send(text)
        except asyncio.TimeoutError:
            if c.state in ("open", "leaving"):
                c.state = "failed"
                self.fail(f"{c.kind} send timed out")
                self.forget(c)
                self.abort(c, False)
            return None
        except Exception as e:
            self.closed(c, e)
            return None
        self.stats["sent"] += 1
        self.stats["room_sent"] += 1
        return key

    async def reader(self, c):
        """Reads a member's room messages: their keys, in order; the latency of each."""
        got = c.got
        room = c.room
        stats = self.stats
        recv = c.ws.recv
        try:
            while True:
                data = await recv(decode=False)
                sp = data.find(b" ")
                sid, _, seq = data[:sp].partition(b":")
                key = (int(sid) << 32) | int(seq)
                sp2 = data.find(b" ", sp + 1)
                ts = int(data[sp + 1:] if sp2 < 0 else data[sp + 1:sp2])
                got.append(key)
                if c.kind == "ref":
                    room.ref_ts.append(ts)
                stats["received"] += 1
                latency = now_ms() - ts
                if latency > room.latency_max:
                    room.latency_max = latency
                if key == c.wait_key and not c.wait_fut.done():
                    c.wait_fut.set_result(None)
        except asyncio.CancelledError:
            raise
        except ValueError as e:
            self.fail("unexpected room message", repr(bytes(data[:80])))
            c.state = "failed"
            self.forget(c)
            self.abort(c, False)
        except Exception as e:  # ConnectionClosed
            self.closed(c, e)

    async def join(self, room, kind="member", deflate=None):
        if deflate is None:
            deflate = not room.busy and self.rng.random() < self.opts.deflate
        ws = await self.open_ws(room.path, deflate)
        if ws is None:
            return None
        c = Conn(ws, kind, room, self.new_sid())
        c.task = self.spawn(self.reader(c))
        if kind == "ref":
            room.ref = c
            return c
        room.all.append(c)
        room.members.append(c)
        self.stats["joins"] += 1
        return c

    async def leave(self, c, abrupt, rst, me=None):
        room = c.room
        if c in room.members:
            room.members.remove(c)
        if abrupt:
            c.state = "abrupt"
            self.abort(c, rst)
            self.stats["leaves_abrupt"] += 1
            return
        c.state = "leaving"
        c.wait_fut = asyncio.get_running_loop().create_future()
        c.wait_key = (c.sid << 32) | (c.seq + 1)
        self.churning[me] = "member: sending its leave message"
        key = await self.send_numbered(c)
        if key is None:
            return
        self.churning[me] = "member: waiting for its leave message"
        try:
            async with asyncio.timeout(OP_TIMEOUT):
                await asyncio.shield(c.wait_fut)
            c.bye = key
        except asyncio.TimeoutError:
            if c.state == "leaving":
                self.fail("member's own leave message did not come back")
        if c.state == "leaving":
            self.churning[me] = "member: closing"
            await self.close(c)
            self.stats["leaves"] += 1

    async def room_traffic(self, room):
        """Numbered messages from random members, `rate` a second on average (on a schedule:
        a busy event loop delays them, then catches up)."""
        rate = SLOW_RATE if room.busy else self.opts.room_rate
        pad = " " + "x" * SLOW_SIZE if room.busy else ""
        rng = self.rng
        due = time.monotonic()
        while not self.stopping:
            due += 1 / rate if room.busy else rng.expovariate(rate)
            due = max(due, time.monotonic() - 1)  # after a long delay, one second's worth at most
            if due > time.monotonic():
                await asyncio.sleep(due - time.monotonic())
            if self.stopping:
                return
            if room.busy:  # one sender, the first kept-up member
                sender = room.members[0] if room.members else None
            else:
                sender = rng.choice(room.members) if room.members else None
            if sender is not None and sender.state == "open":
                if await self.send_numbered(sender, pad) is not None and room.busy:
                    self.stats["busy_sent"] += 1

    async def slow_member(self, room, i):
        """Joins the busy room and reads; in its turn (one slow member stalls at a time), stops
        reading until the server counts a slow disconnect (at most STALL s), then reads at once:
        it must find the connection closed, with 1013 after what was buffered."""
        await asyncio.sleep(i)
        while self.time_left() > SLOW_TYPICAL + 5 and not self.stopping:
            ws = await self.open_ws(room.path, False, rcvbuf=4096, max_queue=16)
            if ws is None:
                await asyncio.sleep(5)
                continue
            c = Conn(ws, "slow", room)
            c.state = "slow"
            reading = asyncio.create_task(self.drain(ws))
            try:
                async with self.stall_turn:
                    reading.cancel()  # recv is cancellation-safe
                    if not await self.slow_stall(c):
                        return
            finally:
                reading.cancel()
                if not ws.transport.is_closing():
                    self.abort(c, False)

    async def drain(self, ws):
        """Reads and drops; returns how the connection ended (its close code; 1006: no Close)."""
        try:
            while True:
                await ws.recv(decode=False)
                self.stats["received"] += 1
        except asyncio.CancelledError:
            raise
        except Exception as e:
            return e.rcvd.code if getattr(e, "rcvd", None) is not None else 1006

    async def slow_stall(self, c):
        if c.ws.close_code is not None or c.ws.transport.is_closing():
            self.fail("slow member closed before it stopped reading")
            return True
        if self.time_left() < SLOW_TYPICAL:
            return False
        before = await asyncio.to_thread(slow_disconnects, self.port)
        stalled = time.monotonic()
        while time.monotonic() - stalled < STALL:  # reads nothing: its socket's buffers fill
            await asyncio.sleep(0.2)
            if await asyncio.to_thread(slow_disconnects, self.port) > before:
                break
        waited = time.monotonic() - stalled
        self.stats["slow_stalled"] += 1
        self.stats["slow_wait_ms_max"] = max(self.stats["slow_wait_ms_max"], int(waited * 1000))
        self.stats["slow_wait_ms_sum"] += int(waited * 1000)
        try:
            async with asyncio.timeout(SLOW_DRAIN):
                code = await self.drain(c.ws)
        except asyncio.TimeoutError:
            self.fail("slow member not disconnected", f"still open {waited + SLOW_DRAIN:.0f} s after it stopped reading")
            return True
        if code == 1013:
            self.stats["slow_closed_1013"] += 1
        elif code == 1006:
            self.stats["slow_closed_no_frame"] += 1
        else:
            self.fail(f"slow member closed with {code}")
        return True

    async def echo_loop(self, c):
        rng = self.rng
        n = 0
        try:
            while not self.stopping:
                await asyncio.sleep(self.opts.echo_interval * rng.uniform(0.5, 1.5))
                if self.stopping or c.state != "open":
                    return
                n += 1
                r = rng.random()
                if r < 0.6:
                    payload = f"{c.sid}:{n}:" + rng.randbytes(rng.randint(1, 256)).hex()
                elif r < 0.99:
                    payload = rng.randbytes(rng.randint(1, 4096))
                else:
                    payload = rng.randbytes(65536)
                async with asyncio.timeout(OP_TIMEOUT):
                    await c.ws.send(payload)
                self.stats["sent"] += 1
                try:
                    async with asyncio.timeout(OP_TIMEOUT):
                        reply = await c.ws.recv()
                except asyncio.TimeoutError:
                    c.state = "failed"
                    self.fail("echo not answered", f"in {OP_TIMEOUT:.0f} s")
                    self.forget(c)
                    self.abort(c, False)
                    return
                self.stats["received"] += 1
                if reply == payload:
                    self.stats["echo_ok"] += 1
                else:
                    self.stats["echo_mismatch"] += 1
                    if len(self.examples) < 10:
                        self.examples.append(f"worker {self.index}: echo mismatch: sent {payload[:40]!r}"
                                             f" ({len(payload)}), got {reply[:40]!r} ({len(reply)})")
        except asyncio.CancelledError:
            raise
        except asyncio.TimeoutError:
            if c.state == "open":
                c.state = "failed"
                self.fail("echo send timed out")
                self.forget(c)
                self.abort(c, False)
        except Exception as e:
            self.closed(c, e)

    async def open_echo(self):
        ws = await self.open_ws("/echo", self.rng.random() < self.opts.deflate)
        if ws is None:
            return
        c = Conn(ws, "echo", sid=self.new_sid())
        self.echoes.append(c)
        if self.ready:
            c.task = self.spawn(self.echo_loop(c))

    # -- churn

    async def churn_one(self):
        started = time.monotonic()
        me = asyncio.current_task()
        self.churning[me] = "start"
        try:
            await self.replace_one(me)
        finally:
            del self.churning[me]
            self.stats["churn_done"] += 1
            ms = int((time.monotonic() - started) * 1000)
            self.stats["churn_ms_max"] = max(self.stats["churn_ms_max"], ms)

    async def replace_one(self, me):
        rng = self.rng
        members = sum(len(r.members) for r in self.rooms)
        abrupt = rng.random() < self.opts.abrupt
        rst = rng.random() < 0.5
        if self.echoes and rng.random() * (members + len(self.echoes)) < len(self.echoes):
            c = rng.choice(self.echoes)
            self.echoes.remove(c)
            if c.task:
                self.churning[me] = "echo: stopping its task"
                c.task.cancel()
                try:
                    await c.task
                except BaseException:
                    pass
            if c.state != "open":
                return
            if abrupt:
                c.state = "abrupt"
                self.abort(c, rst)
                self.stats["leaves_abrupt"] += 1
            else:
                self.churning[me] = "echo: closing"
                await self.close(c)
                self.stats["leaves"] += 1
            if not self.stopping:
                self.churning[me] = "echo: opening"
                await self.open_echo()
        else:
            rooms = [r for r in self.rooms if r.members]
            if not rooms:
                return
            c = rng.choice(rng.choice(rooms).members)
            self.churning[me] = "member: leaving"
            await self.leave(c, abrupt, rst, me)
            if not self.stopping:
                self.churning[me] = "member: joining"
                await self.join(rng.choice(self.rooms))

    async def churn(self):
        total = sum(len(r.members) for r in self.rooms) + len(self.echoes)
        per_second = self.opts.churn * total / 60
        due = 0.0
        while not self.stopping:
            await asyncio.sleep(1)
            due += per_second
            while due >= 1 and not self.stopping:
                due -= 1
                self.spawn(self.churn_one())

    # -- the run

    async def ticker(self):
        """Reports every --sample s, and measures how late the event loop runs (overload)."""
        next_report = time.monotonic()
        while True:
            t = time.monotonic()
            await asyncio.sleep(0.1)
            if not self.stopping:  # the end's checks hold the loop, on purpose
                self.loop_lag_max = max(self.loop_lag_max, time.monotonic() - t - 0.1)
            if time.monotonic() >= next_report:
                next_report += self.opts.sample / 2
                self.reports.put(self.snapshot())

    async def run(self):
        self.handshakes = asyncio.Semaphore(64)
        self.stall_turn = asyncio.Lock()
        ticker = asyncio.create_task(self.ticker())
        # ramp up: the references first, then everyone else, interleaved
        for room in self.all_rooms():
            if await self.join(room, "ref", deflate=False) is None:
                self.fail("reference member could not join", room.name)
        jobs = [("echo", None)] * self.plan["echo"]
        for room, n in zip(self.rooms, self.plan["members"]):
            jobs += [("member", room)] * n
        if self.busy:
            jobs += [("member", self.busy)] * SLOW_KEPT
        self.rng.shuffle(jobs)
        if self.busy:  # the busy room's sender joins first
            jobs.remove(("member", self.busy))
            jobs.insert(0, ("member", self.busy))
        pending = set()
        for kind, room in jobs:
            if time.monotonic() > self.stop_at:
                break
            pending.add(asyncio.create_task(self.open_echo() if kind == "echo" else self.join(room)))
            if len(pending) >= 128:
                _, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        if pending:
            await asyncio.wait(pending)
        self.ready = True
        self.stats["ramp_ms"] = int((time.monotonic() - self.t0) * 1000)
        gc.freeze()  # the connections' objects live to the end: no more collection passes over them
        self.reports.put(self.snapshot())
        # traffic
        for c in self.echoes:
            c.task = self.spawn(self.echo_loop(c))
        drivers = [self.spawn(self.room_traffic(r)) for r in self.all_rooms()]
        drivers.append(self.spawn(self.churn()))
        if self.busy:
            drivers += [self.spawn(self.slow_member(self.busy, i)) for i in range(self.plan["slow"])]
        await asyncio.sleep(max(0.0, self.time_left()))
        await self.finish(drivers)
        ticker.cancel()
        self.reports.put(self.snapshot(final=True))

    async def finish(self, drivers):
        self.stopping = True
        for t in drivers:
            t.cancel()
        for c in self.echoes:
            if c.task:
                c.task.cancel()
        # what is under way (leaves, joins) ends within its own timeouts
        busy = list(self.churning)
        if busy:
            await asyncio.wait(busy, timeout=2 * OP_TIMEOUT + CLOSE_TIMEOUT)
        for stage in self.churning.values():
            self.fail("a replacement did not finish", stage)
        # the last room messages reach every member: until nothing arrives for a second
        deadline = time.monotonic() + END_DRAIN
        stable_since, last = time.monotonic(), None
        while time.monotonic() < deadline and time.monotonic() - stable_since < 1:
            if self.stats["received"] != last:
                stable_since, last = time.monotonic(), self.stats["received"]
            await asyncio.sleep(0.1)
        # close everyone
        self.closes = asyncio.Semaphore(256)

        async def close_one(c):
            async with self.closes:
                await self.close(c)

        live = [c for c in self.echoes if c.state == "open"]
        for room in self.all_rooms():
            for m in room.members:
                if m.state == "open":
                    m.at_end = True
                    live.append(m)
            if room.ref is not None and room.ref.state == "open":
                room.ref.at_end = True
                live.append(room.ref)
        await asyncio.gather(*(close_one(c) for c in live))
        for t in list(self.tasks):
            t.cancel()
        self.echoes = []
        for room in self.all_rooms():
            room.members = []
            self.check_room(room)
        self.stats["client_cpu_ms"] = int(sum(resource.getrusage(resource.RUSAGE_SELF)[:2]) * 1000)

    # -- the checks

    def check_room(self, room):
        """Checks every member's sequence against the reference's (the room's order).

        A member's span starts at its first message and ends at its leave message (left with a
        Close), at the reference's end (still there when the traffic stopped), or at its last
        message (dropped, or failed). Over its span it must have exactly the reference's
        messages, in the same order. Its span must start no later than the first message sent
        after its handshake completed (then it was a member: `wsx serve` joins the room before
        its 101 goes out). Every sender's messages must be in the reference's sequence, in the
        order sent, all of them when it left with a Close or stayed to the end.
        """
        ref = room.ref
        st = self.stats
        if ref is None or not ref.at_end:
            self.fail("room not checked: its reference member did not stay", room.name)
            return
        seq = ref.got
        where = {}
        last = {}  # sender -> highest seq in the reference's sequence
        for i, key in enumerate(seq):
            if key in where:
                st["room_duplicated"] += 1
                continue
            where[key] = i
            sid, n = key >> 32, key & 0xFFFFFFFF
            before = last.get(sid, 0)
            if n <= before:
                st["room_out_of_order"] += 1
            elif n > before + 1:
                st["room_missing"] += n - before - 1  # that sender's messages in between
            last[sid] = max(before, n)
        for m in room.all:
            if m.state == "closing" and (m.at_end or m.bye is not None) and last.get(m.sid, 0) < m.seq:
                st["room_missing"] += m.seq - last.get(m.sid, 0)
                self.example(f"{room.name}: sender {m.sid} sent {m.seq}, the reference got up to "
                             f"{last.get(m.sid, 0)}")
        # the running maximum of the send times, to find the first message sent after a join
        sent_by = array.array("q")
        high = -1
        for ts in room.ref_ts:
            high = max(high, ts)
            sent_by.append(high)
        end = len(seq) - 1
        for m in room.all:
            got = m.got
            kept_up = m.state == "closing" and (m.at_end or m.bye is not None)
            st["members_checked"] += 1
            due = bisect.bisect_right(sent_by, m.joined_ms)  # sent after it joined
            if not got:
                if kept_up and due <= (end if m.at_end else where.get(m.bye, -1)):
                    st["room_missing"] += 1
                    self.example(f"{room.name}: member {m.sid} kept up and received nothing")
                continue
            first = where.get(got[0])
            # contiguous from its first message (a leaver may get more after its leave message,
            # until its Close is answered), and, when it kept up, up to the end of its span
            ok = first is not None and first <= due and got == seq[first:first + len(got)]
            if kept_up:
                stop = end if m.at_end else where.get(m.bye, -1)
                ok = ok and first + len(got) - 1 >= stop
            else:  # left without a Close, or failed: what it got, up to its last
                stop = -1
            if not ok:
                self.count_errors(room, m, got, where, first, stop, kept_up, due)

    def example(self, text):
        if len(self.examples) < 10:
            self.examples.append(f"worker {self.index}: {text}")

    def count_errors(self, room, m, got, where, first, stop, kept_up, due):
        st = self.stats
        seen = set()
        highest = -1
        dup = ooo = unknown = 0
        for key in got:
            i = where.get(key)
            if i is None:
                unknown += 1
                continue
            if i in seen:
                dup += 1
                continue
            seen.add(i)
            if i < highest:
                ooo += 1
            highest = max(highest, i)
        if first is None:
            first = min(seen) if seen else 0
        stop = max(stop, max(seen) if seen else first)
        late = max(0, first - due)  # sent after it joined, before its first message
        missing = late + sum(1 for i in range(first, stop + 1) if i not in seen)
        st["room_missing"] += missing + unknown  # unknown: a message the reference never got
        st["room_duplicated"] += dup
        st["room_out_of_order"] += ooo
        self.example(f"{room.name}: member {m.sid} ({m.state}, kept up: {kept_up}): {missing} missing "
                     f"({late} before its first), {unknown} unknown, {dup} duplicated, {ooo} out of "
                     f"order over positions {first}..{stop} of {len(where)}")


def worker_main(index, plan, opts, port, t0, reports):
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us (SIGTERM: the default)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    worker = Worker(index, plan, opts, port, t0, reports)
    try:
        asyncio.run(worker.run())
    except BaseException:
        reports.put({"worker": index, "crashed": traceback.format_exc()})
        raise


# ---------------------------------------------------------------------------------------------
# the parent: server, workers, samples, summary


def raise_nofile():
    """Raises the soft open files limit to the hard one; returns the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 1 << 20
    if soft == resource.RLIM_INFINITY or soft >= want:
        return soft if soft != resource.RLIM_INFINITY else want
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    except (ValueError, OSError):
        pass
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def proc_sample(pid):
    """(RSS in KiB, CPU seconds) of a process, from /proc."""
    rss = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return rss, ticks / os.sysconf("SC_CLK_TCK")


def slow_disconnects(port):
    return metrics(port).get("wsx_slow_disconnects_total", -1)


def metrics(port):
    """The server's /metrics, as {name: value}; {} when it does not answer."""
    try:
        conn = http.client.HTTPConnection(HOST, port, timeout=5)
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
        conn.close()
    except (OSError, http.client.HTTPException):
        return {}
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            try:
                values[name] = float(value)
            except ValueError:
                pass
    return values


def slope_per_min(points):
    """Least-squares slope of (seconds, value) points, per minute."""
    n = len(points)
    mx = sum(t for t, _ in points) / n
    my = sum(v for _, v in points) / n
    sxx = sum((t - mx) ** 2 for t, _ in points)
    return 60 * sum((t - mx) * (v - my) for t, v in points) / sxx if sxx else 0.0


def plan_workers(opts):
    """Splits the connections into workers: echo connections, rooms and their members."""
    n = opts.connections
    slow = opts.slow
    busy_size = 1 + SLOW_KEPT + slow if slow else 0
    rest = n - busy_size
    echo = round(rest * opts.echo_share)
    in_rooms = rest - echo
    rooms = opts.rooms
    members = [in_rooms // rooms - 1 + (i < in_rooms % rooms) for i in range(rooms)]  # 1: the reference
    plans = []
    for w in range(opts.workers):
        mine = list(range(w, rooms, opts.workers))
        plans.append({
            "echo": echo // opts.workers + (w < echo % opts.workers),
            "rooms": [f"soak-{i}" for i in mine],
            "members": [members[i] for i in mine],
            "busy": None,
            "slow": 0,
        })
    if slow:
        # the busy room in a worker of its own: its timing (the slow members read again as soon
        # as the server gives up on them) does not wait for a loop busy with thousands of others
        plans.append({"echo": 0, "rooms": [], "members": [], "busy": "soak-busy", "slow": slow})
    return plans


def start_server(opts, port, log):
    limit = raise_nofile()

    def raise_limit():  # in the child, before exec
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))

    cmd = [opts.wsx, "serve", "--listen", f"{HOST}:{port}", "--log", "warn",
           "--max-connections", str(opts.connections + opts.connections // 5 + 100)]
    proc = subprocess.Popen(cmd, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                            preexec_fn=raise_limit, start_new_session=True)
    for _ in range(200):
        if proc.poll() is not None:
            break
        try:
            socket.create_connection((HOST, port), timeout=0.2).close()
            return proc
        except OSError:
            time.sleep(0.05)
    stop_server(proc)
    raise SystemExit(f"wsx serve did not start on {HOST}:{port} ({' '.join(cmd)})")


def stop_server(proc):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    ap.add_argument("--ci", action="store_true",
                    help="the CI preset: 1000 connections for 60 s, samples every 5 s (other options still apply)")
    ap.add_argument("--wsx", default=WSX, help="the wsx binary (default: target/release/wsx)")
    ap.add_argument("--connections", type=int, help="connections open at once (default 10000; --ci 1000)")
    ap.add_argument("--duration", type=float, help="seconds of traffic, ramp-up included (default 600; --ci 60)")
    ap.add_argument("--sample", type=float, help="seconds between RSS/CPU samples (default 10; --ci 5)")
    ap.add_argument("--warmup", type=float,
                    help="seconds before the RSS samples that the slope is fitted on (default: a quarter of "
                         "--duration, at least 30 s, and at least until every connection is open)")
    ap.add_argument("--workers", type=int,
                    help="client processes (default: one per 2500 connections, at most 4; and one more "
                         "for the busy room)")
    ap.add_argument("--rooms", type=int, help="chat rooms (default: one per 500 connections, at least 2)")
    ap.add_argument("--echo-share", type=float, default=0.4, help="share of the connections on /echo")
    ap.add_argument("--echo-interval", type=float, default=5.0, help="mean seconds between an echo connection's messages")
    ap.add_argument("--room-rate", type=float, default=1.0, help="messages a second sent to each room")
    ap.add_argument("--churn", type=float, default=0.05, help="share of the connections replaced every minute")
    ap.add_argument("--abrupt", type=float, default=0.2, help="share of the leaves without a close frame")
    ap.add_argument("--deflate", type=float, default=0.5,
                    help="share of the connections (but the busy room's) that offer permessage-deflate")
    ap.add_argument("--slow", type=int, default=3, help="slow members in the busy room (they stop reading one at a time)")
    ap.add_argument("--max-stall", type=float, default=4.0,
                    help="most seconds a message may take to reach the busy room's members that keep up "
                         "(the server's --slow-timeout is 5 s: a room that waited for its slow member would show)")
    ap.add_argument("--max-failures", type=int,
                    help="unexpected connection failures tolerated (default: 0.1 %% of --connections)")
    ap.add_argument("--max-rss-slope-kib-per-min", type=float,
                    help="RSS growth after the warm-up that fails the run (default: see rss_slope_bound "
                         "in this file: 256 for the default run, 2048 for --ci)")
    ap.add_argument("--seed", type=int, default=1, help="of the random choices (sizes, who sends, who leaves)")
    opts = ap.parse_args(argv)
    preset = {"connections": 1000, "duration": 60, "sample": 5} if opts.ci else \
        {"connections": 10000, "duration": 600, "sample": 10}
    for name, value in preset.items():
        if getattr(opts, name) is None:
            setattr(opts, name, value)
    if opts.warmup is None:
        opts.warmup = max(30.0, opts.duration / 4)
    if opts.workers is None:
        opts.workers = max(1, min(4, round(opts.connections / 2500)))
    if opts.rooms is None:
        opts.rooms = max(2, opts.connections // 500)
    if opts.max_failures is None:
        opts.max_failures = opts.connections // 1000
    if opts.max_rss_slope_kib_per_min is None:
        opts.max_rss_slope_kib_per_min = rss_slope_bound(opts)
    if opts.connections < 100:
        ap.error("--connections: at least 100")
    return opts


def rss_slope_bound(opts):
    """The default bound of the RSS slope, in KiB a minute: the largest of three.

    A leak: an idle wsx connection costs about 2 KiB of server memory (BENCHMARKS.md, e), a busy
    one a few KiB more. A server that kept what a closed connection held would grow by that
    for every connection replaced: at --churn 0.05 of 10,000 connections, 500 a minute, 1,000
    KiB a minute or more. A quarter of that (250 KiB/min there) catches a leak of a quarter of
    a connection per connection replaced.

    A floor, 256 KiB/min: 10,000 connections deliver about 10,000 messages a second, so a leak
    of a byte per message or so; below that a slope means little over minutes.

    One-off growth: a heap arena or a table that doubles, 1 MiB at once, within the fit window
    of W minutes must not fail the run: 1024 / W KiB/min (137 for the 7.5 minutes of the
    default run, 2 MiB/min for the 30 s of --ci, which then catches gross leaks only).
    (Measured at a steady state without deflate: the RSS does not move at all from one sample
    to the next.)
    """
    leak = 0.25 * 2 * opts.churn * opts.connections
    window_min = max(0.25, (opts.duration - opts.warmup) / 60)
    return max(leak, 256.0, 1024 / window_min)


def interrupted(signum, frame):
    raise KeyboardInterrupt


def main():
    # Ctrl-C, and a SIGTERM (a CI's timeout), end the run the same way: workers and server stopped
    signal.signal(signal.SIGINT, interrupted)
    signal.signal(signal.SIGTERM, interrupted)
    opts = parse_args()
    if not os.path.exists(opts.wsx):
        sys.exit(f"{opts.wsx} is missing: cargo build --release -p wsx-cli (or --wsx PATH)")
    try:
        import websockets  # noqa: F401  (checked here, used in the workers)
    except ImportError:
        sys.exit("needs the websockets package: python3 -m venv target/interop-venv && "
                 "target/interop-venv/bin/pip install -r interop/requirements.txt, then run with "
                 "target/interop-venv/bin/python")
    limit = raise_nofile()
    per_worker = opts.connections / opts.workers + 200
    if per_worker > limit or opts.connections + 200 > limit:
        sys.exit(f"open files limit {limit} is too low for {opts.connections} connections "
                 f"({opts.workers} workers); raise the hard limit (ulimit -Hn) or use more --workers")
    plans = plan_workers(opts)
    log = tempfile.NamedTemporaryFile(prefix="wsx-soak-server-", suffix=".log", delete=False)
    port = free_port()
    print(f"soak: {opts.connections} connections ({opts.workers} workers, {opts.rooms} rooms"
          f"{', 1 busy room with ' + str(opts.slow) + ' slow members in a worker of its own' if opts.slow else ''}) for "
          f"{opts.duration:g} s against {opts.wsx} on {HOST}:{port}; server log {log.name}", file=sys.stderr)
    started = time.monotonic()
    server = None
    workers = []
    reports = mp.get_context("fork").Queue()
    code = 2
    try:
        server = start_server(opts, port, log)
        t0 = time.monotonic()
        for i, plan in enumerate(plans):
            p = mp.get_context("fork").Process(target=worker_main, args=(i, plan, opts, port, t0, reports),
                                               daemon=True)
            p.start()
            workers.append(p)
        code = supervise(opts, server, port, workers, reports, t0)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        code = 130
    finally:
        for p in workers:
            if p.is_alive():
                p.terminate()
        for p in workers:
            p.join(5)
            if p.is_alive():
                p.kill()
                p.join()
        if server is not None:
            stop_server(server)
        log.close()
        if code == 0:
            os.unlink(log.name)
        print(f"took {time.monotonic() - started:.0f} s", file=sys.stderr)
    sys.exit(code)


def supervise(opts, server, port, workers, reports, t0):
    latest = {}
    finals = {}
    samples = []  # (t, rss KiB, cpu s)
    ramp_done = None
    prev_cpu, prev_t = 0.0, t0
    next_sample = t0
    end_by = t0 + opts.duration + 2 * OP_TIMEOUT + CLOSE_TIMEOUT + END_DRAIN + 60
    header = False
    while len(finals) < len(workers):
        now = time.monotonic()
        if now > end_by:
            print(f"workers did not finish: {sorted(set(range(len(workers))) - set(finals))}", file=sys.stderr)
            return 2
        if server.poll() is not None:
            print(f"wsx serve exited ({server.returncode}) during the run", file=sys.stderr)
            return 1
        try:
            r = reports.get(timeout=max(0.05, min(1.0, next_sample - now)))
            if "crashed" in r:
                print(f"worker {r['worker']} crashed:\n{r['crashed']}", file=sys.stderr)
                return 2
            latest[r["worker"]] = r
            if r["final"]:
                finals[r["worker"]] = r
        except queue.Empty:
            pass
        for p in workers:
            if not p.is_alive() and workers.index(p) not in finals:
                # a last report may still be in the queue
                try:
                    while True:
                        r = reports.get(timeout=1)
                        latest[r["worker"]] = r
                        if r.get("final"):
                            finals[r["worker"]] = r
                        if "crashed" in r:
                            print(f"worker {r['worker']} crashed:\n{r['crashed']}", file=sys.stderr)
                            return 2
                except queue.Empty:
                    pass
                if workers.index(p) not in finals:
                    print(f"worker {workers.index(p)} died ({p.exitcode})", file=sys.stderr)
                    return 2
        if ramp_done is None and len(latest) == len(workers) and all(r["ready"] for r in latest.values()):
            ramp_done = time.monotonic() - t0
            print(f"{ramp_done:6.1f} s  all connections open", file=sys.stderr, flush=True)
        now = time.monotonic()
        if now >= next_sample and now < t0 + opts.duration + 0.5:
            next_sample += opts.sample
            rss, cpu = proc_sample(server.pid)
            t = now - t0
            samples.append((t, rss, cpu))
            m = metrics(port)
            agg = aggregate(latest.values())
            if not header:
                print("     t    RSS KiB  server CPU  open (server)     sent   received  failures  slow closed",
                      file=sys.stderr)
                header = True
            print(f"{t:6.1f} s {rss:10,} {100 * (cpu - prev_cpu) / (now - prev_t):9.0f} %"
                  f" {agg['open']:6} ({m.get('wsx_connections_open', -1):6.0f}) {agg['stats']['sent']:9,}"
                  f" {agg['stats']['received']:10,} {sum(agg['failures'].values()):9}"
                  f" {agg['stats']['slow_closed_1013'] + agg['stats']['slow_closed_no_frame']:12}",
                  file=sys.stderr, flush=True)
            prev_cpu, prev_t = cpu, now
    # the end: the server must count no connection open, once everyone closed
    open_left = -1
    for _ in range(100):
        open_left = metrics(port).get("wsx_connections_open", -1)
        if open_left == 0:
            break
        time.sleep(0.1)
    m = metrics(port)
    rss, cpu = proc_sample(server.pid)
    return summary(opts, finals.values(), samples, ramp_done, m, open_left, rss, cpu, time.monotonic() - t0)


def aggregate(reports):
    stats, failures = Counter(), Counter()
    examples = []
    out = {"open": 0, "loop_lag_max": 0.0, "latency_max": 0, "busy_latency_max": 0, "cpu": 0.0}
    for r in reports:
        for k, v in r["stats"].items():
            stats[k] = max(stats[k], v) if k.endswith("_max") else stats[k] + v
        failures.update(r["failures"])
        examples += r["examples"]
        out["open"] += r["open"]
        out["cpu"] += r["cpu"]
        for k in ("loop_lag_max", "latency_max", "busy_latency_max"):
            out[k] = max(out[k], r[k])
    out.update(stats=stats, failures=failures, examples=examples)
    return out


def summary(opts, finals, samples, ramp_done, m, open_left, rss_end, cpu_end, elapsed):
    agg = aggregate(finals)
    st, failures = agg["stats"], agg["failures"]
    warm = max(opts.warmup, ramp_done or 0)
    fit = [(t, rss) for t, rss, _ in samples if t >= warm]
    slope = slope_per_min(fit) if len(fit) >= 3 else None
    problems = []
    out = []
    out.append(f"soak: {opts.connections} connections, {opts.duration:g} s, {opts.workers} workers"
               f"{' (+1 for the busy room)' if opts.slow else ''}, "
               f"{opts.rooms} rooms, churn {opts.churn:g}/min, {opts.slow} slow; all open after "
               f"{ramp_done or 0:.1f} s; run {elapsed:.0f} s")
    if slope is None:
        out.append(f"RSS slope: not enough samples after the warm-up ({warm:.0f} s): {len(fit)}")
    else:
        half = len(fit) // 2
        halves = (f"; first half {slope_per_min(fit[:half + 1]):+,.1f}, second half "
                  f"{slope_per_min(fit[half:]):+,.1f}") if len(fit) >= 6 else ""
        out.append(f"RSS slope after {warm:.0f} s: {slope:+,.1f} KiB/min over {len(fit)} samples "
                   f"({fit[0][1]:,} -> {fit[-1][1]:,} KiB{halves}; bound {opts.max_rss_slope_kib_per_min:,.0f})")
        if slope > opts.max_rss_slope_kib_per_min:
            problems.append(f"RSS grows {slope:,.1f} KiB/min after the warm-up, over the bound "
                            f"{opts.max_rss_slope_kib_per_min:,.0f}")
    peak = max((s[1] for s in samples), default=0)
    out.append(f"RSS: peak {peak:,} KiB, at the end (all closed) {rss_end:,} KiB; server CPU {cpu_end:.1f} s "
               f"({100 * cpu_end / elapsed:.0f} % of one core); client CPU {agg['cpu']:.1f} s, "
               f"client loop lag max {agg['loop_lag_max'] * 1000:.0f} ms")
    out.append(f"messages: sent {st['sent']:,} (room {st['room_sent']:,}), received {st['received']:,}; "
               f"server counted {m.get('wsx_messages_received_total', 0):,.0f} in, "
               f"{m.get('wsx_messages_sent_total', 0):,.0f} out")
    out.append(f"connections: {st['handshakes']:,} opened, {st['joins']:,} room joins, "
               f"{st['leaves']:,} closed leaves, {st['leaves_abrupt']:,} abrupt drops (replacements: "
               f"{st['churn_done']:,}, {st['churn_ms_max'] / 1000:.1f} s at most); server counted "
               f"{m.get('wsx_handshakes_accepted_total', 0):,.0f} handshakes")
    out.append(f"echo: {st['echo_ok']:,} matched, {st['echo_mismatch']} mismatched")
    out.append(f"rooms: {st['members_checked']:,} members checked; {st['room_missing']} missing, "
               f"{st['room_duplicated']} duplicated, {st['room_out_of_order']} out of order; "
               f"latency max {agg['latency_max']:,} ms, busy room {agg['busy_latency_max']:,} ms "
               f"({st['busy_sent'] / max(1.0, opts.duration - (ramp_done or 0)):.0f} messages/s)")
    slow_closed = st["slow_closed_1013"] + st["slow_closed_no_frame"]
    mean_wait = st["slow_wait_ms_sum"] / st["slow_stalled"] / 1000 if st["slow_stalled"] else 0
    out.append(f"slow members: {st['slow_stalled']} stalled, {slow_closed} closed by the server "
               f"({st['slow_closed_1013']} with 1013, {st['slow_closed_no_frame']} without a Close frame), "
               f"after {mean_wait:.1f} s on average, {st['slow_wait_ms_max'] / 1000:.1f} s at most; "
               f"the server counted {m.get('wsx_slow_disconnects_total', 0):.0f} slow disconnects")
    unexpected = sum(failures.values())
    out.append(f"unexpected failures: {unexpected} (bound {opts.max_failures})"
               + "".join(f"\n  {n} x {k}" for k, n in failures.most_common()))
    if open_left != 0:
        problems.append(f"the server still counts {open_left:.0f} connections open after all closed")
    if st["echo_mismatch"]:
        problems.append(f"{st['echo_mismatch']} echo mismatches")
    for k in ("room_missing", "room_duplicated", "room_out_of_order"):
        if st[k]:
            problems.append(f"{st[k]} room messages {k[5:].replace('_', ' ')}")
    if unexpected > opts.max_failures:
        problems.append(f"{unexpected} unexpected connection failures, over the bound {opts.max_failures}")
    if agg["busy_latency_max"] > opts.max_stall * 1000:
        problems.append(f"the busy room stalled: a message took {agg['busy_latency_max']:,} ms to its members "
                        f"(bound {opts.max_stall:g} s)")
    if m.get("wsx_slow_disconnects_total", 0) < slow_closed:
        problems.append("the server counted fewer slow disconnects than the slow members saw")
    if opts.slow and not st["slow_stalled"]:
        problems.append("no slow member stalled: the run is too short for them")
    if st["members_checked"] == 0:
        problems.append("no room member was checked")
    if agg["examples"]:
        out.append("first failures:" + "".join(f"\n  {e}" for e in agg["examples"][:10]))
    print("\n".join(out))
    if problems:
        print("FAILED:" + "".join(f"\n  {p}" for p in problems))
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    main()
