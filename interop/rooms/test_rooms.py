#!/usr/bin/env python3
"""The chat rooms' `superchat` protocol against real components: `wsx serve` nodes, redis-server
and nginx (running deploy/nginx.conf), all started here on free 127.0.0.1 ports and stopped by
their process ids. The client is Python `websockets`, written from docs/rooms.md only.

usage: test_rooms.py --wsx target/debug/wsx [--only NAME[,NAME]] [--keep] [--chaos-each N]
                     [--chaos-interval SECONDS] [--cluster-chaos-each N]

Tests (NAME):
  history   join with history, one node in memory and one node with Redis (plus the shared
            `chat` room, binary messages, HTTP 400 on malformed parameters)
  resume    resume across two nodes on one Redis: exactly the missed messages, then live ones
  too_old   --history 5 and --history-ttl: recovered=false, lost=too_old / epoch
  redis     Redis restarted empty: a new epoch for the connected, lost=epoch for a resume
  presence  presence across two nodes, joins and leaves, a killed node's members leave
  rate      --room-rate: an `error` (reason rate) per run of dropped messages, no gap
  chaos     three nodes behind nginx, one Redis, 9 members and 3 senders; one node killed, one
            drained; every member's (epoch, offset) sequence gapless and identical, every
            message once
  cluster   a 3-master Redis Cluster (sharded pub/sub), two nodes, one room on each master:
            history, resume across nodes both ways, presence, each room's offsets and log on its master
            only (redis-cli hget, exists; MOVED elsewhere), no message across rooms, a killed node's
            members leave every room
  cluster_outage  one master killed (data gone) and restarted: the nodes come back, rooms on
            the other masters keep their epoch, the restarted master's room gets a new one
  cluster_chaos  the chaos scenario on the Redis Cluster (--cluster-chaos-each per sender)

Prints one `ok`/`FAIL` line per check and the counts; exits 1 when a check failed.
Needs redis-server, redis-cli and nginx (Debian packages redis-server, redis-tools, nginx) and
websockets (interop/requirements.txt).
"""
import argparse
import asyncio
import json
import os
import signal
import sys
import time
import traceback

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import Env, Report, install_exit_handlers, program  # noqa: E402
from superchat import (  # noqa: E402
    Conn, Follower, ProtocolError, chat_url, http_refusal, open_ws, payload,
)
from websockets.exceptions import ConnectionClosed  # noqa: E402

R = Report()


def offsets(msgs):
    return [m.get("offset") for m in msgs]


def texts(msgs):
    return [payload(m) for m in msgs]


def base(node):
    return f"ws://{node.addr}"


async def send_all(conn, items):
    for t in items:
        await conn.send(t)


# --------------------------------------------------------------------------------------------
# 1. Join with history
# --------------------------------------------------------------------------------------------
async def t_history(env, with_redis):
    redis = await env.redis() if with_redis else None
    node = await env.node("n1", redis)
    b0 = base(node)
    room = "hist"
    alice = await Conn.open(chat_url(b0, room, name="alice"))
    R.check("subprotocol superchat selected", alice.ws.subprotocol == "superchat",
            alice.ws.subprotocol)
    w = alice.welcome
    me = [p for p in w.get("presence", []) if p.get("member") == w.get("member")]
    R.check("welcome of a new room: room, offset 0, first 1, an epoch string, no recovered, "
            "presence has me with my name",
            w.get("room") == room and w.get("offset") == 0 and w.get("first") == 1
            and isinstance(w.get("epoch"), str) and w.get("epoch") and "recovered" not in w
            and len(me) == 1 and me[0].get("name") == "alice", w)
    epoch = w.get("epoch")
    # A `chat` member of the same room sees the raw messages in the same order.
    plain = await open_ws(chat_url(b0, room), subprotocols=("chat",))
    R.check("subprotocol chat selected", plain.subprotocol == "chat", plain.subprotocol)

    await send_all(alice, [f"m{i}" for i in range(1, 11)])
    got = await alice.messages(10)
    R.check("10 messages come back as offsets 1..10 with their text, in the welcome's epoch",
            offsets(got) == list(range(1, 11)) and texts(got) == [f"m{i}" for i in range(1, 11)]
            and all(m.get("epoch") == epoch and m.get("type") == "message" for m in got), got)
    raw = [await asyncio.wait_for(plain.recv(), 10) for _ in range(10)]
    R.check("the chat member got the same 10, as sent", raw == [f"m{i}" for i in range(1, 11)], raw)

    bob = await Conn.open(chat_url(b0, room, name="bob", history=5))
    wb = bob.welcome
    R.check("history=5 after 10: welcome first=6 offset=10, same epoch, no recovered",
            wb.get("first") == 6 and wb.get("offset") == 10 and wb.get("epoch") == epoch
            and "recovered" not in wb, wb)
    # (Whether the `chat` member is in the presence list, docs/rooms.md does not say.)
    R.check("welcome presence lists alice and bob (ids, names)",
            {(w.get("member"), "alice"), (wb.get("member"), "bob")}
            <= {(p.get("member"), p.get("name")) for p in wb.get("presence", [])},
            wb.get("presence"))
    got = await bob.messages(5)
    R.check("then offsets 6..10 in order (m6..m10)",
            offsets(got) == [6, 7, 8, 9, 10] and texts(got) == [f"m{i}" for i in range(6, 11)], got)
    join = await alice.next_of(("join",))
    if join.get("name") != "bob":  # the chat member's, if it counts as a member
        join = await alice.next_of(("join",))
    R.check("alice sees bob's join (member id, name)",
            join.get("member") == wb.get("member") and join.get("name") == "bob", join)
    await alice.send("m11")
    got = await bob.messages(1)
    R.check("then the live ones: offset 11 (m11)", offsets(got) == [11] and texts(got) == ["m11"], got)

    await plain.send("from-chat")
    ga, gb = await alice.messages(2), await bob.messages(1)
    R.check("a chat member's message gets the next offset for superchat members",
            offsets(ga) == [11, 12] and texts(ga)[1] == "from-chat"
            and offsets(gb) == [12] and texts(gb) == ["from-chat"], (ga, gb))
    await alice.send(bytes([0, 1, 2, 255]))
    gb = (await bob.messages(1))[0]
    R.check("a binary message comes as base64 'AAEC/w==' at offset 13",
            gb.get("offset") == 13 and gb.get("binary") == "AAEC/w==" and "text" not in gb, gb)
    raw = [await asyncio.wait_for(plain.recv(), 10) for _ in range(3)]
    R.check("the chat member got m11, from-chat and the binary as sent",
            raw == ["m11", "from-chat", bytes([0, 1, 2, 255])], raw)

    carol = await Conn.open(chat_url(b0, room, name="carol", history=50))
    got = await carol.messages(13)
    R.check("presence events are not replayed (nothing but the 13 messages after the welcome)",
            not carol.others, carol.others)
    R.check("history=50 with 13 in the room: first=1 offset=13, then all 13",
            carol.welcome.get("first") == 1 and carol.welcome.get("offset") == 13
            and offsets(got) == list(range(1, 14))
            and texts(got)[:11] == [f"m{i}" for i in range(1, 12)], (carol.welcome, got))
    dave = await Conn.open(chat_url(b0, room, name="dave"))
    R.check("no history: first = offset + 1 = 14, nothing replayed",
            dave.welcome.get("first") == 14 and dave.welcome.get("offset") == 13, dave.welcome)
    await alice.send("m14")
    got = await dave.messages(1)
    R.check("dave's first message is the live offset 14", offsets(got) == [14], got)

    bad = await http_refusal(chat_url(b0, room, history="x"))
    R.check("history=x: HTTP 400 naming history",
            bad is not None and bad[0] == 400 and "history" in bad[1], bad)
    bad = await http_refusal(chat_url(b0, room, since="3"))
    R.check("since without epoch: HTTP 400 naming since/epoch",
            bad is not None and bad[0] == 400 and ("epoch" in bad[1] or "since" in bad[1]), bad)
    bad = await http_refusal(chat_url(b0, room, since="x", epoch=epoch))
    R.check("since=x: HTTP 400 naming since", bad is not None and bad[0] == 400 and "since" in bad[1], bad)
    bad = await http_refusal(chat_url(b0, room, name="n" * 65))
    R.check("a name of 65 characters: HTTP 400 naming name",
            bad is not None and bad[0] == 400 and "name" in bad[1], bad)
    odd = await Conn.open(chat_url(b0, room, name="n" * 64, color="blue", history=1))
    R.check("a 64-character name and an unknown parameter are accepted (history=1: first=14)",
            odd.welcome.get("first") == 14 and any(p.get("name") == "n" * 64 for p in odd.welcome.get("presence", [])),
            odd.welcome)
    for c in (alice, bob, carol, dave, odd):
        await c.close()
    await plain.close()
    if not with_redis:
        await node.restart()
        again = await Conn.open(chat_url(b0, room, name="alice", since=14, epoch=epoch))
        w = again.welcome
        R.check("the single node restarted: resume gets recovered=false, lost=epoch, a new epoch, "
                "offset 0, first 1", w.get("recovered") is False and w.get("lost") == "epoch"
                and w.get("epoch") != epoch and w.get("offset") == 0 and w.get("first") == 1, w)
        await again.close()


# --------------------------------------------------------------------------------------------
# 2. Resume across nodes
# --------------------------------------------------------------------------------------------
async def t_resume(env):
    redis = await env.redis()
    n1 = await env.node("n1", redis)
    n2 = await env.node("n2", redis)
    room = "resume"
    s = await Conn.open(chat_url(base(n1), room, name="sender"))
    m = await Conn.open(chat_url(base(n1), room, name="mia"))
    await send_all(s, [f"r{i}" for i in range(1, 6)])
    got = await m.messages(5)
    epoch = got[-1].get("epoch")
    R.check("mia on n1 gets offsets 1..5", offsets(got) == [1, 2, 3, 4, 5], got)
    await m.close()
    await send_all(s, [f"r{i}" for i in range(6, 11)])
    got = await s.messages(10)
    R.check("10 published (the sender sees 1..10)", offsets(got) == list(range(1, 11)), got)

    m = await Conn.open(chat_url(base(n2), room, name="mia", since=5, epoch=epoch))
    w = m.welcome
    R.check("resume on n2 since=5: recovered=true, first=6, offset=10, same epoch",
            m.node == "n2" and w.get("recovered") is True and w.get("first") == 6
            and w.get("offset") == 10 and w.get("epoch") == epoch and "lost" not in w, (m.node, w))
    got = await m.messages(5)
    R.check("exactly the missed ones: offsets 6..10 (r6..r10)",
            offsets(got) == list(range(6, 11)) and texts(got) == [f"r{i}" for i in range(6, 11)], got)
    await send_all(s, ["r11", "r12", "r13"])
    got = await m.messages(3)
    R.check("then live ones: 11..13", offsets(got) == [11, 12, 13], got)
    await m.close()

    m = await Conn.open(chat_url(base(n2), room, name="mia", since=0, epoch=epoch))
    w = m.welcome
    R.check("since=0 (nothing received yet, the doc's sample client does it): recovered=true, first=1",
            w.get("recovered") is True and w.get("first") == 1 and w.get("offset") == 13, w)
    got = await m.messages(13)
    R.check("then offsets 1..13", offsets(got) == list(range(1, 14)), offsets(got))
    await m.close()
    m = await Conn.open(chat_url(base(n1), room, name="mia", since=11, epoch=epoch, history=1))
    w = m.welcome
    R.check("since overrides history: since=11&history=1 replays 12..13 (recovered=true, first=12)",
            w.get("recovered") is True and w.get("first") == 12 and w.get("offset") == 13, w)
    got = await m.messages(2)
    R.check("then offsets 12, 13", offsets(got) == [12, 13], got)
    await m.close()
    m = await Conn.open(chat_url(base(n1), room, name="mia", since=13, epoch=epoch))
    w = m.welcome
    R.check("resume with nothing missed: recovered=true, first=14, offset=13",
            w.get("recovered") is True and w.get("first") == 14 and w.get("offset") == 13, w)
    await s.send("r14")
    got = await m.messages(1)
    R.check("then the live offset 14", offsets(got) == [14], got)
    await m.close()
    await s.close()

    # Under traffic: a sender on n1 sends 200 at a steady pace; mia on n2 reads to offset 60,
    # leaves, and resumes on n1 while the sender goes on.
    room = "resume-live"
    N = 200
    s = await Conn.open(chat_url(base(n1), room, name="sender"))
    m = await Conn.open(chat_url(base(n2), room, name="mia"))

    async def sender():
        for i in range(1, N + 1):
            await s.send(f"L{i}")
            await asyncio.sleep(0.01)

    task = asyncio.create_task(sender())
    seen = []
    while not seen or seen[-1].get("offset") < 60:
        seen += await m.messages(1)
    await m.close()
    last = seen[-1]
    await asyncio.sleep(0.2)
    m = await Conn.open(chat_url(base(n1), room, name="mia", since=last["offset"], epoch=last["epoch"]))
    w = m.welcome
    R.check("under traffic: resume on n1 recovered=true, first=since+1",
            w.get("recovered") is True and w.get("first") == last["offset"] + 1, (last, w))
    while seen[-1].get("offset") < N:
        seen += await m.messages(1)
    await asyncio.wait_for(task, 30)
    R.check(f"under traffic: offsets 1..{N} consecutive, L1..L{N} in order, no duplicate",
            offsets(seen) == list(range(1, N + 1)) and texts(seen) == [f"L{i}" for i in range(1, N + 1)],
            [(x.get("offset"), x.get("text")) for x in seen][:5])
    extra = [e for e in await m.quiet(0.5) if e.get("type") == "message"]
    R.check("nothing after the last one", not extra, extra)
    await m.close()
    await s.close()


# --------------------------------------------------------------------------------------------
# 3. Resume too old
# --------------------------------------------------------------------------------------------
async def t_too_old(env):
    redis = await env.redis()
    for label, r in (("redis", redis), ("memory", None)):
        node = await env.node(f"h5{label}", r, ["--history", "5"])
        b0 = base(node)
        s = await Conn.open(chat_url(b0, "old", name="s"))
        await send_all(s, [f"o{i}" for i in range(1, 21)])
        got = await s.messages(20)
        epoch = got[-1].get("epoch")
        m = await Conn.open(chat_url(b0, "old", name="m", since=2, epoch=epoch))
        w = m.welcome
        R.check(f"{label}: --history 5, 20 sent, since=2: recovered=false, lost=too_old, first=16, offset=20",
                w.get("recovered") is False and w.get("lost") == "too_old" and w.get("first") == 16
                and w.get("offset") == 20 and w.get("epoch") == epoch, w)
        got = await m.messages(5)
        R.check(f"{label}: then offsets 16..20", offsets(got) == list(range(16, 21))
                and texts(got) == [f"o{i}" for i in range(16, 21)], got)
        x = await Conn.open(chat_url(b0, "old", name="x", since=20, epoch=epoch + "x"))
        R.check(f"{label}: resume with an epoch that is not the room's: recovered=false, lost=epoch",
                x.welcome.get("recovered") is False and x.welcome.get("lost") == "epoch"
                and x.welcome.get("epoch") == epoch and x.welcome.get("first") == 16, x.welcome)
        await x.close()
        h = await Conn.open(chat_url(b0, "old", name="h", history=50))
        R.check(f"{label}: history=50 is capped at --history 5: first=16",
                h.welcome.get("first") == 16 and h.welcome.get("offset") == 20, h.welcome)
        for c in (s, m, h):
            await c.close()

    # --history 0: no replay; a resume is too_old unless nothing was missed.
    for label, r in (("redis", redis), ("memory", None)):
        node = await env.node(f"h0{label}", r, ["--history", "0"])
        b0 = base(node)
        s = await Conn.open(chat_url(b0, "none", name="s"))
        await send_all(s, ["z1", "z2", "z3"])
        got = await s.messages(3)
        epoch = got[-1].get("epoch")
        h = await Conn.open(chat_url(b0, "none", name="h", history=5))
        R.check(f"{label}: --history 0: history=5 replays nothing (first=4, offset=3)",
                h.welcome.get("first") == 4 and h.welcome.get("offset") == 3, h.welcome)
        m = await Conn.open(chat_url(b0, "none", name="m", since=1, epoch=epoch))
        R.check(f"{label}: --history 0: since=1 of 3: recovered=false, lost=too_old, first=4",
                m.welcome.get("recovered") is False and m.welcome.get("lost") == "too_old"
                and m.welcome.get("first") == 4, m.welcome)
        n = await Conn.open(chat_url(b0, "none", name="n", since=3, epoch=epoch))
        R.check(f"{label}: --history 0: since=3 of 3 (nothing missed): recovered=true, first=4",
                n.welcome.get("recovered") is True and n.welcome.get("first") == 4, n.welcome)
        await s.send("z4")
        gm, gn = await m.messages(1), await n.messages(1)
        R.check(f"{label}: --history 0: then the live offset 4", offsets(gm) == offsets(gn) == [4], (gm, gn))
        for c in (s, h, m, n):
            await c.close()

    # --history-ttl 3s: older messages are not replayed; a room silent for 3 s loses its history.
    # (The waits only make the old ones older; a3 has 1.3 s of margin.)
    for label, r in (("redis", redis), ("memory", None)):
        node = await env.node(f"ttl{label}", r, ["--history-ttl", "3s"])
        b0 = base(node)
        a = await Conn.open(chat_url(b0, "aged", name="a"))
        q = await Conn.open(chat_url(b0, "quiet", name="q"))
        await send_all(a, ["a1", "a2"])
        await send_all(q, ["q1", "q2"])
        ga, gq = await a.messages(2), await q.messages(2)
        await q.close()
        await asyncio.sleep(1.7)
        await a.send("a3")
        ga += await a.messages(1)
        await asyncio.sleep(1.7)  # a1, a2: 3.4 s old; a3: 1.7 s; quiet: silent for 3.4 s
        m = await Conn.open(chat_url(b0, "aged", name="m", since=1, epoch=ga[0].get("epoch")))
        w = m.welcome
        R.check(f"{label}: --history-ttl 3s, since=1 after 3.4 s: recovered=false, lost=too_old, first=3",
                w.get("recovered") is False and w.get("lost") == "too_old" and w.get("first") == 3
                and w.get("offset") == 3, w)
        got = await m.messages(1)
        R.check(f"{label}: then a3 (offset 3)", offsets(got) == [3] and texts(got) == ["a3"], got)
        e0 = gq[-1].get("epoch")
        m2 = await Conn.open(chat_url(b0, "quiet", name="m2", since=2, epoch=e0))
        w = m2.welcome
        R.check(f"{label}: a room silent for longer than --history-ttl: resume gets lost=epoch, a new epoch",
                w.get("recovered") is False and w.get("lost") == "epoch" and w.get("epoch") != e0
                and w.get("first") == w.get("offset", -1) + 1, w)
        for c in (a, m, m2):
            await c.close()


# --------------------------------------------------------------------------------------------
# 4. Redis restarted with its data gone
# --------------------------------------------------------------------------------------------
async def wait_health(nodes, pred, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        hs = [await n.health() for n in nodes]
        if all(h is not None and pred(h) for h in hs):
            return True, hs
        await asyncio.sleep(0.1)
    return False, hs


async def t_redis_restart(env):
    redis = await env.redis()
    n1 = await env.node("n1", redis)
    n2 = await env.node("n2", redis)
    room = "flush"
    a = await Conn.open(chat_url(base(n1), room, name="a"))
    b = await Conn.open(chat_url(base(n2), room, name="b"))
    c = await Conn.open(chat_url(base(n2), room, name="c"))
    await send_all(a, [f"e{i}" for i in range(1, 6)])
    ga, gb, gc = await a.messages(5), await b.messages(5), await c.messages(5)
    e1 = ga[0].get("epoch")
    R.check("before: everyone has offsets 1..5 in one epoch",
            offsets(ga) == offsets(gb) == offsets(gc) == [1, 2, 3, 4, 5]
            and {m.get("epoch") for m in ga + gb + gc} == {e1}, (ga, gb))
    await c.close()

    await redis.kill()
    ok, hs = await wait_health([n1, n2], lambda h: h.get("broker_up") is False)
    R.check("Redis killed: both nodes' /healthz say broker_up=false (within 20 s)", ok, hs)
    refused = await http_refusal(chat_url(base(n2), room, name="z"))
    R.check("a new member during the outage is refused with 503 (docs/deploy.md)",
            refused is not None and refused[0] == 503, refused)
    await a.send("during")
    e = await a.next_of(("error", "message"))
    R.check("a message during the outage: error reason=broker_down to its sender",
            e.get("type") == "error" and e.get("reason") == "broker_down", e)

    await redis.start()
    ok, hs = await wait_health([n1, n2], lambda h: h.get("broker_up") is True and h.get("status") == "ok")
    R.check("Redis restarted empty on the same port: both nodes reconnect (within 20 s)", ok, hs)
    after = None
    for i in range(40):
        await a.send(f"after{i}")
        e = await a.next_of(("error", "message"))
        if e.get("type") == "message":
            after = e
            break
        await asyncio.sleep(0.5)
    R.check("a message after the restart is published", after is not None, after)
    if after is None:
        return
    e2 = after.get("epoch")
    gb = await b.messages(1)
    R.check("the connected see a message with a new epoch, offsets from 1 again",
            e2 != e1 and after.get("offset") == 1 and gb[0].get("epoch") == e2
            and gb[0].get("offset") == 1 and payload(gb[0]) == payload(after), (e1, after, gb))
    R.check("'during' never arrived", payload(gb[0]) != "during" and payload(after) != "during", gb)

    c = await Conn.open(chat_url(base(n2), room, name="c", since=5, epoch=e1))
    w = c.welcome
    R.check("resume with the old epoch: recovered=false, lost=epoch, the new epoch, first=1",
            w.get("recovered") is False and w.get("lost") == "epoch" and w.get("epoch") == e2
            and w.get("first") == 1 and w.get("offset") == 1, w)
    got = await c.messages(1)
    R.check("then the new epoch's messages from first", offsets(got) == [1]
            and got[0].get("epoch") == e2 and payload(got[0]) == payload(after), got)
    await a.close()
    a = await Conn.open(chat_url(base(n1), room, name="a", since=1, epoch=e2))
    R.check("resume in the new epoch: recovered=true",
            a.welcome.get("recovered") is True and a.welcome.get("first") == 2, a.welcome)
    for x in (a, b, c):
        await x.close()


# --------------------------------------------------------------------------------------------
# 5. Presence across nodes
# --------------------------------------------------------------------------------------------
def names(presence):
    return sorted((p.get("name") for p in presence), key=str)


async def t_presence(env):
    redis = await env.redis()
    n1 = await env.node("n1", redis)
    n2 = await env.node("n2", redis)
    room = "who"
    alice = await Conn.open(chat_url(base(n1), room, name="alice"))
    R.check("alice alone: presence [alice]", names(alice.welcome.get("presence", [])) == ["alice"],
            alice.welcome)
    bob = await Conn.open(chat_url(base(n2), room, name="bob"))
    ids = {"alice": alice.welcome.get("member"), "bob": bob.welcome.get("member")}
    R.check("bob on n2: his welcome presence lists alice (n1) and bob with their ids",
            {(p.get("member"), p.get("name")) for p in bob.welcome.get("presence", [])}
            == {(ids["alice"], "alice"), (ids["bob"], "bob")}, bob.welcome)
    j = await alice.next_of(("join",))
    R.check("alice gets bob's join", j.get("member") == ids["bob"] and j.get("name") == "bob", j)
    carol = await Conn.open(chat_url(base(n1), room, name="carol"))
    dave = await Conn.open(chat_url(base(n2), room, name="dave"))
    ids["carol"], ids["dave"] = carol.welcome.get("member"), dave.welcome.get("member")
    R.check("member ids unique across nodes", len(set(ids.values())) == 4, ids)
    R.check("carol (n1) and dave (n2): their welcomes list every member on both nodes",
            names(carol.welcome.get("presence", [])) == ["alice", "bob", "carol"]
            and {(p.get("member"), p.get("name")) for p in dave.welcome.get("presence", [])}
            == {(v, k) for k, v in ids.items()}, (carol.welcome, dave.welcome))
    for who, conn, expect in (("alice", alice, ["carol", "dave"]), ("bob", bob, ["carol", "dave"])):
        got = [await conn.next_of(("join",)) for _ in expect]
        R.check(f"{who} gets the joins of {expect} (ids, names)",
                [(g.get("member"), g.get("name")) for g in got] == [(ids[n], n) for n in expect], got)
    await dave.close()
    got = [await c.next_of(("leave",)) for c in (alice, bob, carol)]
    R.check("dave leaves (close): everyone on both nodes gets his leave",
            all(g.get("member") == ids["dave"] and g.get("name") == "dave" for g in got), got)

    await n2.proc.stop(signal.SIGKILL)
    t0 = time.monotonic()
    leaves = {}
    for who, conn in (("alice", alice), ("carol", carol)):
        try:
            leaves[who] = await conn.next_of(("leave",), timeout=30 - (time.monotonic() - t0))
        except asyncio.TimeoutError:
            leaves[who] = None
    took = time.monotonic() - t0
    R.check("n2 killed (-9): alice and carol on n1 get bob's leave within 30 s",
            all(l and l.get("member") == ids["bob"] and l.get("name") == "bob" for l in leaves.values()),
            leaves)
    R.note(f"bob's leave arrived {took:.1f} s after the kill "
           + ("(docs/rooms.md: within 15 s)" if took <= 15 else "(LATER than the 15 s of docs/rooms.md)"))
    bob_end = "still open"
    try:
        for _ in range(100):
            await asyncio.wait_for(bob.ws.recv(), 10)
    except ConnectionClosed:
        bob_end = "closed"
    except asyncio.TimeoutError:
        pass
    R.check("bob's connection to the killed node ended", bob_end == "closed", bob_end)
    more = [e for c in (alice, carol) for e in await c.quiet(0.5) if e.get("type") == "leave"]
    R.check("no other leave (alice and carol stay)", not more, more)
    erin = await Conn.open(chat_url(base(n1), room, name="erin"))
    R.check("a new member's presence: alice, carol, erin (no bob)",
            names(erin.welcome.get("presence", [])) == ["alice", "carol", "erin"], erin.welcome)
    for c in (alice, carol, erin):
        await c.close()


# --------------------------------------------------------------------------------------------
# (extra) error events: --room-rate
# --------------------------------------------------------------------------------------------
async def t_rate(env):
    # Loopback clients are not rate limited; through a trusted proxy (--trust-proxy, see
    # docs/deploy.md) X-Forwarded-For names a client that is.
    node = await env.node("n1", None, ["--room-rate", "5/s", "--trust-proxy", "127.0.0.1"])
    b0 = base(node)
    watcher = await Conn.open(chat_url(b0, "rate", name="w"))
    ws = await open_ws(chat_url(b0, "rate", name="fast"), headers={"X-Forwarded-For": "192.0.2.7"})
    fast = Conn(ws)
    fast.welcome = await fast.event()
    await send_all(fast, [f"f{i}" for i in range(1, 21)])
    await fast.send("f21")  # still within the same run of drops (no time for a new token)
    got, errors = [], []
    for e in await fast.quiet(1.5):
        (got if e.get("type") == "message" else errors).append(e)
    sent = [f"f{i}" for i in range(1, 22)]
    published = texts(got)
    R.check("21 messages at once with --room-rate 5/s: some published (in order), the rest dropped",
            5 <= len(got) < 21 and offsets(got) == list(range(1, len(got) + 1))
            and published == [t for t in sent if t in published], published)
    # One notice per run of dropped messages (a token may come back during the burst).
    runs = sum(1 for i, t in enumerate(sent)
               if t not in published and (i == 0 or sent[i - 1] in published))
    errs = [e for e in errors if e.get("type") == "error"]
    R.check("one error notice per run of dropped messages: reason=rate, dropped=true, a text",
            len(errs) == runs and all(e.get("reason") == "rate" and e.get("dropped") is True
                                      and isinstance(e.get("text"), str) for e in errs),
            (runs, errors))
    await fast.send("later")
    got2 = await fast.messages(1)
    R.check("the connection stays open; a later message gets the next offset",
            offsets(got2) == [len(got) + 1] and texts(got2) == ["later"], got2)
    seen = await watcher.messages(len(got) + 1)
    R.check("the others see exactly the published ones, gapless",
            offsets(seen) == list(range(1, len(got) + 2)) and texts(seen) == texts(got) + ["later"],
            offsets(seen))
    await fast.close()
    await watcher.close()


# --------------------------------------------------------------------------------------------
# 6. Chaos
# --------------------------------------------------------------------------------------------
class Sender(Follower):
    """A member that also sends `each` messages {"id": "sI-K"}, and after a reconnection re-sends
    (once the replay reached welcome.offset) those of its messages not seen in the room."""

    def __init__(self, i, each, interval, *a, **kw):
        super().__init__(*a, **kw)
        self.ids = [f"s{i}-{k}" for k in range(each)]
        self.interval = interval
        self.sent = []  # ids handed to a connection, in order
        self.seen = set()
        self.resent = []
        self.connections = 0
        self.on_message = self._saw
        self.on_ready = self._resend
        self.send_task = None
        self.after_send = None  # called once after a send (the chaos test's trigger)
        self.done_sending = asyncio.Event()

    def _saw(self, _epoch, _offset, data):
        if isinstance(data, str):
            try:
                mid = json.loads(data).get("id")
            except (ValueError, AttributeError):
                return
            if mid in self.ids:
                self.seen.add(mid)

    async def _resend(self, conn):
        self.connections += 1
        if self.connections == 1:
            return
        todo = [mid for mid in self.sent if mid not in self.seen]
        for mid in todo:
            self.resent.append(mid)
            await conn.ws.send(json.dumps({"id": mid}))

    async def sending(self):
        for mid in self.ids:
            for _ in range(3000):  # bounded: the reconnect deadline ends the run long before
                await asyncio.wait_for(self.connected.wait(), 60)
                conn = self.conn
                if conn is None or not self.connected.is_set():
                    await asyncio.sleep(0.01)
                    continue
                self.sent.append(mid)
                try:
                    await conn.ws.send(json.dumps({"id": mid}))
                except ConnectionClosed:
                    pass  # it is in self.sent: re-sent after the reconnection if unseen
                if self.after_send:
                    hook, self.after_send = self.after_send, None
                    hook()
                break
            await asyncio.sleep(self.interval)
        self.done_sending.set()

    def all_seen(self):
        return len(self.seen) == len(self.ids)


async def t_chaos(env, each, members_n=9, senders_n=3, interval=0.03):
    clients = []
    try:
        await chaos(env, each, members_n, senders_n, interval, clients)
    finally:
        for c in clients:
            if getattr(c, "send_task", None):
                c.send_task.cancel()
            await c.stop()


async def chaos(env, each, members_n, senders_n, interval, clients, redis=None):
    """The scenario on `redis` (a Redis or a RedisCluster; a new Redis when None); returns the
    room's last offset as the members saw it."""
    if redis is None:
        redis = await env.redis()
    nodes = [await env.node(f"n{i}", redis, ["--history", "10000", "--trust-proxy", "127.0.0.1"])
             for i in (1, 2, 3)]
    nginx = await env.nginx(nodes)
    b0 = f"ws://127.0.0.1:{nginx.port}"
    room = "chaos"
    members = [Follower(f"m{i}", b0, room).start() for i in range(members_n)]
    senders = [Sender(i, each, interval, f"s{i}", b0, room).start() for i in range(senders_n)]
    everyone = members + senders
    clients += everyone
    try:
        await asyncio.wait_for(asyncio.gather(*(c.first_welcome.wait() for c in everyone)), 30)
        await asyncio.wait_for(asyncio.gather(*(c.connected.wait() for c in everyone)), 30)
    except asyncio.TimeoutError:
        R.check("12 clients joined through nginx within 30 s", False,
                [c.problems[-3:] for c in everyone])
        raise
    where = {c.name: c.nodes[-1] for c in everyone}
    spread = {n.name: sum(1 for v in where.values() if v == n.name) for n in nodes}
    R.check("clients joined through nginx, spread over the 3 nodes (X-Wsx-Node)",
            all(v >= 1 for v in spread.values()), where)
    R.check("every client joined the empty room (welcome offset 0)",
            all(c.welcomes[0].get("offset") == 0 for c in everyone), [c.welcomes[0] for c in everyone])
    R.note(f"clients per node at the start: {spread}")

    for s in senders:
        s.send_task = asyncio.create_task(s.sending())

    async def sent_total_at_least(n, timeout=60):
        deadline = time.monotonic() + timeout
        while sum(len(s.sent) for s in senders) < n and time.monotonic() < deadline:
            await asyncio.sleep(0.02)

    alive = {n.name: n for n in nodes}
    total = each * senders_n
    async def strike(sender, sig, what):
        """Signals the node of `sender` right after one of its sends returned (that message is
        then on its way through nginx to a node that goes away): the re-send path is used."""
        fired = asyncio.get_running_loop().create_future()

        def now():
            name = sender.conn.node if sender.conn else None
            node = alive.pop(name if name in alive else sorted(alive)[0])
            node.proc.send_signal(sig)
            fired.set_result(node)

        sender.after_send = now
        node = await asyncio.wait_for(fired, 60)
        on_it = [c for c in everyone if c.conn and c.conn.node == node.name]
        R.note(f"{what} {node.name} after {sum(len(s.sent) for s in senders)} sent, right after "
               f"a send of {sender.name} (clients on it: {[c.name for c in on_it]})")
        return node, [(c, len(c.closes)) for c in on_it]

    await sent_total_at_least(total // 3)
    victim, on_victim = await strike(senders[0], signal.SIGKILL, "kill -9")
    await victim.proc.stop(signal.SIGKILL)
    await sent_total_at_least(2 * total // 3)
    drained, on_drained = await strike(senders[1], signal.SIGTERM, "SIGTERM")
    rc = await drained.proc.wait(20)
    R.check(f"the drained node {drained.name} exits within 20 s", rc is not None, rc)

    # The senders finish, and see each of their messages in the room (bounded).
    try:
        await asyncio.wait_for(asyncio.gather(*(s.send_task for s in senders)), 120)
    except asyncio.TimeoutError:
        pass
    deadline = time.monotonic() + 30
    while not all(s.all_seen() for s in senders) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    R.check("every sender sent all its messages and saw each in the room",
            all(s.done_sending.is_set() and s.all_seen() for s in senders),
            {s.name: (len(s.sent), len(s.seen)) for s in senders})
    final = max((c.last or 0) for c in everyone)
    drained_ok = True
    for c in everyone:
        drained_ok &= await c.wait_offset(final, max(1.0, deadline + 30 - time.monotonic()))
    R.check(f"every client drained to the room's last offset {final}", drained_ok,
            {c.name: c.last for c in everyone})
    # Anything more (a late duplicate) would show as a problem; give it a moment.
    await asyncio.sleep(0.5)
    for c in everyone:
        await c.stop()

    # The room's sequence: the longest log of a client without problems (or the longest).
    clean = [c for c in everyone if not c.problems] or everyone
    reference = max(clean, key=lambda c: len(c.log)).log
    problems = {c.name: c.problems for c in everyone if c.problems}
    R.check("no client saw a gap, a duplicate, an epoch change or a resume that was not recovered",
            not problems, problems)
    errors = {c.name: c.errors for c in everyone if c.errors}
    R.check("no error event", not errors, errors)

    def first_bad(c):
        epoch0 = c.log[0][0] if c.log else None
        for k, (e, o, _) in enumerate(c.log):
            if (e, o) != (epoch0, k + 1):
                return f"at #{k + 1}: ({e}, {o})"
        return None

    bad = {c.name: first_bad(c) for c in everyone if first_bad(c)}
    R.check("every client's (epoch, offset) sequence is gapless from 1 in one epoch",
            reference and not bad and len({c.log[0][0] for c in everyone if c.log}) == 1, bad)
    differ = [c.name for c in everyone if c.log != reference]
    R.check("every client's sequence is identical (same text at the same offset)", not differ,
            {n: f"{len(next(c for c in everyone if c.name == n).log)} entries vs {len(reference)}"
             for n in differ})
    count = {}
    unknown = []
    for _, _, data in reference:
        try:
            mid = json.loads(data).get("id")
        except (ValueError, AttributeError, TypeError):
            mid = None
        if mid is None:
            unknown.append(data)
            continue
        count[mid] = count.get(mid, 0) + 1
    expected = [mid for s in senders for mid in s.ids]
    missing = [mid for mid in expected if mid not in count]
    dups = {mid: n for mid, n in count.items() if n > 1}
    R.check("every sender message id appears exactly once, none missing, nothing else",
            not missing and not dups and not unknown and len(count) == len(expected),
            {"missing": missing[:20], "duplicates": dups, "unknown": unknown[:5]})
    # Each sender's messages in the order it sent them (first occurrence).
    out_of_order = []
    for s in senders:
        mine = [json.loads(d)["id"] for _, _, d in reference
                if isinstance(d, str) and d.startswith('{"id": "' + s.name + "-")]
        if mine != s.ids and not s.resent:
            out_of_order.append(s.name)
    R.check("each sender's messages in its order (unless it re-sent some)", not out_of_order,
            out_of_order)
    # How their connections ended: no Close frame from the killed node, 1001 from the drained one.
    ends = {f"{c.name}@{what}": c.closes[k] if len(c.closes) > k else "still open"
            for what, group in (("killed", on_victim), ("drained", on_drained)) for c, k in group}
    R.check("the killed node's clients saw no Close frame; the drained node's got Close 1001",
            all(v is None for k, v in ends.items() if k.endswith("@killed"))
            and all(v == 1001 for k, v in ends.items() if k.endswith("@drained")), ends)
    reconnects = {c.name: len(c.nodes) - 1 for c in everyone}
    R.check("the kill and the drain made clients reconnect (through nginx, to the others)",
            sum(reconnects.values()) >= 2
            and all(n in (alive.keys()) for c in everyone if len(c.nodes) > 1 for n in c.nodes[-1:]),
            {c.name: c.nodes for c in everyone})
    R.note(f"chaos counts: sent {total} distinct ids ({sum(len(s.sent) for s in senders)} sends "
           f"+ {sum(len(s.resent) for s in senders)} re-sends after reconnecting), room offsets "
           f"1..{len(reference)}, missing {len(missing)}, duplicates {sum(n - 1 for n in dups.values())}")
    R.note("re-sent after reconnecting, per sender: "
           + ", ".join(f"{s.name} {s.resent}" for s in senders))
    R.note("delivered per client: " + ", ".join(f"{c.name} {len(c.log)}" for c in everyone))
    R.note("reconnections per client: " + ", ".join(f"{k} {v}" for k, v in reconnects.items())
           + f"; close codes seen: {sorted({str(x) for c in everyone for x in c.closes})}")
    R.note("resumes: " + str(sum(len(c.welcomes) - 1 for c in everyone))
           + ", all recovered=true" if not problems else "resumes with problems: see above")
    return len(reference)


# --------------------------------------------------------------------------------------------
# 7. The same on a Redis Cluster: rooms on different shards
# --------------------------------------------------------------------------------------------
ROOM_CANDIDATES = ["amber", "birch", "cedar", "delta", "ember", "fjord", "grove", "heath", "iris",
                   "jade", "kelp", "larch", "maple", "nova", "oak", "pine", "quartz", "reed",
                   "sage", "teak", "umber", "vale", "willow", "yew", "zinc", "ash", "bay", "cove",
                   "dune", "elm"]


def log_key(room):
    return f"wsx:room:{{{room}}}:batches"


def batch_messages(line):
    """The messages of a logged batch (wsx-cli/src/serve/broker.rs, PUBLISH): `M` EPOCH `:`
    FIRST `:` MS `:`, then per message its length in bytes, `:` and itself (a kind byte, `t` or
    `b`, and the payload)."""
    rest = line.encode().split(b":", 3)[3]
    messages = []
    while rest:
        length, rest = rest.split(b":", 1)
        messages.append(rest[:int(length)].decode())
        rest = rest[int(length):]
    return messages


def meta_key(room):
    return f"wsx:room:{{{room}}}:meta"


async def cluster_rooms(cluster):
    """Rooms whose keys land on different masters: {room: owner port}, one room per master as
    far as the candidates reach (asked of the cluster: CLUSTER KEYSLOT and CLUSTER SHARDS)."""
    chosen = {}
    for name in ROOM_CANDIDATES:
        owner = cluster.owner(await cluster.keyslot(log_key(name)))
        if owner is not None and owner not in chosen.values():
            chosen[name] = owner
        if len(chosen) == len(cluster.ports):
            break
    return chosen


async def cluster_room(cluster, n1, n2, room, owner, keep):
    """History, resume across nodes, presence in `room` (keys on the master `owner`), and that
    its stream is on `owner` only. The connections are left open in `keep` (closed at the end,
    after checking that no other room's message reached them)."""
    tag = f"{room}@{owner}"
    alice = await Conn.open(chat_url(base(n1), room, name="alice"))
    keep.append(alice)
    w = alice.welcome
    epoch = w.get("epoch")
    R.check(f"{tag}: alice on n1: welcome room, offset 0, first 1, an epoch, presence [alice]",
            w.get("room") == room and w.get("offset") == 0 and w.get("first") == 1
            and isinstance(epoch, str) and epoch and names(w.get("presence", [])) == ["alice"], w)
    bob = await Conn.open(chat_url(base(n2), room, name="bob"))
    keep.append(bob)
    ids = {"alice": w.get("member"), "bob": bob.welcome.get("member")}
    R.check(f"{tag}: bob on n2: same epoch; his welcome lists alice (n1) and bob with their ids",
            bob.node == "n2" and bob.welcome.get("epoch") == epoch
            and {(p.get("member"), p.get("name")) for p in bob.welcome.get("presence", [])}
            == {(ids["alice"], "alice"), (ids["bob"], "bob")}, (bob.node, bob.welcome))
    j = await alice.next_of(("join",))
    R.check(f"{tag}: alice (n1) gets bob's join", j.get("member") == ids["bob"]
            and j.get("name") == "bob", j)

    # History: 10 sent through n1, a newcomer on n2 with history=5 gets 6..10.
    sent = [f"{room}-{i}" for i in range(1, 11)]
    await send_all(alice, sent)
    ga, gb = await alice.messages(10), await bob.messages(10)
    R.check(f"{tag}: 10 sent via n1: offsets 1..10 with their text on n1 and on n2, one epoch",
            offsets(ga) == offsets(gb) == list(range(1, 11)) and texts(ga) == texts(gb) == sent
            and {m.get("epoch") for m in ga + gb} == {epoch}, (ga, gb))
    carol = await Conn.open(chat_url(base(n2), room, name="carol", history=5))
    keep.append(carol)
    wc = carol.welcome
    ids["carol"] = wc.get("member")
    R.check(f"{tag}: carol on n2, history=5: first=6 offset=10, same epoch, no recovered; "
            "presence alice, bob, carol",
            wc.get("first") == 6 and wc.get("offset") == 10 and wc.get("epoch") == epoch
            and "recovered" not in wc and names(wc.get("presence", [])) == ["alice", "bob", "carol"],
            wc)
    got = await carol.messages(5)
    R.check(f"{tag}: then offsets 6..10 ({room}-6..10)",
            offsets(got) == list(range(6, 11)) and texts(got) == sent[5:], got)
    for who, conn in (("alice", alice), ("bob", bob)):
        j = await conn.next_of(("join",))
        R.check(f"{tag}: {who} gets carol's join", j.get("member") == ids["carol"]
                and j.get("name") == "carol", j)

    # Resume across nodes: alice (n1) leaves at 10; 11..15 sent via n2; she resumes on n2.
    await alice.close()
    keep.remove(alice)
    for who, conn in (("bob", bob), ("carol", carol)):
        l = await conn.next_of(("leave",))
        R.check(f"{tag}: alice leaves n1: {who} (n2) gets her leave", l.get("member") == ids["alice"]
                and l.get("name") == "alice", l)
    more = [f"{room}-{i}" for i in range(11, 16)]
    await send_all(bob, more)
    gb, gc = await bob.messages(5), await carol.messages(5)
    R.check(f"{tag}: 11..15 sent via n2 while alice is away",
            offsets(gb) == offsets(gc) == list(range(11, 16)) and texts(gb) == more, (gb, gc))
    alice = await Conn.open(chat_url(base(n2), room, name="alice", since=10, epoch=epoch))
    keep.append(alice)
    w = alice.welcome
    ids["alice"] = w.get("member")
    R.check(f"{tag}: alice resumes on n2 since=10: recovered=true, first=11, offset=15, same epoch",
            alice.node == "n2" and w.get("recovered") is True and w.get("first") == 11
            and w.get("offset") == 15 and w.get("epoch") == epoch and "lost" not in w,
            (alice.node, w))
    got = await alice.messages(5)
    R.check(f"{tag}: exactly the missed ones: 11..15, in order",
            offsets(got) == list(range(11, 16)) and texts(got) == more, got)
    R.check(f"{tag}: the resumed alice's welcome lists alice, bob, carol",
            names(w.get("presence", [])) == ["alice", "bob", "carol"], w.get("presence"))
    for who, conn in (("bob", bob), ("carol", carol)):
        j = await conn.next_of(("join",))
        R.check(f"{tag}: {who} gets alice's join again", j.get("member") == ids["alice"]
                and j.get("name") == "alice", j)

    # The other way: carol (n2) leaves at 15; 16..18 via n2; she resumes on n1, which has no
    # member of the room left (so it subscribes to the room's shard channel again).
    await carol.close()
    keep.remove(carol)
    for who, conn in (("alice", alice), ("bob", bob)):
        l = await conn.next_of(("leave",))
        R.check(f"{tag}: carol leaves: {who} gets her leave", l.get("member") == ids["carol"]
                and l.get("name") == "carol", l)
    more2 = [f"{room}-{i}" for i in range(16, 19)]
    await send_all(alice, more2)
    ga, gb = await alice.messages(3), await bob.messages(3)
    R.check(f"{tag}: 16..18 sent", offsets(ga) == offsets(gb) == [16, 17, 18], (ga, gb))
    carol = await Conn.open(chat_url(base(n1), room, name="carol", since=15, epoch=epoch))
    keep.append(carol)
    w = carol.welcome
    ids["carol"] = w.get("member")
    R.check(f"{tag}: carol resumes on n1 since=15: recovered=true, first=16, offset=18; presence "
            "alice, bob, carol",
            carol.node == "n1" and w.get("recovered") is True and w.get("first") == 16
            and w.get("offset") == 18 and w.get("epoch") == epoch
            and names(w.get("presence", [])) == ["alice", "bob", "carol"], (carol.node, w))
    got = await carol.messages(3)
    R.check(f"{tag}: then exactly 16..18", offsets(got) == [16, 17, 18] and texts(got) == more2, got)
    for who, conn in (("alice", alice), ("bob", bob)):
        j = await conn.next_of(("join",))
        R.check(f"{tag}: {who} gets carol's join from n1", j.get("member") == ids["carol"]
                and j.get("name") == "carol", j)
    await carol.send(f"{room}-19")
    got = [(await c.messages(1))[0] for c in (alice, bob, carol)]
    R.check(f"{tag}: a live one from n1: offset 19 to alice, bob (n2) and carol (n1)",
            all(m.get("offset") == 19 and payload(m) == f"{room}-19" and m.get("epoch") == epoch
                for m in got), got)
    extra = [(c.welcome.get("member"), e) for c in (alice, bob, carol) for e in await c.quiet(0.3)]
    R.check(f"{tag}: nothing more (no duplicate, no stray event)", not extra, extra)

    # Through Redis: the room's offsets and log are on the owner (its last offset 19, its log
    # holding batches); not on the others.
    rc, out, err = await cluster.cli(owner, "hget", meta_key(room), "top")
    R.check(f"{tag}: redis-cli -p {owner} hget '{meta_key(room)}' top = 19 (the room's last offset)",
            rc == 0 and out.strip() == "19", (rc, out, err))
    rc, out, err = await cluster.cli(owner, "zrange", log_key(room), "0", "-1")
    logged = [m[1:] for line in out.splitlines() for m in batch_messages(line)]
    R.check(f"{tag}: redis-cli -p {owner} zrange '{log_key(room)}' 0 -1: the room's log holds its "
            "19 messages, in order",
            rc == 0 and logged == [f"{room}-{i}" for i in range(1, 20)], (rc, out, err))
    for port in cluster.ports:
        if port == owner:
            continue
        rc, out, err = await cluster.cli(port, "exists", log_key(room))
        R.check(f"{tag}: on the master {port}: MOVED to {owner} (the key is not there)",
                (out.strip().startswith("MOVED") and out.strip().endswith(f":{owner}"))
                or out.strip() == "0", (rc, out, err))
    rc, out, err = await cluster.cli(owner, "pubsub", "shardnumsub", f"wsx:room:{{{room}}}")
    R.check(f"{tag}: PUBSUB SHARDNUMSUB on {owner}: the room's sharded channel has 2 subscribers "
            "(both nodes have members)", out.split() == [f"wsx:room:{{{room}}}", "2"], (rc, out, err))
    return {"alice": alice, "bob": bob, "carol": carol}, ids


async def t_cluster(env):
    cluster = await env.redis_cluster()
    R.note("Redis Cluster masters (port: slots): " + ", ".join(
        f"{p}: {lo}-{hi}" for lo, hi, p in cluster.ranges))
    rooms = await cluster_rooms(cluster)
    for room, owner in rooms.items():
        R.note(f"room {room!r}: slot {await cluster.keyslot(log_key(room))}, master 127.0.0.1:{owner}")
    R.check("the chosen rooms land on at least two different masters", len(set(rooms.values())) >= 2,
            rooms)
    R.check("... on all three masters", len(set(rooms.values())) == 3, rooms)
    n1 = await env.node("n1", cluster)
    n2 = await env.node("n2", cluster)
    keep = []
    try:
        members = {}
        for room, owner in rooms.items():
            members[room] = await cluster_room(cluster, n1, n2, room, owner, keep)
        # Every connection of the earlier rooms stayed open while the later rooms talked.
        stray = [e for c in keep for e in await c.quiet(0.3) if e.get("type") == "message"]
        R.check("no message of one room reached a member of another", not stray, stray)

        # n2 killed: in every room (each on its shard), carol on n1 gets the leaves of alice and
        # bob (n2) within 30 s (docs/rooms.md: a dead node's members leave within 15 s).
        await n2.proc.stop(signal.SIGKILL)
        t0 = time.monotonic()

        async def leaves(conn):
            got = []
            try:
                while len(got) < 2:
                    left = max(0.1, 30 - (time.monotonic() - t0))
                    got.append(await conn.next_of(("leave",), timeout=left))
            except asyncio.TimeoutError:
                pass
            return got, time.monotonic() - t0

        results = await asyncio.gather(*(leaves(m["carol"]) for m, _ in members.values()))
        for (room, (m, ids)), (got, took) in zip(members.items(), results):
            R.check(f"{room}@{rooms[room]}: n2 killed (-9): carol (n1) gets the leaves of alice and "
                    "bob within 30 s",
                    sorted((g.get("member"), g.get("name")) for g in got)
                    == sorted([(ids["alice"], "alice"), (ids["bob"], "bob")]), got)
            R.note(f"{room}: the leaves arrived {took:.1f} s after the kill "
                   + ("(docs/rooms.md: within 15 s)" if took <= 15
                      else "(LATER than the 15 s of docs/rooms.md)"))
        for room, (m, ids) in members.items():
            erin = await Conn.open(chat_url(base(n1), room, name="erin"))
            keep.append(erin)
            R.check(f"{room}@{rooms[room]}: a new member on n1: presence carol, erin (no alice, bob)",
                    names(erin.welcome.get("presence", [])) == ["carol", "erin"]
                    and erin.welcome.get("offset") == 19, erin.welcome)
    finally:
        for c in keep:
            await c.close()


async def t_cluster_outage(env):
    """One master of the cluster killed (its data gone) and restarted on the same port: the
    cluster analogue of `redis` (docs/deploy.md, "When Redis goes away")."""
    cluster = await env.redis_cluster()
    rooms = await cluster_rooms(cluster)
    # (Warnings in their logs: shown when a check fails.)
    n1 = await env.node("n1", cluster, log="warn")
    n2 = await env.node("n2", cluster, log="warn")
    conns = {}
    epochs = {}
    try:
        for room in rooms:
            a = await Conn.open(chat_url(base(n1), room, name="a"))
            conns[room] = (a, None)
            b = await Conn.open(chat_url(base(n2), room, name="b"))
            conns[room] = (a, b)
            await send_all(a, [f"{room}-{i}" for i in (1, 2, 3)])
            ga, gb = await a.messages(3), await b.messages(3)
            epochs[room] = ga[0].get("epoch")
            R.check(f"{room}@{rooms[room]}: before: offsets 1..3 on n1 and n2, one epoch",
                    offsets(ga) == offsets(gb) == [1, 2, 3]
                    and {m.get("epoch") for m in ga + gb} == {epochs[room]}, (ga, gb))
        dead_room = next(iter(rooms))
        victim = rooms[dead_room]
        await cluster.kill(victim)
        R.note(f"killed the master 127.0.0.1:{victim} (room {dead_room!r}; the others: "
               + ", ".join(f"{r}@{p}" for r, p in rooms.items() if p != victim) + ")")
        a, b = conns[dead_room]
        await a.send("during")
        e = await a.next_of(("error", "message"))
        R.check(f"{dead_room}: a message while its master is down: error reason=broker_down",
                e.get("type") == "error" and e.get("reason") == "broker_down", e)
        refused = await http_refusal(chat_url(base(n2), dead_room, name="z"))
        R.check(f"{dead_room}: a new member while its master is down is refused with 503",
                refused is not None and refused[0] == 503, refused)
        R.note("during the outage: /healthz " + str([await n.health() for n in (n1, n2)]))

        ok = await cluster.restart(victim)
        R.check(f"the master 127.0.0.1:{victim} restarted empty (same nodes.conf): every master "
                "says cluster_state:ok within 30 s", ok)
        ok, hs = await wait_health([n1, n2], lambda h: h.get("broker_up") is True
                                   and h.get("status") == "ok", timeout=30)
        R.check("both nodes reconnect: /healthz status ok, broker_up true within 30 s", ok, hs)
        if not ok:
            R.note("(the rest needs the nodes back: skipped)")
            return
        for room, (a, b) in conns.items():
            after = None
            for i in range(40):
                await a.send(f"after{i}")
                e = await a.next_of(("error", "message"))
                if e.get("type") == "message":
                    after = e
                    break
                await asyncio.sleep(0.5)
            tag = f"{room}@{rooms[room]}"
            if room == dead_room:
                R.check(f"{tag}: its data is gone: the next message has a new epoch, offset 1",
                        after is not None and after.get("epoch") != epochs[room]
                        and after.get("offset") == 1, after)
            else:
                R.check(f"{tag}: on a master that stayed: the next message is offset 4, same epoch",
                        after is not None and after.get("epoch") == epochs[room]
                        and after.get("offset") == 4, after)
            if after is None:
                continue
            got = [m for m in await b.messages(1) if payload(m) != "during"]
            R.check(f"{tag}: the member on n2 gets it too", got and got[0].get("offset")
                    == after.get("offset") and got[0].get("epoch") == after.get("epoch"), got)
            c = await Conn.open(chat_url(base(n2), room, name="c", since=3, epoch=epochs[room]))
            w = c.welcome
            if room == dead_room:
                R.check(f"{tag}: resume since=3 with the old epoch: recovered=false, lost=epoch",
                        w.get("recovered") is False and w.get("lost") == "epoch"
                        and w.get("epoch") == after.get("epoch"), w)
            else:
                R.check(f"{tag}: resume since=3: recovered=true, first=4, offset=4",
                        w.get("recovered") is True and w.get("first") == 4 and w.get("offset") == 4, w)
            await c.close()
    finally:
        for pair in conns.values():
            for c in pair:
                if c is not None:
                    await c.close()


async def t_cluster_chaos(env, each):
    clients = []
    try:
        cluster = await env.redis_cluster()
        owner = cluster.owner(await cluster.keyslot(log_key("chaos")))
        R.note(f"room 'chaos' is on the master 127.0.0.1:{owner}")
        last = await chaos(env, each, 9, 3, 0.03, clients, redis=cluster)
        rc, out, err = await cluster.cli(owner, "hget", meta_key("chaos"), "top")
        R.check(f"redis-cli -p {owner} hget '{meta_key('chaos')}' top = the room's last offset {last}",
                out.strip() == str(last), (rc, out, err))
    finally:
        for c in clients:
            if getattr(c, "send_task", None):
                c.send_task.cancel()
            await c.stop()


# --------------------------------------------------------------------------------------------
TESTS = {
    "history": [("history/memory", lambda env, a: t_history(env, False)),
                ("history/redis", lambda env, a: t_history(env, True))],
    "resume": [("resume", lambda env, a: t_resume(env))],
    "too_old": [("too_old", lambda env, a: t_too_old(env))],
    "redis": [("redis-restart", lambda env, a: t_redis_restart(env))],
    "presence": [("presence", lambda env, a: t_presence(env))],
    "rate": [("rate", lambda env, a: t_rate(env))],
    "chaos": [("chaos", lambda env, a: t_chaos(env, a.chaos_each, interval=a.chaos_interval))],
    "cluster": [("cluster", lambda env, a: t_cluster(env))],
    "cluster_outage": [("cluster-outage", lambda env, a: t_cluster_outage(env))],
    "cluster_chaos": [("cluster-chaos", lambda env, a: t_cluster_chaos(env, a.cluster_chaos_each))],
}


async def main(args):
    chosen = args.only.split(",") if args.only else list(TESTS)
    for name in chosen:
        if name not in TESTS:
            raise SystemExit(f"unknown test {name}; tests: {', '.join(TESTS)}")
    t_start = time.monotonic()
    for name in chosen:
        for label, fn in TESTS[name]:
            R.test = label
            env = Env(args.wsx, keep=args.keep)
            failed_before = R.failed
            t0 = time.monotonic()
            task = asyncio.create_task(fn(env, args))
            try:
                done, _ = await asyncio.wait({task}, timeout=args.test_timeout)
                if not done:
                    task.cancel()
                    await asyncio.wait({task}, timeout=10)
                    R.check("finished within its time", False, f"not done in {args.test_timeout} s")
                elif task.exception() is not None:
                    e = task.exception()
                    where = [f"{os.path.basename(f.filename)}:{f.lineno} {f.line}"
                             for f in traceback.extract_tb(e.__traceback__)
                             if f.filename.startswith(os.path.dirname(os.path.abspath(__file__)))]
                    R.check("ran to the end", False, f"{type(e).__name__}: {e} at {' <- '.join(reversed(where[-3:]))}")
            finally:
                await env.close(show_logs=R.failed > failed_before)
            R.note(f"{label}: {time.monotonic() - t0:.1f} s")
    R.test = ""
    print(f"\nrooms: {R.passed} checks passed, {R.failed} failed "
          f"({time.monotonic() - t_start:.0f} s)", flush=True)
    return 1 if R.failed else 0


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--wsx", default="target/debug/wsx", help="the wsx binary")
    p.add_argument("--only", help="comma-separated test names")
    p.add_argument("--keep", action="store_true", help="keep the temporary directories (logs)")
    p.add_argument("--chaos-each", type=int, default=300, help="messages per chaos sender")
    p.add_argument("--cluster-chaos-each", type=int, default=100,
                   help="messages per chaos sender on the Redis Cluster")
    p.add_argument("--chaos-interval", type=float, default=0.03,
                   help="seconds between a chaos sender's messages")
    p.add_argument("--test-timeout", type=float, default=150, help="seconds per test")
    args = p.parse_args()
    args.wsx = os.path.abspath(args.wsx)
    missing = [x for x in ("redis-server", "redis-cli", "nginx") if program(x) is None]
    if missing:
        print(f"FAIL  {' and '.join(missing)} not installed "
              "(apt-get install redis-server redis-tools nginx)")
        sys.exit(1)
    if not os.access(args.wsx, os.X_OK):
        print(f"FAIL  no wsx binary at {args.wsx}")
        sys.exit(1)
    install_exit_handlers()
    sys.exit(asyncio.run(main(args)))
