#!/usr/bin/env python3
"""Side-by-side benchmark: wsx serve against tokio-tungstenite, fastwebsockets, tokio-websockets
and a raw-TCP floor, on loopback, with the same load generator (`wsx bench`), runs interleaved.

usage: bench/run.py [--runs 3] [--seconds 2] [--idle 10000] [--out BENCHMARKS.md] [--only LETTERS]

It first builds, in release mode, `wsx`, the `measure` example (which holds the idle
connections of e) and the peer servers under bench/servers.

--only (e.g. `--only d` or `--only ape`) runs just those scenarios and prints their table
without writing BENCHMARKS.md: for iterating on one number.

Scenarios (as in the issue): a 100 x 16 B, 1 in flight; b 10 x 64 KiB; c 1 x 16 MiB;
p 100 x 16 B, 16 in flight; d handshakes/s (10 workers); f the same with every server's accept
loop on a runtime worker (as wsx serve's is); e server memory per idle connection
(RSS delta with N connections open); A, P, D: a and p with 512 connections, and d, with the
server pinned to core 0 and the load generator to core 1 (taskset), so that the server is the
bottleneck. Prints medians, ratio to the best peer and to the floor, and a second table of the
server's CPU (user + system, from /proc) per message or handshake.
"""
import argparse
import os
import platform
import socket
import statistics
import subprocess
import sys
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
}
# Scenarios run with the server and the load generator on one core each.
PINNED = {"A", "P", "D"}
ALL = "abcdpfeAPD"
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


def start(name, accept_on_worker=False, pinned=False):
    port = free_port()
    env = dict(os.environ, BENCH_ACCEPT_ON_WORKER="1" if accept_on_worker else "0")
    cmd = (["taskset", "-c", "0"] if pinned else []) + SERVERS[name](port)
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


def bench(port, args, seconds, server_pid, pinned=False):
    """One measurement: the load generator's result, with "cpu_us" added: the server's CPU
    time (user + system) per operation over the middle of the measured seconds."""
    cmd = (["taskset", "-c", "1"] if pinned else []) + [
        WSX, "bench", f"ws://127.0.0.1:{port}/echo", "-d", f"{seconds}s", "--warmup", "500ms", "--json", *args]
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


def build():
    """Builds what the benchmark runs, in release mode (quick when nothing changed)."""
    for cmd in (["cargo", "build", "--release", "-p", "wsx-cli"],
                ["cargo", "build", "--release", "-p", "wsx", "--example", "measure"],
                ["cargo", "build", "--release", "--manifest-path", "bench/servers/Cargo.toml"]):
        print("$ " + " ".join(cmd), file=sys.stderr, flush=True)
        subprocess.run(cmd, cwd=ROOT, check=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=2)
    ap.add_argument("--idle", type=int, default=10000)
    ap.add_argument("--out", default=os.path.join(ROOT, "BENCHMARKS.md"))
    ap.add_argument("--only", default=ALL, help="scenario letters to run (no BENCHMARKS.md)")
    opts = ap.parse_args()
    unknown = set(opts.only) - set(ALL)
    if unknown:
        raise SystemExit(f"--only: unknown scenarios {''.join(sorted(unknown))}; use letters of {ALL}")
    partial = set(opts.only) != set(ALL)
    build()
    scenarios = {s: a for s, a in SCENARIOS.items() if s[0] in opts.only}
    results = {s: {n: [] for n in SERVERS} for s in scenarios}
    cpu = {s: {n: [] for n in SERVERS} for s in scenarios}
    started = time.time()
    for run in range(opts.runs):
        for scenario, args in scenarios.items():
            # interleaved: every server once per scenario per run, starting one further along
            # in each run, so that a drift in the machine's speed favours no one position
            names = list(SERVERS)
            for name in names[run % len(names):] + names[:run % len(names)]:
                pinned = scenario[0] in PINNED
                proc, port = start(name, scenario[0] in ACCEPT_ON_WORKER, pinned)
                try:
                    r = bench(port, args, opts.seconds, proc.pid, pinned)
                finally:
                    stop(proc)
                value = r["rate"] if r and r["errors"] == 0 else None
                results[scenario][name].append(value)
                cpu[scenario][name].append(r.get("cpu_us") if value else None)
                shown = "failed" if value is None else f"{value:,.0f}/s, {r.get('cpu_us', 0):.2f} µs CPU"
                print(f"run {run + 1}/{opts.runs}  {scenario:<36} {name:<18} {shown}",
                      file=sys.stderr, flush=True)
    memory = {}
    for name in SERVERS if "e" in opts.only else []:
        memory[name] = idle_memory(name, opts.idle)
        print(f"memory  {name:<18} {memory[name] or 0:,.0f} B per idle connection", file=sys.stderr, flush=True)

    def run_ratio(rates, i):
        """wsx over the best peer within run `i` alone: the spread says how noisy the medians are."""
        peers = [rates[p][i] for p in PEER_NAMES if rates[p][i]]
        return f"{rates['wsx'][i] / max(peers):.2f}" if rates["wsx"][i] and peers else "-"

    def median(values):
        ok = [v for v in values if v is not None]
        return statistics.median(ok) if ok else None

    lines = []
    header = ["scenario", *SERVERS, "wsx / best peer", "wsx / floor", "wsx / best peer, each run"]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "---|" * len(header))
    for scenario in scenarios:
        med = {n: median(results[scenario][n]) for n in SERVERS}
        peers = [med[p] for p in PEER_NAMES if med[p]]
        best = max(peers) if peers else None
        cells = [scenario] + [f"{med[n]:,.0f}" if med[n] else "failed" for n in SERVERS]
        cells.append(f"{med['wsx'] / best:.2f}" if med["wsx"] and best else "-")
        floor = med["floor (raw TCP)"]
        cells.append(f"{med['wsx'] / floor:.2f}" if med["wsx"] and floor else "-")
        cells.append(" ".join(run_ratio(results[scenario], i) for i in range(opts.runs)))
        lines.append("| " + " | ".join(cells) + " |")
    if memory:
        peers_mem = [memory[p] for p in PEER_NAMES if memory[p]]
        best_mem = min(peers_mem) if peers_mem else None
        cells = [f"e: bytes per idle connection ({opts.idle} open, lower is better)"]
        cells += [f"{memory[n]:,.0f}" if memory[n] else "failed" for n in SERVERS]
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
    header = ["scenario", *SERVERS, "wsx / best peer"]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "---|" * len(header))
    for scenario in scenarios:
        med = {n: median(cpu[scenario][n]) for n in SERVERS}
        peers = [med[p] for p in PEER_NAMES if med[p]]
        best = min(peers) if peers else None
        cells = [scenario] + [f"{med[n]:.2f}" if med[n] else "-" for n in SERVERS]
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
the server is the bottleneck and its CPU per message decides. The second table is the server's
CPU time (user + system, from /proc, over the middle of each measurement) per message or per
handshake.
These are 2-core shared machines: compare ratios within one run, not absolute numbers.

{table}
""")
    print(f"wrote {opts.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
