#!/usr/bin/env python3
"""Side-by-side benchmark: wsx serve against tokio-tungstenite, fastwebsockets, tokio-websockets
and a raw-TCP floor, on loopback, with the same load generator (`wsx bench`), runs interleaved;
with permessage-deflate (z), against Python's websockets and Node's ws instead.

usage: bench/run.py [--runs 3] [--seconds 2] [--idle 10000] [--out BENCHMARKS.md] [--only LETTERS]
                    [--no-build]

It first builds, in release mode, `wsx`, the `measure` example (which holds the idle
connections of e) and the peer servers under bench/servers (and, for z, installs the Python
and Node peers as scripts/interop.sh does, if they are missing). --no-build runs the binaries
as they are (e.g. while someone else is building in the same tree).

--only (e.g. `--only d` or `--only ape`) runs just those scenarios and prints their table
without writing BENCHMARKS.md: for iterating on one number.

Scenarios (as in the issue): a 100 x 16 B, 1 in flight; b 10 x 64 KiB; c 1 x 16 MiB;
p 100 x 16 B, 16 in flight; d handshakes/s (10 workers); f the same with every server's accept
loop on a runtime worker (as wsx serve's is); e server memory per idle connection
(RSS delta with N connections open); A, P, D: a and p with 512 connections, and d, with the
server pinned to core 0 and the load generator to core 1 (taskset), so that the server is the
bottleneck. Prints medians, ratio to the best peer and to the floor, and a second table of the
server's CPU (user + system, from /proc) per message or handshake.

t: a over TLS (wss://): 100 x 16 B, 1 in flight. wsx serve with --tls-cert/--tls-key; the
peers (and the floor, then a TLS echo floor) built with rustls 0.23 / tokio-rustls 0.26 and the
ring provider, as wsx is (bench/servers/src/lib.rs: BENCH_TLS_CERT and BENCH_TLS_KEY switch a
peer to TLS; the handshake runs in the connection's task, then the same echo code). The load
generator is `wsx bench wss://... --cacert`. The certificate (RSA 2048, self-signed for
IP:127.0.0.1, as scripts/interop.sh makes it) is made by openssl once per run, in a temporary
directory removed at the end. Both sides are rustls with its safe default protocol
versions: TLS 1.3.

z: permessage-deflate echo: 100 x 1 KiB text, 1 in flight (`wsx bench --text --deflate`:
the text is 'x' repeated, highly compressible, so the work measured is mostly the per-message
cost of (de)compressing, not LZ77 search). Other servers: wsx serve with its deflate on (its
default: no context takeover, state freed after each message), Python websockets 17
(bench/peers/echo_websockets.py, its defaults: context takeover, 12-bit windows, memLevel 5;
asyncio, one thread) and Node ws 8 (bench/peers/echo_ws.mjs, context takeover, 15-bit windows,
threshold 64 B like wsx's; zlib on libuv's thread pool). The Rust peers have no
permessage-deflate (tokio-tungstenite 0.30, fastwebsockets, tokio-websockets), and there is no
floor: its cells are "-". Each server is checked in every run, before it is measured, by
`deflate_check`: a handshake with wsx bench's offer ("permessage-deflate;
client_max_window_bits") must be answered with permessage-deflate, and the echo of one 1 KiB
'x' text message must come back compressed (RSV1 set); else the measurement counts as failed.
(Checked once by hand too: `wsx connect -v` shows each server's Sec-WebSocket-Extensions answer.)
The Python and Node peers are the ones of the interop suite: target/interop-venv and
interop/node/node_modules.

A full run of every scenario takes about 6-7 minutes on a shared 2-core machine (t and z add
about 65 s of it).
"""
import argparse
import base64
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import json

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WSX = os.path.join(ROOT, "target/release/wsx")
HOLD = os.path.join(ROOT, "target/release/examples/measure")
PEERS = os.path.join(ROOT, "bench/servers/target/release")
SERVERS = {
    "wsx": lambda port: [WSX, "serve", "--listen", f"127.0.0.1:{port}", "--log", "error",
                         "--max-connections", "20000", "--max-message-size", "64MiB",
                         "--no-deflate", "--keepalive", "0"],
    "tokio-tungstenite": lambda port: [f"{PEERS}/tungstenite", str(port)],
    "fastwebsockets": lambda port: [f"{PEERS}/fastwebsockets", str(port)],
    "tokio-websockets": lambda port: [f"{PEERS}/tokio_websockets", str(port)],
    "floor (raw TCP)": lambda port: [f"{PEERS}/raw", str(port)],
}
PEER_NAMES = ["tokio-tungstenite", "fastwebsockets", "tokio-websockets"]
FLOOR = "floor (raw TCP)"
PYTHON = os.path.join(ROOT, "target/interop-venv/bin/python")
NODE_MODULES = os.path.join(ROOT, "interop/node/node_modules")
# The servers of z (permessage-deflate): wsx serve with its deflate on, and the peers that
# have permessage-deflate.
DEFLATE_SERVERS = {
    "wsx": lambda port: [WSX, "serve", "--listen", f"127.0.0.1:{port}", "--log", "error",
                         "--max-connections", "20000", "--max-message-size", "64MiB",
                         "--keepalive", "0"],
    "websockets (Python)": lambda port: [PYTHON, os.path.join(ROOT, "bench/peers/echo_websockets.py"), str(port)],
    "ws (Node)": lambda port: ["node", os.path.join(ROOT, "bench/peers/echo_ws.mjs"), str(port)],
}
DEFLATE_PEERS = ["websockets (Python)", "ws (Node)"]
# What `wsx bench --deflate` offers (wsx_proto's DeflateConfig::default().offer()).
DEFLATE_OFFER = "permessage-deflate; client_max_window_bits"
SCENARIOS = {
    "a: 100 conn x 16 B, 1 in flight": ["-c", "100", "-s", "16", "-k", "1"],
    "b: 10 conn x 64 KiB": ["-c", "10", "-s", "65536", "-k", "1"],
    "c: 1 conn x 16 MiB": ["-c", "1", "-s", "16777216", "-k", "1"],
    "p: 100 conn x 16 B, 16 in flight": ["-c", "100", "-s", "16", "-k", "16"],
    "d: handshakes/s (10 workers)": ["--mode", "handshake", "-c", "10"],
    "f: d with every accept loop on a worker": ["--mode", "handshake", "-c", "10"],
    # The server pinned to core 0, the load generator to core 1 (`taskset`), 512 connections:
    # the server is the bottleneck, so its CPU per message (or handshake) decides the rate.
    "A: a, 512 conn, server on 1 core": ["-c", "512", "-s", "16", "-k", "1"],
    "P: p, 512 conn, server on 1 core": ["-c", "512", "-s", "16", "-k", "16"],
    "D: d, server on 1 core": ["--mode", "handshake", "-c", "10"],
    "t: a over TLS (wss://)": ["-c", "100", "-s", "16", "-k", "1"],
    "z: 100 conn x 1 KiB text, deflate": ["-c", "100", "-s", "1024", "-k", "1", "--text", "--deflate"],
}
# Scenarios run with the server and the load generator on one core each.
PINNED = {"A", "P", "D"}
ALL = "abcdpfeAPDtz"
# Scenarios over TLS (wss://, with a certificate made for the run).
TLS = {"t"}
# Scenarios with permessage-deflate: DEFLATE_SERVERS instead of SERVERS, checked by deflate_check.
DEFLATE = {"z"}
# Scenarios whose peer servers run their accept loop on a runtime worker, as wsx serve does,
# instead of in `#[tokio::main]`'s thread as the libraries' examples do (from there, every
# accepted connection costs a worker wake-up: about 15 % of any server's handshake rate).
ACCEPT_ON_WORKER = {"f"}


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def servers_of(letter):
    """The servers of a scenario (name -> command), and the names of the peers among them."""
    return (DEFLATE_SERVERS, DEFLATE_PEERS) if letter in DEFLATE else (SERVERS, PEER_NAMES)


def start(name, accept_on_worker=False, pinned=False, tls=None, servers=SERVERS):
    """Starts `name` of `servers` on a free port; with `tls` (certificate and key PEM files), over
    TLS: wsx serve by its options, the servers of bench/servers by BENCH_TLS_CERT/BENCH_TLS_KEY."""
    port = free_port()
    env = dict(os.environ, BENCH_ACCEPT_ON_WORKER="1" if accept_on_worker else "0")
    cmd = (["taskset", "-c", "0"] if pinned else []) + servers[name](port)
    if tls:
        env.update(BENCH_TLS_CERT=tls[0], BENCH_TLS_KEY=tls[1])
        if name == "wsx":
            cmd += ["--tls-cert", tls[0], "--tls-key", tls[1]]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit(f"{name} did not start")


def stop(proc):
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1])
    return 0


def cpu_seconds(pid):
    """User + system CPU time of `pid` (and its threads) so far, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bench(port, args, seconds, server_pid, pinned=False, cacert=None):
    """One measurement: the load generator's result, with "cpu_us" added: the server's CPU
    time (user + system) per operation over the middle of the measured seconds. With `cacert`,
    over wss:// trusting that certificate."""
    url = f"wss://127.0.0.1:{port}/echo" if cacert else f"ws://127.0.0.1:{port}/echo"
    tls = ["--cacert", cacert] if cacert else []
    cmd = (["taskset", "-c", "1"] if pinned else []) + [
        WSX, "bench", url, "-d", f"{seconds}s", "--warmup", "500ms", "--json", *tls, *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # Connections open and warm-up done by then; sampled inside the measured window.
    time.sleep(0.5 + 0.3 + seconds * 0.1)
    before, t0 = cpu_seconds(server_pid), time.monotonic()
    time.sleep(seconds * 0.7)
    after, t1 = cpu_seconds(server_pid), time.monotonic()
    out, _ = proc.communicate(timeout=120)
    if proc.returncode != 0:
        return None
    result = json.loads(out.strip().splitlines()[-1])
    if result["rate"]:
        result["cpu_us"] = (after - before) / (t1 - t0) / result["rate"] * 1e6
    return result


def deflate_check(port, size):
    """Whether the server on `port` agrees to permessage-deflate when offered what wsx bench
    --deflate offers, and compresses its echo of one `size`-byte text message of wsx bench
    --text ('x' repeated, sent uncompressed): (its Sec-WebSocket-Extensions answer or None,
    whether the echo came back compressed, RSV1 set)."""
    try:
        return _deflate_check(port, size)
    except OSError:
        return None, False


def _deflate_check(port, size):
    key = base64.b64encode(os.urandom(16)).decode()
    request = (f"GET /echo HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
               f"Sec-WebSocket-Extensions: {DEFLATE_OFFER}\r\n\r\n")
    mask = os.urandom(4)
    payload = bytes(b ^ mask[i % 4] for i, b in enumerate(b"x" * size))
    if size < 126:
        length = bytes([0x80 | size])
    elif size < 65536:
        length = bytes([0x80 | 126]) + size.to_bytes(2, "big")
    else:
        length = bytes([0x80 | 127]) + size.to_bytes(8, "big")
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(request.encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                return None, False
            data += chunk
        head, data = data.split(b"\r\n\r\n", 1)
        status, *fields = head.decode("latin-1").split("\r\n")
        if status.split()[1:2] != ["101"]:
            return None, False
        extensions = None
        for field in fields:
            name, _, value = field.partition(":")
            if name.strip().lower() == "sec-websocket-extensions":
                extensions = value.strip()
        s.sendall(bytes([0x81]) + length + mask + payload)
        while len(data) < 1:
            chunk = s.recv(65536)
            if not chunk:
                return extensions, False
            data += chunk
        s.sendall(bytes([0x88, 0x82]) + mask + bytes(b ^ mask[i] for i, b in enumerate((1000).to_bytes(2, "big"))))
    agreed = extensions is not None and extensions.split(";")[0].strip() == "permessage-deflate"
    return (extensions if agreed else None), bool(data[0] & 0x40)


def idle_memory(name, n):
    proc, port = start(name)
    try:
        # one connection first: allocator and runtime warm
        subprocess.run([HOLD, "hold", "1", f"ws://127.0.0.1:{port}/echo"], input=b"", capture_output=True, timeout=60)
        time.sleep(0.3)
        before = rss_kib(proc.pid)
        holder = subprocess.Popen([HOLD, "hold", str(n), f"ws://127.0.0.1:{port}/echo"],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        line = holder.stdout.readline()
        if b"ready" not in line:
            holder.kill()
            return None
        time.sleep(1)
        after = rss_kib(proc.pid)
        holder.stdin.close()
        holder.wait(60)
        return (after - before) * 1024 / n
    finally:
        stop(proc)


def build(deflate_peers=False):
    """Builds what the benchmark runs, in release mode (quick when nothing changed); with
    `deflate_peers`, installs z's Python and Node peers if missing, as scripts/interop.sh does."""
    cmds = [["cargo", "build", "--release", "-p", "wsx-cli"],
            ["cargo", "build", "--release", "-p", "wsx", "--example", "measure"],
            ["cargo", "build", "--release", "--manifest-path", "bench/servers/Cargo.toml"]]
    if deflate_peers and not peers_installed():
        cmds += [["python3", "-m", "venv", "target/interop-venv"],
                 [PYTHON, "-m", "pip", "install", "-q", "-r", "interop/requirements.txt"],
                 ["npm", "ci", "--prefix", "interop/node", "--no-audit", "--no-fund", "--loglevel=error"]]
    for cmd in cmds:
        print("$ " + " ".join(cmd), file=sys.stderr, flush=True)
        subprocess.run(cmd, cwd=ROOT, check=True)


def peers_installed():
    """Whether z's peers are there: websockets in target/interop-venv, ws in interop/node."""
    python_ok = os.path.exists(PYTHON) and subprocess.run(
        [PYTHON, "-c", "import websockets"], capture_output=True).returncode == 0
    return python_ok and os.path.isdir(os.path.join(NODE_MODULES, "ws"))


def peer_version(name):
    """The version of z's peer `name` (websockets or ws), for BENCHMARKS.md."""
    try:
        if name == "ws":
            with open(os.path.join(NODE_MODULES, "ws/package.json")) as f:
                return json.load(f)["version"]
        return subprocess.run([PYTHON, "-c", "import websockets; print(websockets.__version__)"],
                              capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, ValueError, KeyError, subprocess.CalledProcessError):
        return "(version unknown)"


def make_certificate(directory):
    """A self-signed certificate for 127.0.0.1 and its key (PEM files in `directory`), as
    scripts/interop.sh makes it: an end-entity certificate (webpki refuses a CA's as a server's)."""
    cert, key = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-addext", "basicConstraints=critical,CA:FALSE",
                    "-addext", "extendedKeyUsage=serverAuth", "-keyout", key, "-out", cert],
                   check=True, capture_output=True)
    return cert, key


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=2)
    ap.add_argument("--idle", type=int, default=10000)
    ap.add_argument("--out", default=os.path.join(ROOT, "BENCHMARKS.md"))
    ap.add_argument("--only", default=ALL, help="scenario letters to run (no BENCHMARKS.md)")
    ap.add_argument("--no-build", action="store_true", help="run the binaries as they are")
    opts = ap.parse_args()
    unknown = set(opts.only) - set(ALL)
    if unknown:
        raise SystemExit(f"--only: unknown scenarios {''.join(sorted(unknown))}; use letters of {ALL}")
    partial = set(opts.only) != set(ALL)
    deflate = bool(DEFLATE & set(opts.only))
    if not opts.no_build:
        build(deflate)
    if deflate and not peers_installed():
        raise SystemExit(f"z needs websockets in {PYTHON} and ws in {NODE_MODULES} "
                         "(scripts/interop.sh installs them)")
    scenarios = {s: a for s, a in SCENARIOS.items() if s[0] in opts.only}
    results = {s: {n: [] for n in servers_of(s[0])[0]} for s in scenarios}
    cpu = {s: {n: [] for n in servers_of(s[0])[0]} for s in scenarios}
    certs = tempfile.TemporaryDirectory(prefix="wsx-bench-") if TLS & set(opts.only) else None
    tls = make_certificate(certs.name) if certs else None
    started = time.time()
    for run in range(opts.runs):
        for scenario, args in scenarios.items():
            # interleaved: every server once per scenario per run, starting one further along
            # in each run, so that a drift in the machine's speed favours no one position
            servers = servers_of(scenario[0])[0]
            names = list(servers)
            for name in names[run % len(names):] + names[:run % len(names)]:
                pinned = scenario[0] in PINNED
                scenario_tls = tls if scenario[0] in TLS else None
                proc, port = start(name, scenario[0] in ACCEPT_ON_WORKER, pinned, scenario_tls, servers)
                try:
                    failure = None
                    if scenario[0] in DEFLATE:
                        extensions, compressed = deflate_check(port, int(args[args.index("-s") + 1]))
                        if not (extensions and compressed):
                            failure = f"failed: deflate {'agreed' if extensions else 'not agreed'}" \
                                      f"{'' if compressed else ', echo not compressed'}"
                    r = None if failure else bench(port, args, opts.seconds, proc.pid, pinned,
                                                   scenario_tls and scenario_tls[0])
                finally:
                    stop(proc)
                value = r["rate"] if r and r["errors"] == 0 else None
                results[scenario][name].append(value)
                cpu[scenario][name].append(r.get("cpu_us") if value else None)
                shown = failure or ("failed" if value is None else f"{value:,.0f}/s, {r.get('cpu_us', 0):.2f} µs CPU")
                print(f"run {run + 1}/{opts.runs}  {scenario:<36} {name:<18} {shown}",
                      file=sys.stderr, flush=True)
    if certs:
        certs.cleanup()
    memory = {}
    for name in SERVERS if "e" in opts.only else []:
        memory[name] = idle_memory(name, opts.idle)
        print(f"memory  {name:<18} {memory[name] or 0:,.0f} B per idle connection", file=sys.stderr, flush=True)

    def run_ratio(rates, i, peer_names):
        """wsx over the best peer within run `i` alone: the spread says how noisy the medians are."""
        peers = [rates[p][i] for p in peer_names if rates[p][i]]
        return f"{rates['wsx'][i] / max(peers):.2f}" if rates["wsx"][i] and peers else "-"

    def median(values):
        ok = [v for v in values if v is not None]
        return statistics.median(ok) if ok else None

    # The columns: SERVERS, then the servers of z if it ran ("-" where a server was not run).
    columns = [*SERVERS] if set(opts.only) - DEFLATE else []
    columns += [n for s in scenarios for n in servers_of(s[0])[0] if n not in columns]

    def cell(values, n, text):
        return "-" if n not in values else text(values[n])

    lines = []
    header = ["scenario", *columns, "wsx / best peer", "wsx / floor", "wsx / best peer, each run"]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "---|" * len(header))
    for scenario in scenarios:
        peer_names = servers_of(scenario[0])[1]
        med = {n: median(v) for n, v in results[scenario].items()}
        peers = [med[p] for p in peer_names if med[p]]
        best = max(peers) if peers else None
        cells = [scenario] + [cell(med, n, lambda m: f"{m:,.0f}" if m else "failed") for n in columns]
        cells.append(f"{med['wsx'] / best:.2f}" if med["wsx"] and best else "-")
        floor = med.get(FLOOR)
        cells.append(f"{med['wsx'] / floor:.2f}" if med["wsx"] and floor else "-")
        cells.append(" ".join(run_ratio(results[scenario], i, peer_names) for i in range(opts.runs)))
        lines.append("| " + " | ".join(cells) + " |")
    if memory:
        peers_mem = [memory[p] for p in PEER_NAMES if memory[p]]
        best_mem = min(peers_mem) if peers_mem else None
        cells = [f"e: bytes per idle connection ({opts.idle} open, lower is better)"]
        cells += [cell(memory, n, lambda m: f"{m:,.0f}" if m else "failed") for n in columns]
        cells.append(f"{memory['wsx'] / best_mem:.2f}" if memory["wsx"] and best_mem else "-")
        floor = memory["floor (raw TCP)"]
        cells.append(f"{memory['wsx'] / floor:.2f}" if memory["wsx"] and floor else "-")
        cells.append("-")
        lines.append("| " + " | ".join(cells) + " |")
    # The server's CPU per message (per handshake for d, f, D): lower is better.
    lines.append("")
    lines.append("Server CPU (user + system) per message, or per handshake for d, f and D, in µs "
                 "(medians; lower is better):")
    lines.append("")
    header = ["scenario", *columns, "wsx / best peer"]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "---|" * len(header))
    for scenario in scenarios:
        med = {n: median(v) for n, v in cpu[scenario].items()}
        peers = [med[p] for p in servers_of(scenario[0])[1] if med[p]]
        best = min(peers) if peers else None
        cells = [scenario] + [cell(med, n, lambda m: f"{m:.2f}" if m else "-") for n in columns]
        cells.append(f"{med['wsx'] / best:.2f}" if med["wsx"] and best else "-")
        lines.append("| " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    print(table)
    if partial:
        return
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    extra = ""
    if "t" in opts.only:
        extra += """ t is a over TLS (wss://): wsx
serve with --tls-cert, the peers and the floor with rustls and the ring provider (as wsx), a
self-signed certificate made for the run."""
    if "z" in opts.only:
        extra += f""" z is permessage-deflate (1 KiB of text, highly
compressible), each server with its own defaults, against the peers that have it: wsx serve
(no context takeover), Python websockets {peer_version("websockets")} (asyncio; context takeover, 12-bit windows) and
Node ws {peer_version("ws")} (context takeover); each checked to answer wsx bench's offer and to compress its
echo before it is measured."""
    with open(opts.out, "w") as f:
        f.write(f"""# Benchmarks

Latest run ({time.strftime('%Y-%m-%d', time.gmtime())}, {platform.machine()}, {os.cpu_count()} cores, {cpu}): \\
`python3 bench/run.py --runs {opts.runs} --seconds {opts.seconds:g} --idle {opts.idle}` (it builds what it
runs first); {opts.runs} interleaved runs of {opts.seconds:g} s per scenario and server, medians;
took {time.time() - started:.0f} s after the build.

Method: every server echoes on 127.0.0.1 and is driven by the same load generator, `wsx bench`
(closed loop: each echo triggers the next message; K in flight per connection), started fresh
for each measurement; servers are run in turn inside each run (each run starting one server
further along), so load on the machine affects them alike; the last column gives the ratio
of each run alone, to show how far the medians can be trusted. Rates are messages (or handshakes) per second. Memory (e) is the server's RSS
growth with N idle connections open, divided by N. Peers: tokio-tungstenite 0.30.0,
fastwebsockets 0.10.0 (through hyper, as its docs show), tokio-websockets 0.13.3, each with
its usual echo loop (one send per message) on a default multi-threaded tokio runtime, with
its accept loop in `#[tokio::main]`'s thread as the libraries' examples have it, except in f:
there every server's accept loop runs on a runtime worker, as wsx serve's does (spawned from
the main thread, every accepted connection costs a worker wake-up); wsx is
`wsx serve` (upgrades answered on the connection, hyper for other requests; no deflate, no keepalive). The floor answers the upgrade and
echoes frames with the least work a valid server can do (unmask, no checks).
A, P and D pin the server to core 0 and the load generator to core 1 (`taskset`), so that
the server is the bottleneck and its CPU per message decides.{extra} The second table is the server's
CPU time (user + system, from /proc, over the middle of each measurement) per message or per
handshake.
These are 2-core shared machines: compare ratios within one run, not absolute numbers.

{table}
""")
    print(f"wrote {opts.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
