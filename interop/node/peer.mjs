// Node's `ws` as an interop peer of wsx, both ways (same modes as interop/python/peer.py).
//
//   node peer.mjs server PORT [--deflate off|default|fresh|w9] [--tls CERT KEY]
//   node peer.mjs client URL [--deflate ...] [--server-deflate off] [--cafile PEM]
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { createServer } from "node:https";
import WebSocket, { WebSocketServer } from "ws";

const MAX = 2 ** 25;
const SIZES = [0, 1, 125, 126, 65535, 65536, 1 << 20, 16 << 20];
const args = process.argv.slice(2);
const option = (name, fallback, count = 1) => {
  const i = args.indexOf(name);
  if (i < 0) return fallback;
  return count === 1 ? args[i + 1] : args.slice(i + 1, i + 1 + count);
};

function deflate(kind) {
  switch (kind) {
    case "off": return false;
    case "default": return { threshold: 0 };
    case "fresh": return { threshold: 0, serverNoContextTakeover: true, clientNoContextTakeover: true };
    case "w9": return { threshold: 0, serverMaxWindowBits: 9, clientMaxWindowBits: 9 };
    default: throw new Error("deflate is off, default, fresh or w9");
  }
}

if (args[0] === "server") {
  const port = Number(args[1]);
  const tls = option("--tls", null, 2);
  const common = {
    perMessageDeflate: deflate(option("--deflate", "default")),
    maxPayload: MAX,
    handleProtocols: (protocols) => (protocols.has("chat") ? "chat" : false),
  };
  let wss;
  if (tls) {
    const https = createServer({ cert: readFileSync(tls[0]), key: readFileSync(tls[1]) });
    wss = new WebSocketServer({ server: https, ...common });
    https.listen(port, "127.0.0.1", () => console.log("ready"));
  } else {
    wss = new WebSocketServer({ port, host: "127.0.0.1", ...common }, () => console.log("ready"));
  }
  wss.on("connection", (ws, request) => {
    const close = request.url.match(/^\/close\/(\d+)/);
    if (close) return ws.close(Number(close[1]), "closing as asked");
    ws.on("message", (data, isBinary) => ws.send(data, { binary: isBinary }));
  });
} else {
  const url = args[1];
  const kind = option("--deflate", "default");
  const cafile = option("--cafile", null);
  let failures = 0;
  const check = (name, ok, detail = "") => {
    if (!ok) failures += 1;
    console.log(`${ok ? "ok  " : "FAIL"} node client: ${name} ${detail}`);
  };
  const ws = new WebSocket(url, ["chat", "superchat"], {
    perMessageDeflate: deflate(kind), maxPayload: MAX, ...(cafile ? { ca: readFileSync(cafile) } : {}),
  });
  const inbox = [];
  let waiting = null;
  ws.on("message", (data, isBinary) => {
    const m = { data: isBinary ? data : data.toString(), isBinary };
    if (waiting) { const w = waiting; waiting = null; w(m); } else inbox.push(m);
  });
  const next = () => (inbox.length ? Promise.resolve(inbox.shift()) : new Promise((ok) => { waiting = ok; }));
  const closed = new Promise((ok) => ws.on("close", (code, reason) => ok({ code, reason: reason.toString() })));
  ws.on("error", (e) => { console.log(`FAIL node client: ${e.message}`); process.exit(1); });
  await new Promise((ok) => ws.on("open", ok));
  const expected = url.includes("/chat/") ? "chat" : "";
  check("subprotocol", ws.protocol === expected, `${ws.protocol || "none"} (expected ${expected || "none"})`);
  const agree = kind !== "off" && option("--server-deflate", "on") !== "off";
  check(agree ? "deflate negotiated" : "no deflate", agree === ws.extensions.includes("permessage-deflate"), ws.extensions);
  for (const size of SIZES) {
    const text = "é".repeat(size / 2);
    ws.send(text);
    const t = await next();
    const data = Buffer.from(Array.from({ length: size }, (_, i) => i % 251));
    ws.send(data);
    const b = await next();
    check(`echo ${size} B text and binary`, !t.isBinary && t.data === text && b.isBinary && data.equals(b.data));
  }
  // Random bytes do not compress: deflated, a message at wsx serve's default limit (16 MiB) is
  // larger than the limit on the wire, and must still pass.
  for (const size of [16 << 20, (16 << 20) - 1]) {
    const data = randomBytes(size);
    ws.send(data);
    const b = await next();
    check(`echo ${size} B of random bytes`, b.isBinary && data.equals(b.data));
  }
  ws.send("Hel", { fin: false });
  ws.send("lo, ", { fin: false });
  ws.send("fragments", { fin: true });
  check("fragmented message", (await next()).data === "Hello, fragments");
  const pong = new Promise((ok) => ws.once("pong", ok));
  ws.ping("ping-payload");
  check("ping answered", (await pong).toString() === "ping-payload");
  ws.close(4000, "bye");
  const { code } = await closed;
  check("close code echoed", code === 4000, String(code));
  process.exit(failures ? 1 : 0);
}
