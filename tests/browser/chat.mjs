// The chat page of `wsx serve` in a real browser: two pages join one room, each sees the other's
// messages (and its own), the connection state reaches OPEN, the page speaks `superchat`
// (docs/rooms.md), and a screenshot is saved. Then page A goes away twice while page B talks:
// once by the network (emulated offline), once by its node shutting down (SIGTERM, 1001) and
// starting again on the same port with the same Redis. Each time A comes back and shows every
// missed message exactly once, in order, and the presence list shows both pages. Then a third
// page joins with the room's history; a node without Redis restarts (its history is gone) and
// the page says so; against a stand-in older server that speaks only `chat`, the page works as
// before; and a stand-in superchat server sends what the real one should not (a duplicate, a
// gap, a new epoch): the page drops, resumes, and says so.
//
// Usage: node tests/browser/chat.mjs [path/to/wsx]   (default: target/debug/wsx)
// Needs Debian's chromium (/usr/bin/chromium, or $CHROMIUM), `npm ci` in tests/browser and
// redis-server (without it, the node-restart part is skipped; under CI=true that is a failure).
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync } from "node:fs";
import { createConnection, createServer } from "node:net";
import { delimiter, dirname, join as joinPath, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const wsx = resolve(root, process.argv[2] ?? "target/debug/wsx");
const executablePath = process.env.CHROMIUM ?? "/usr/bin/chromium";
const shots = resolve(root, "target/browser");
mkdirSync(shots, { recursive: true });

function fail(message) {
  console.error(`FAIL: ${message}`);
  process.exitCode = 1;
  throw new Error(message);
}

const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));

// Every process this test starts, stopped by pid at the end (and if the test itself dies).
const children = new Set();
process.on("exit", () => children.forEach((child) => child.kill("SIGKILL")));

/// Stops `child` (SIGTERM, then SIGKILL after 10 s) and waits for it to exit.
async function stop(child) {
  if (child.exitCode === null && child.signalCode === null) {
    const exited = new Promise((ok) => child.once("exit", ok));
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), 10000);
    await exited;
    clearTimeout(timer);
  }
  children.delete(child);
}

// A watchdog: the whole test within 3 minutes, whatever hangs.
const watchdog = setTimeout(() => {
  console.error("FAIL: the test did not finish within 180 s");
  process.exit(1); // the exit handler kills the servers
}, 180000);

/// A free loopback port (for redis-server, which cannot report the one it picked).
function freePort() {
  return new Promise((ok, ko) => {
    const probe = createServer();
    probe.on("error", ko);
    probe.listen(0, "127.0.0.1", () => {
      const { port } = probe.address();
      probe.close(() => ok(port));
    });
  });
}

function which(program) {
  return (process.env.PATH ?? "").split(delimiter).map((dir) => joinPath(dir, program)).find(existsSync);
}

/// `wsx serve ARGS` (`--listen 127.0.0.1:PORT`, 0: a free one); resolves to {child, base, port}
/// once it answers /healthz with "ok" (with --redis: subscribed).
async function serve(port, args) {
  const child = spawn(wsx, ["serve", "--listen", `127.0.0.1:${port}`, ...args],
    { stdio: ["ignore", "pipe", "inherit"] });
  children.add(child);
  const base = await new Promise((ok, ko) => {
    let out = "";
    const timer = setTimeout(() => ko(new Error("wsx serve printed no address in 10 s")), 10000);
    child.stdout.on("data", (chunk) => {
      out += chunk;
      const match = out.match(/listening on (http:\/\/127\.0\.0\.1:\d+)\//);
      if (match) { clearTimeout(timer); ok(match[1]); }
    });
    child.on("exit", (code) => { clearTimeout(timer); ko(new Error(`wsx serve exited with ${code}`)); });
  });
  child.stdout.resume();
  const deadline = Date.now() + 20000;
  for (;;) {
    const health = await fetch(`${base}/healthz`, { signal: AbortSignal.timeout(2000) })
      .then((r) => r.text()).catch(() => "");
    if (health.includes('"ok"')) break;
    if (Date.now() > deadline) fail(`${base}/healthz is not "ok" after 20 s: ${health}`);
    await sleep(100);
  }
  return { child, base, port: Number(new URL(base).port) };
}

/// redis-server without persistence on a free loopback port; resolves once it answers PING.
async function startRedis(program) {
  const port = await freePort();
  const child = spawn(program, ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
    { stdio: "ignore" });
  children.add(child);
  const deadline = Date.now() + 10000;
  for (;;) {
    const pong = await new Promise((ok) => {
      const tcp = createConnection({ host: "127.0.0.1", port }, () => tcp.write("PING\r\n"));
      tcp.setTimeout(1000, () => { tcp.destroy(); ok(false); });
      tcp.on("data", (data) => { tcp.destroy(); ok(data.toString().startsWith("+PONG")); });
      tcp.on("error", () => ok(false));
    });
    if (pong) return { child, url: `redis://127.0.0.1:${port}` };
    if (child.exitCode !== null) fail(`redis-server exited with ${child.exitCode}`);
    if (Date.now() > deadline) fail("redis-server does not answer PING after 10 s");
    await sleep(50);
  }
}

/// A stand-in for an older `wsx serve` that speaks only `chat`: serves the page (fetched from
/// `pageFrom`) and relays text messages among its WebSockets, answering with `chat` (a minimal
/// RFC 6455 server: unfragmented text frames under 64 KiB, no extensions). After each message it
/// also sends a plain text and a notice, as an older server's members and notices would.
async function oldServer(pageFrom) {
  const html = await (await fetch(`${pageFrom}/`, { signal: AbortSignal.timeout(5000) })).text();
  const frame = (text) => {
    const data = Buffer.from(text);
    const head = data.length < 126 ? Buffer.from([0x81, data.length]) : Buffer.from([0x81, 126, data.length >> 8, data.length & 255]);
    return Buffer.concat([head, data]);
  };
  const members = new Set();
  const asked = [];
  const connections = new Set();
  const server = createServer((tcp) => {
    connections.add(tcp);
    let buf = Buffer.alloc(0);
    let open = false;
    tcp.on("error", () => {});
    tcp.on("close", () => { members.delete(tcp); connections.delete(tcp); });
    tcp.on("data", (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      if (!open) {
        const end = buf.indexOf("\r\n\r\n");
        if (end < 0) return;
        const head = buf.subarray(0, end).toString();
        buf = buf.subarray(end + 4);
        const key = head.match(/^sec-websocket-key:\s*(\S+)/im)?.[1];
        if (!key) {
          tcp.end(`HTTP/1.1 200 OK\r\ncontent-type: text/html; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(html)}\r\nconnection: close\r\n\r\n${html}`);
          return;
        }
        asked.push({ path: head.split(" ")[1], protocols: head.match(/^sec-websocket-protocol:\s*(.*?)\s*$/im)?.[1] });
        const accept = createHash("sha1").update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest("base64");
        tcp.write("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
          `Sec-WebSocket-Accept: ${accept}\r\nSec-WebSocket-Protocol: chat\r\n\r\n`);
        open = true;
        members.add(tcp);
      }
      while (buf.length >= 6) {
        const opcode = buf[0] & 15;
        let [len, at] = [buf[1] & 127, 2];
        if (len === 126) [len, at] = [buf.readUInt16BE(2), 4];
        if (len === 127) { tcp.destroy(); return; }
        if (buf.length < at + 4 + len) return;
        const mask = buf.subarray(at, at + 4);
        const data = Buffer.from(buf.subarray(at + 4, at + 4 + len).map((b, i) => b ^ mask[i % 4])).toString();
        buf = buf.subarray(at + 4 + len);
        if (opcode === 1) {
          for (const member of members) member.write(frame(data));
          tcp.write(frame("plain text from an old client"));
          tcp.write(frame(JSON.stringify({ system: "a message of yours was dropped", undelivered: true })));
        } else if (opcode === 8) {
          tcp.end(Buffer.from([0x88, 0]));
        }
      }
    });
  });
  await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
  const close = () => { server.close(); connections.forEach((tcp) => tcp.destroy()); };
  return { close, asked, base: `http://127.0.0.1:${server.address().port}` };
}

// Two nodes sharing rooms through Redis (A's node restarts, B's stays up); without redis-server,
// one node in memory for both pages, and no restart.
const redisServer = which("redis-server");
if (!redisServer && process.env.CI === "true") fail("redis-server is not installed (CI may not skip a suite)");
const redis = redisServer ? await startRedis(redisServer) : null;
const cluster = (name) => (redis ? ["--redis", redis.url, "--node", name] : []);
let nodeA = await serve(0, cluster("n1"));
const nodeB = redis ? await serve(0, cluster("n2")) : nodeA;

let browser;
try {
  browser = await chromium.launch({
    executablePath,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  // One context per page: A's network goes offline without B's.
  const join = async (name, base, room = "browsers") => {
    const context = await browser.newContext({ viewport: { width: 800, height: 600 } });
    const page = await context.newPage();
    page.on("console", (m) => m.type() === "error" && console.error(`[${name}] ${m.text()}`));
    await page.goto(`${base}/`);
    await page.fill("#name", name);
    await page.fill("#room", room);
    await page.click("#join");
    await page.waitForFunction(() => document.querySelector("#state").textContent === "OPEN", null, { timeout: 10000 });
    return { page, context };
  };
  const { page: alice, context: aliceContext } = await join("alice", nodeA.base);
  const { page: bob } = await join("bob", nodeB.base);
  const sent = []; // every message sent to the room, by the pages
  const say = async (page, text) => {
    await page.fill("#text", text);
    await page.click("#send");
    sent.push(text);
  };
  // The members' messages a page shows (not the system lines), in its order.
  const texts = (page) => page.$$eval("#messages li:not(.system)", (items) => items.map((li) => li.childNodes[1].textContent));
  const systemLines = (page) => page.$$eval("#messages li.system", (items) => items.map((li) => li.textContent));
  // A list of texts, for a failure (the long one shortened).
  const show = (list) => JSON.stringify(list.map((t) => (t.length > 40 ? `${t.slice(0, 37)}...` : t)));
  const state = (page) => page.evaluate(() => document.querySelector("#state").textContent);
  await say(alice, "hello from alice");
  await say(bob, "hi alice, bob here");
  const expect = async (page, who, texts_) => {
    for (const text of texts_) {
      try {
        await page.waitForSelector(`#messages li:has-text("${text}")`, { timeout: 10000 });
      } catch {
        fail(`${who} did not see "${text}"`);
      }
    }
    // Both see the room's messages in the same order.
    return texts(page);
  };
  const seenByAlice = await expect(alice, "alice", ["hello from alice", "hi alice, bob here"]);
  const seenByBob = await expect(bob, "bob", ["hello from alice", "hi alice, bob here"]);
  if (JSON.stringify(seenByAlice) !== JSON.stringify(seenByBob)) {
    fail(`different orders: alice ${JSON.stringify(seenByAlice)}, bob ${JSON.stringify(seenByBob)}`);
  }
  const protocol = await alice.evaluate(() => document.querySelector("#info").textContent);
  if (!protocol.includes("subprotocol: superchat")) fail(`superchat not negotiated: ${protocol}`);
  // Chromium offers permessage-deflate and wsx serve accepts it: the chat ran compressed.
  if (!protocol.includes("extensions: permessage-deflate")) fail(`no compression: ${protocol}`);
  // A long message crosses compressed both ways and arrives intact.
  const long = "compressible ".repeat(2000).trim();
  await say(alice, long);
  await bob.waitForFunction((text) => [...document.querySelectorAll("#messages li")]
    .some((li) => li.childNodes[1] && li.childNodes[1].textContent === text), long, { timeout: 10000 })
    .catch(() => fail("bob did not receive the long compressed message intact"));
  console.log(`ok: two pages chatted in one room (${protocol.match(/extensions: [^)]*/)[0]})`);

  // The presence list of `page` becomes `names` (sorted) within `ms`.
  const presence = (page) => page.$$eval("#members li", (items) => items.map((li) => li.textContent).sort());
  const expectPresence = async (page, who, names, ms = 10000) => {
    await page.waitForFunction((want) => JSON.stringify([...document.querySelectorAll("#members li")]
      .map((li) => li.textContent).sort()) === want, JSON.stringify(names), { timeout: ms })
      .catch(async () => fail(`${who}'s presence list is ${JSON.stringify(await presence(page))}, not ${JSON.stringify(names)}`));
  };
  await expectPresence(alice, "alice", ["alice", "bob"]);
  await expectPresence(bob, "bob", ["alice", "bob"]);

  // A is away (`goAway`), B says `missed` meanwhile, A comes back (`comeBack`): A shows every
  // message once, in the room's order (B's), and the missed ones in the order B sent them.
  const resumed = async () => (await systemLines(alice)).filter((l) => l.startsWith("5 message(s) sent while you were away")).length;
  const away = async (what, goAway, comeBack, ms) => {
    const resumedBefore = await resumed();
    // First A has everything said so far (what it missed is then exactly `missed`).
    await alice.waitForFunction((n) => document.querySelectorAll("#messages li:not(.system)").length === n, sent.length, { timeout: 10000 })
      .catch(async () => fail(`${what}: before, alice shows ${show(await texts(alice))}, not ${show(sent)}`));
    await goAway();
    await alice.waitForFunction(() => document.querySelector("#state").textContent !== "OPEN", null, { timeout: 10000 })
      .catch(() => fail(`${what}: alice's page still says OPEN`));
    const missed = [1, 2, 3, 4, 5].map((i) => `missed while ${what} #${i}`);
    for (const text of missed) await say(bob, text);
    await expect(bob, "bob", missed);
    if ((await texts(alice)).some((t) => missed.includes(t))) fail(`${what}: alice got a message while away`);
    await comeBack();
    await alice.waitForFunction((last) => [...document.querySelectorAll("#messages li:not(.system)")]
      .some((li) => li.childNodes[1].textContent === last), missed.at(-1), { timeout: ms })
      .catch(async () => fail(`${what}: alice did not get the missed messages back within ${ms / 1000} s ` +
        `(state ${await state(alice)}; system lines ${JSON.stringify(await systemLines(alice))})`));
    await sleep(300); // a duplicate would arrive now
    const [a, b] = [await texts(alice), await texts(bob)];
    if (JSON.stringify(a) !== JSON.stringify(b)) {
      fail(`${what}: alice shows ${show(a)}, bob ${show(b)}`);
    }
    if (new Set(a).size !== a.length || a.length !== sent.length || !sent.every((t) => a.includes(t))) {
      fail(`${what}: alice shows ${show(a)}, the room was sent ${show(sent)}`);
    }
    if (JSON.stringify(a.filter((t) => missed.includes(t))) !== JSON.stringify(missed)) fail(`${what}: missed messages out of order`);
    const lines = await systemLines(alice);
    if (lines.some((l) => l.includes("lost"))) fail(`${what}: alice's page says messages were lost: ${JSON.stringify(lines)}`);
    if (await resumed() !== resumedBefore + 1) {
      fail(`${what}: alice's page did not resume with the 5 missed messages: ${JSON.stringify(lines)}`);
    }
    await expectPresence(alice, "alice", ["alice", "bob"]);
    await expectPresence(bob, "bob", ["alice", "bob"]);
    console.log(`ok: ${what}: alice came back with the ${missed.length} missed messages, once each, in order`);
  };

  // 1. The network goes (Chromium keeps the socket open: the page drops it on `offline`).
  await away("the network was offline",
    () => aliceContext.setOffline(true),
    () => aliceContext.setOffline(false), 10000);

  // 2. A's node shuts down (every client closed with 1001) and starts again on the same port;
  //    the history is in Redis. The page reconnects on its backoff (0.5 s, 1 s, 2 s, ...).
  if (redis) {
    await away("alice's node restarted",
      async () => {
        await stop(nodeA.child);
        await alice.waitForSelector('#messages li.system:has-text("code 1001")', { timeout: 10000 })
          .catch(async () => fail(`no 1001 from the stopping node: ${JSON.stringify(await systemLines(alice))}`));
      },
      async () => { nodeA = await serve(nodeA.port, cluster("n1")); }, 30000);
  } else {
    console.log("SKIPPED: a node restart with the history in Redis (redis-server is not installed)");
  }

  // What the server sent twice or with a gap (the page drops duplicates and resumes over gaps).
  for (const [who, page] of [["alice", alice], ["bob", bob]]) {
    const stats = await page.evaluate(() => stats);
    if (stats.duplicates || stats.gaps) console.log(`note: ${who}'s page dropped ${stats.duplicates} duplicate(s), resumed over ${stats.gaps} gap(s)`);
  }
  await alice.screenshot({ path: resolve(shots, "chat-alice.png") });
  await bob.screenshot({ path: resolve(shots, "chat-bob.png") });

  // A newcomer joins with the room's history (the page asks for the last 50): what was said so
  // far, in the room's order, then live messages.
  const { page: erin, context: erinContext } = await join("erin", nodeB.base);
  const room = await texts(bob);
  await erin.waitForFunction((want) => JSON.stringify([...document.querySelectorAll("#messages li:not(.system)")]
    .map((li) => li.childNodes[1].textContent)) === want, JSON.stringify(room), { timeout: 10000 })
    .catch(async () => fail(`erin joined with the history ${show(await texts(erin))}, not ${show(room)}`));
  await say(alice, "welcome erin");
  await expect(erin, "erin", ["welcome erin"]);
  await expectPresence(erin, "erin", ["alice", "bob", "erin"]);
  await expectPresence(alice, "alice", ["alice", "bob", "erin"]);
  await erinContext.close();
  console.log(`ok: a newcomer got the room's ${room.length} messages as history, then live ones, and sees everyone present`);

  // 3. A node without Redis restarts: the room's history is gone, and the page says so.
  let lone = await serve(0, []);
  const { page: carol, context: carolContext } = await join("carol", lone.base, "alone");
  await say(carol, "before the restart");
  await expect(carol, "carol", ["before the restart"]);
  await stop(lone.child);
  lone = await serve(lone.port, []);
  await carol.waitForFunction(() => [...document.querySelectorAll("#messages li.system")]
    .some((li) => li.textContent.includes("history was lost")), null, { timeout: 30000 })
    .catch(async () => fail(`carol's page did not say the history was lost: ${JSON.stringify(await systemLines(carol))}`));
  await say(carol, "after the restart");
  await expect(carol, "carol", ["after the restart"]);
  await carolContext.close();
  await stop(lone.child);
  console.log("ok: a restarted node without Redis: the page said the history was lost, and went on");

  // 4. An older server, that speaks only `chat` (a stand-in, above): the page asks for superchat
  //    first, and works as before: members' messages as sent, notices, no presence list.
  const old = await oldServer(nodeB.base);
  try {
    const { page: dave, context: daveContext } = await join("dave", old.base, "old");
    await say(dave, "hi from dave");
    await expect(dave, "dave", ["hi from dave", "plain text from an old client"]);
    await dave.waitForSelector('#messages li.system:has-text("a message of yours was dropped")', { timeout: 10000 })
      .catch(() => fail("dave's page did not show the chat notice as a system line"));
    const daveInfo = await dave.evaluate(() => document.querySelector("#info").textContent);
    const daveTexts = await texts(dave);
    if (JSON.stringify(daveTexts) !== JSON.stringify(["hi from dave", "plain text from an old client"])) {
      fail(`dave's page shows ${JSON.stringify(daveTexts)}`);
    }
    if (!daveInfo.includes("subprotocol: chat;")) fail(`dave's page: ${daveInfo}`);
    if (!(await dave.evaluate(() => document.querySelector("#presence").hidden))) fail("dave's page shows a presence list with chat");
    const [asked] = old.asked;
    if (asked.protocols !== "superchat, chat" || !asked.path.includes("history=50")) fail(`the page asked for ${JSON.stringify(asked)}`);
    console.log(`ok: with a server that speaks only chat, the page works as before (it asked for ${asked.protocols})`);
    await daveContext.close();
  } finally {
    old.close();
  }

  // 5. Frames the real server should never send, from a stand-in superchat server in the page's
  //    network: a duplicate, a gap (the page resumes after the last message it showed), a new
  //    epoch; and the rest of the format: presence events, an error, a binary and a non-JSON text.
  const frank = await (await browser.newContext({ viewport: { width: 800, height: 600 } })).newPage();
  const urls = [];
  await frank.routeWebSocket(/\/chat\//, (ws) => {
    urls.push(new URL(ws.url()).search);
    const send = (frame) => ws.send(JSON.stringify(frame));
    const post = (epoch, offset, text) => send({ type: "message", epoch, offset, text });
    if (urls.length === 1) {
      send({ type: "welcome", room: "mock", epoch: "e1", offset: 2, first: 1, member: "m1",
        presence: [{ member: "m1", name: "frank" }, { member: "m2", name: "gina" }] });
      post("e1", 1, JSON.stringify({ name: "gina", text: "one", id: "x" }));
      post("e1", 2, "not json");
      post("e1", 2, "not json");
      send({ type: "message", epoch: "e1", offset: 3, binary: "AAEC" });
      send({ type: "join", member: "m3", name: "hank" });
      send({ type: "leave", member: "m2", name: "gina" });
      send({ type: "error", reason: "rate", dropped: true, text: "rate limit: slow down" });
      post("e1", 5, "five, too early");
    } else if (urls.length === 2) {
      send({ type: "welcome", room: "mock", epoch: "e1", offset: 5, first: 4, recovered: true, member: "m4",
        presence: [{ member: "m4", name: "frank" }, { member: "m3", name: "hank" }] });
      post("e1", 4, "four");
      post("e1", 5, "five");
      post("e2", 1, "after a reset");
      ws.close({ code: 1001, reason: "going away" });
    } else {
      // The same epoch, but its offsets started again (say, a lagging replica took over).
      send({ type: "welcome", room: "mock", epoch: "e2", offset: 1, first: 1, recovered: false, lost: "epoch", member: "m5",
        presence: [{ member: "m5", name: "frank" }, { member: "m3", name: "hank" }] });
      post("e2", 1, "another at e2:1");
    }
  });
  await frank.goto(`${nodeB.base}/`);
  await frank.fill("#name", "frank");
  await frank.fill("#room", "mock");
  await frank.click("#join");
  const franksTexts = ["one", "not json", "[binary message, 3 bytes]", "four", "five", "after a reset", "another at e2:1"];
  await frank.waitForFunction((want) => JSON.stringify([...document.querySelectorAll("#messages li:not(.system)")]
    .map((li) => li.childNodes[1].textContent)) === want, JSON.stringify(franksTexts), { timeout: 10000 })
    .catch(async () => fail(`with the stand-in superchat server, frank's page shows ${show(await texts(frank))}`));
  const franksLines = (await systemLines(frank)).join("\n");
  for (const line of ["not sent (rate): rate limit: slow down", "messages 4 to 4 missing: resuming", "a new epoch",
    "code 1001: going away", "history was lost"]) {
    if (!franksLines.includes(line)) fail(`frank's page has no system line "${line}": ${franksLines}`);
  }
  if (JSON.stringify(urls) !== JSON.stringify(["?name=frank&history=50", "?name=frank&since=3&epoch=e1", "?name=frank&since=1&epoch=e2"])) {
    fail(`frank's page connected with ${JSON.stringify(urls)}`);
  }
  await expectPresence(frank, "frank", ["frank", "hank"]);
  await frank.context().close();
  console.log("ok: with a stand-in superchat server: duplicate dropped, gap resumed, new epoch said, presence, error, binary");

  console.log(`ok: screenshots in ${shots}/chat-alice.png and chat-bob.png`);
} finally {
  if (browser) await browser.close();
  for (const child of [...children].reverse()) await stop(child); // redis-server last
  clearTimeout(watchdog);
}
