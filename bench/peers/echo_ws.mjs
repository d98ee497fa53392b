// Node `ws` echo server for bench/run.py (scenario z): `node echo_ws.mjs PORT`.
//
// Echoes text and binary on any path, with permessage-deflate on (a ws server has it off by
// default) with ws's defaults (context takeover, 15-bit windows, Node zlib's default level
// and memLevel, at most 10 zlib jobs at a time on libuv's thread pool), except the threshold:
// 64 B as wsx's instead of 1024 B, so that every message of the scenario is compressed
// whatever its size. Prints `ready` once listening.
// `ws` is the one scripts/interop.sh installs under interop/node/node_modules.
import { createRequire } from "node:module";

const require = createRequire(new URL("../../interop/node/package.json", import.meta.url));
const { WebSocketServer } = require("ws");

const port = Number(process.argv[2]);
const wss = new WebSocketServer(
  { host: "127.0.0.1", port, perMessageDeflate: { threshold: 64 } },
  () => console.log("ready"),
);
wss.on("connection", (ws) => {
  ws.on("message", (data, isBinary) => ws.send(data, { binary: isBinary }));
});
