// The chat page of `wsx serve` in a real browser: two pages join one room, each sees the other's
// messages (and its own), the connection state reaches OPEN, and a screenshot is saved.
//
// Usage: node tests/browser/chat.mjs [path/to/wsx]   (default: target/debug/wsx)
// Needs Debian's chromium (/usr/bin/chromium, or $CHROMIUM) and `npm ci` in tests/browser.
import { spawn } from "node:child_process";
import { mkdirSync } from "node:fs";
import { dirname, resolve } from "node:path";
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

// Start the server on a free loopback port and read its address from the first line.
const server = spawn(wsx, ["serve", "--listen", "127.0.0.1:0"], { stdio: ["ignore", "pipe", "inherit"] });
const base = await new Promise((ok, ko) => {
  let out = "";
  const timer = setTimeout(() => ko(new Error("wsx serve printed no address in 10 s")), 10000);
  server.stdout.on("data", (chunk) => {
    out += chunk;
    const match = out.match(/listening on (http:\/\/127\.0\.0\.1:\d+)\//);
    if (match) { clearTimeout(timer); ok(match[1]); }
  });
  server.on("exit", (code) => ko(new Error(`wsx serve exited with ${code}`)));
});
server.stdout.resume();

let browser;
try {
  browser = await chromium.launch({
    executablePath,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  const context = await browser.newContext({ viewport: { width: 800, height: 600 } });
  const join = async (name) => {
    const page = await context.newPage();
    page.on("console", (m) => m.type() === "error" && console.error(`[${name}] ${m.text()}`));
    await page.goto(`${base}/`);
    await page.fill("#name", name);
    await page.fill("#room", "browsers");
    await page.click("#join");
    await page.waitForFunction(() => document.querySelector("#state").textContent === "OPEN", null, { timeout: 10000 });
    return page;
  };
  const alice = await join("alice");
  const bob = await join("bob");
  const say = async (page, text) => {
    await page.fill("#text", text);
    await page.click("#send");
  };
  await say(alice, "hello from alice");
  await say(bob, "hi alice, bob here");
  const expect = async (page, who, texts) => {
    for (const text of texts) {
      try {
        await page.waitForSelector(`#messages li:has-text("${text}")`, { timeout: 10000 });
      } catch {
        fail(`${who} did not see "${text}"`);
      }
    }
    // Both see the room's messages in the same order.
    return page.$$eval("#messages li:not(.system)", (items) => items.map((li) => li.childNodes[1].textContent));
  };
  const seenByAlice = await expect(alice, "alice", ["hello from alice", "hi alice, bob here"]);
  const seenByBob = await expect(bob, "bob", ["hello from alice", "hi alice, bob here"]);
  if (JSON.stringify(seenByAlice) !== JSON.stringify(seenByBob)) {
    fail(`different orders: alice ${JSON.stringify(seenByAlice)}, bob ${JSON.stringify(seenByBob)}`);
  }
  const protocol = await alice.evaluate(() => document.querySelector("#info").textContent);
  if (!protocol.includes("subprotocol: chat")) fail(`subprotocol not negotiated: ${protocol}`);
  // Chromium offers permessage-deflate and wsx serve accepts it: the chat ran compressed.
  if (!protocol.includes("extensions: permessage-deflate")) fail(`no compression: ${protocol}`);
  // A long message crosses compressed both ways and arrives intact.
  const long = "compressible ".repeat(2000).trim();
  await say(alice, long);
  await bob.waitForFunction((text) => [...document.querySelectorAll("#messages li")]
    .some((li) => li.childNodes[1] && li.childNodes[1].textContent === text), long, { timeout: 10000 })
    .catch(() => fail("bob did not receive the long compressed message intact"));
  await alice.screenshot({ path: resolve(shots, "chat-alice.png") });
  await bob.screenshot({ path: resolve(shots, "chat-bob.png") });
  console.log(`ok: two pages chatted in one room (${protocol.match(/extensions: [^)]*/)[0]}); screenshots in ${shots}/chat-alice.png and chat-bob.png`);
} finally {
  if (browser) await browser.close();
  server.kill("SIGTERM");
}
