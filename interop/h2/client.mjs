// An independent RFC 8441 client (Node's built-in http2 module, no WebSocket library): opens
// WebSockets as extended CONNECT streams to `wsx serve --http2` and speaks the frames by hand.
// usage: node interop/h2/client.mjs URL [--cafile PEM]     (URL: http://HOST:PORT or https://...)
// Prints one ok/FAIL line per check; exits 1 if any failed.
import http2 from "node:http2";
import { readFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import zlib from "node:zlib";

const url = process.argv[2];
const cafile = process.argv.includes("--cafile") ? process.argv[process.argv.indexOf("--cafile") + 1] : null;
let failures = 0;
const check = (name, ok, detail = "") => {
  if (!ok) failures += 1;
  console.log(`${ok ? "ok  " : "FAIL"} h2 client: ${name} ${detail}`);
};
const withTimeout = (promise, ms, what) =>
  Promise.race([promise, new Promise((_, no) => setTimeout(() => no(new Error(`${what}: no answer in ${ms} ms`)), ms))]);

/// A client frame: FIN, opcode, masked payload (RFC 6455 §5.2); `rsv1` for a compressed one.
function frame(opcode, payload, rsv1 = false) {
  const mask = randomBytes(4);
  const len = payload.length;
  const head = len < 126 ? Buffer.from([0x80 | (rsv1 ? 0x40 : 0) | opcode, 0x80 | len])
    : len < 65536 ? Buffer.from([0x80 | (rsv1 ? 0x40 : 0) | opcode, 0x80 | 126, len >> 8, len & 255])
    : (() => { const b = Buffer.alloc(10); b[0] = 0x80 | (rsv1 ? 0x40 : 0) | opcode; b[1] = 0x80 | 127; b.writeBigUInt64BE(BigInt(len), 2); return b; })();
  const body = Buffer.from(payload);
  for (let i = 0; i < body.length; i++) body[i] ^= mask[i % 4];
  return Buffer.concat([head, mask, body]);
}

/// Server frames from a stream, one at a time.
function reader(stream) {
  let buf = Buffer.alloc(0);
  const waiting = [];
  const frames = [];
  const pump = () => {
    for (;;) {
      if (buf.length < 2) return;
      let len = buf[1] & 0x7f, off = 2;
      if (buf[1] & 0x80) throw new Error("server frames must not be masked");
      if (len === 126) { if (buf.length < 4) return; len = buf.readUInt16BE(2); off = 4; }
      else if (len === 127) { if (buf.length < 10) return; len = Number(buf.readBigUInt64BE(2)); off = 10; }
      if (buf.length < off + len) return;
      const f = { fin: !!(buf[0] & 0x80), rsv1: !!(buf[0] & 0x40), opcode: buf[0] & 0x0f, payload: buf.subarray(off, off + len) };
      buf = buf.subarray(off + len);
      if (waiting.length) waiting.shift()(f); else frames.push(f);
    }
  };
  stream.on("data", (chunk) => { buf = Buffer.concat([buf, chunk]); pump(); });
  return () => withTimeout(frames.length ? Promise.resolve(frames.shift()) : new Promise((ok) => waiting.push(ok)), 10000, "a frame");
}

async function open(session, path, headers = {}) {
  const authority = new URL(url).host;
  const stream = session.request({
    ":method": "CONNECT", ":protocol": "websocket", ":scheme": new URL(url).protocol.slice(0, -1),
    ":path": path, ":authority": authority, "sec-websocket-version": "13", ...headers,
  });
  const response = await withTimeout(new Promise((ok, no) => { stream.on("response", ok); stream.on("error", no); }), 10000, "the response");
  return { stream, status: response[":status"], headers: response, next: reader(stream) };
}

const session = http2.connect(url, cafile ? { ca: readFileSync(cafile) } : {});
session.on("error", (e) => { console.log(`FAIL h2 client: session error ${e.message}`); process.exit(1); });
const settings = await withTimeout(new Promise((ok) => session.on("remoteSettings", ok)), 10000, "the server's SETTINGS");
check("server advertises SETTINGS_ENABLE_CONNECT_PROTOCOL", settings.enableConnectProtocol === true);

// Echo: text and binary, small and 200 KiB (flow control), on one stream.
const echo = await open(session, "/echo");
check("extended CONNECT answered 200", echo.status === 200, String(echo.status));
check("no HTTP/1.1 upgrade headers", !echo.headers["upgrade"] && !echo.headers["sec-websocket-accept"]);
echo.stream.write(frame(1, Buffer.from("héllo over h2")));
let f = await echo.next();
check("text echoed", f.opcode === 1 && f.payload.toString() === "héllo over h2");
const big = randomBytes(200 * 1024);
echo.stream.write(frame(2, big));
f = await echo.next();
check("200 KiB binary echoed", f.opcode === 2 && Buffer.compare(f.payload, big) === 0, `${f.payload.length} B`);
echo.stream.write(frame(9, Buffer.from("ping!")));
f = await echo.next();
check("ping answered with pong", f.opcode === 10 && f.payload.toString() === "ping!");

// Many WebSockets on the one connection at once.
const many = await Promise.all(Array.from({ length: 20 }, () => open(session, "/echo")));
many.forEach((ws, i) => ws.stream.write(frame(1, Buffer.from(`stream ${i}`))));
const answers = await Promise.all(many.map((ws) => ws.next()));
check("20 WebSockets on one connection", answers.every((a, i) => a.payload.toString() === `stream ${i}`));
for (const ws of many) { ws.stream.write(frame(8, Buffer.from([0x03, 0xe8]))); }
const closes = await Promise.all(many.map((ws) => ws.next()));
check("each closed with 1000 on its own", closes.every((c) => c.opcode === 8 && c.payload.readUInt16BE(0) === 1000));

// The first stream still works after its neighbours closed.
echo.stream.write(frame(1, Buffer.from("still here")));
f = await echo.next();
check("a stream outlives its neighbours' close", f.payload.toString() === "still here");

// permessage-deflate over h2 (no context takeover both ways, as wsx serve answers).
const dfl = await open(session, "/echo", { "sec-websocket-extensions": "permessage-deflate; client_max_window_bits" });
check("permessage-deflate negotiated", (dfl.headers["sec-websocket-extensions"] || "").startsWith("permessage-deflate"), dfl.headers["sec-websocket-extensions"]);
const text = "compress me ".repeat(200);
const compressed = zlib.deflateRawSync(Buffer.from(text), { finishFlush: zlib.constants.Z_SYNC_FLUSH }).subarray(0, -4);
dfl.stream.write(frame(1, compressed, true));
f = await dfl.next();
const plain = f.rsv1 ? zlib.inflateRawSync(Buffer.concat([f.payload, Buffer.from([0, 0, 0xff, 0xff])]), { finishFlush: zlib.constants.Z_SYNC_FLUSH }).toString() : f.payload.toString();
check("a compressed message echoed", plain === text, `${f.payload.length} B on the wire`);

// Close codes: the server echoes the code it receives.
const c = await open(session, "/echo");
c.stream.write(frame(8, Buffer.concat([Buffer.from([0x0f, 0xa0]), Buffer.from("bye")])));
f = await c.next();
check("close code 4000 echoed", f.opcode === 8 && f.payload.readUInt16BE(0) === 4000);
const bad = await open(session, "/echo");
bad.stream.write(frame(1, Buffer.from([0xff, 0xfe])));
f = await bad.next();
check("invalid UTF-8 closed with 1007", f.opcode === 8 && f.payload.readUInt16BE(0) === 1007);

// Refusals: a foreign Origin (403), an unknown path (404), a wrong version (426).
const origin = await open(session, "/echo", { origin: "https://evil.example" });
check("a foreign Origin refused with 403", origin.status === 403, String(origin.status));
const missing = await open(session, "/nowhere");
check("an unknown path refused with 404", missing.status === 404, String(missing.status));
const v8 = await open(session, "/echo", { "sec-websocket-version": "8" });
check("version 8 refused with 426", v8.status === 426 && v8.headers["sec-websocket-version"] === "13", String(v8.status));

// A chat room with superchat over h2.
const room = await open(session, "/chat/h2room?name=node", { "sec-websocket-protocol": "superchat" });
check("superchat chosen", room.headers["sec-websocket-protocol"] === "superchat");
f = await room.next();
check("superchat welcome", JSON.parse(f.payload.toString()).type === "welcome");
room.stream.write(frame(1, Buffer.from("hi room")));
f = await room.next();
const m = JSON.parse(f.payload.toString());
check("room message with its offset", m.type === "message" && m.text === "hi room" && m.offset === 1, f.payload.toString());

// Plain requests on the same connection.
const health = session.request({ ":path": "/healthz" });
const body = await withTimeout(new Promise((ok) => { let b = ""; health.on("data", (d) => (b += d)); health.on("end", () => ok(b)); }), 10000, "/healthz");
check("/healthz over the same connection", JSON.parse(body).status === "ok");

session.close();
console.log(failures ? `${failures} h2 check(s) failed` : "all h2 checks passed");
process.exit(failures ? 1 : 0);
