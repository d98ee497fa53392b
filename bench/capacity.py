#!/usr/bin/env python3
"""Capacity of one `wsx serve` process: its memory per connection, at as many connections as the
machine allows, in the states that matter for sizing (docs/capacity.md says what follows).

usage: bench/capacity.py [--connections 19000] [--rooms 100] [--cycles 6] [--only STATES]
                         [--out FILE] [--wsx PATH] [--measure PATH]

For each state a fresh `wsx serve` on a free 127.0.0.1 port (stopped by its pid), one connection
first (allocator and runtime warm), then N connections held by the `measure` example
(`measure hold N URL`: opens them one after the other, prints `ready`, holds them until its
stdin closes); the server's RSS is read from /proc with all N open (after /healthz counts them),
and again after they have all closed:

  idle       /echo, no permessage-deflate offered
  deflate    /echo, permessage-deflate agreed as wsx serve agrees by default (no context
             takeover), after one 4 KiB JSON-like text message each way (WSX_WARM=1), so any
             compression state that outlives a message is counted
  takeover   the same with `wsx serve --deflate-takeover` (zlib's state kept between messages)
  rooms      members of chat rooms (/chat/room-I, the `chat` subprotocol: no subprotocol
             offered), --rooms rooms of N / --rooms members, one holder process per room; no
             message sent
  nginx      idle /echo connections through nginx running deploy/nginx.conf (one worker;
             ports, the read timeout and the worker's connection limits changed, as
             wsx-cli/tests/cluster.rs changes them): the nginx worker's RSS per connection (and
             the node's behind it). One worker needs two files per connection, so it holds
             (open-files limit - 200) / 2 of them at most. Skipped if nginx is not installed.
  churn      idle /echo, the N connections opened and closed --cycles times (6) in one server:
             its RSS with them open, cycle by cycle (freed memory is reused, but glibc malloc
             keeps an arena per thread, and a cycle served by other threads than the last grows
             the RSS)
  churn1     the same with MALLOC_ARENA_MAX=1 in the server's environment (one arena)

Per connection = (RSS with N open - RSS with the one warm connection) / N (churn: in the last
cycle); "peak" is the server's VmHWM. In the idle state the kernel's memory for the sockets is
measured too, system wide, with N open against just before: /proc/meminfo's Slab and SUnreclaim,
the slab caches an open socket takes (/proc/slabinfo, readable by root: TCP, sock_inode_cache,
dentry, filp, eventpoll_epi, ...) and /proc/net/sockstat's TCP buffer pages. On loopback every
connection is two sockets (the holder's and the server's, alike), so the per-socket figure is half
the per-connection one. The machine may be shared: other processes move the system-wide figures
(less the RSS), so compare runs, or run it on a quiet machine.

The server runs with --max-connections above N (else 503s), --keepalive 1h (the holder does not
read, so it would not answer the 30 s pings and the server would close it; the timer is armed
all the same) and its other defaults; handshakes from loopback are not rate-limited
(--handshake-rate does not apply to loopback clients). Before each state the script checks that
MemAvailable can take it (else it holds fewer and says so), and raises its soft open-files limit
to the hard one (`ulimit -n $(ulimit -Hn)`), which the server and the holders inherit; N must
fit under it.

Needs a release build of the binary and of the example (`cargo build --release -p wsx-cli`,
`cargo build --release -p wsx --example measure`); this script builds nothing. Prints markdown
tables on stdout (progress on stderr) and writes nothing else unless --out names a file.
"""
import argparse
import os
import platform
import resource
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import json

from run import deflate_check, free_port, stop  # bench/run.py, beside this file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WSX = os.path.join(ROOT, "target/release/wsx")
MEASURE = os.path.join(ROOT, "target/release/examples/measure")
STATES = ["idle", "deflate", "takeover", "rooms", "nginx", "churn", "churn1"]
NGINX_CONF = os.path.join(ROOT, "deploy/nginx.conf")
# What the measure example offers with WSX_DEFLATE=1 (DeflateConfig::default().offer()).
# A generous guess of the memory a state needs per connection, both ends (server, holder,
# kernel), to check MemAvailable before starting it: zlib's kept state is ~350 KB per side.
NEED_PER_CONNECTION = {"idle": 20_000, "deflate": 40_000, "takeover": 900_000, "rooms": 20_000, "nginx": 60_000,
                       "churn": 40_000, "churn1": 40_000}
KEEP_FREE = 2 << 30  # bytes of MemAvailable left to the rest of the machine


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def proc_status(pid, field):
    """A field of /proc/PID/status in KiB (VmRSS, VmHWM), 0 when the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def meminfo():
    """/proc/meminfo in bytes."""
    out = {}
    with open("/proc/meminfo") as f:
        for line in f:
            name, value = line.split(":", 1)
            parts = value.split()
            out[name] = int(parts[0]) * (1024 if parts[1:] == ["kB"] else 1)
    return out


def sockstat_tcp():
    """/proc/net/sockstat's TCP line as a dict (inuse, orphan, tw, alloc, mem in pages)."""
    with open("/proc/net/sockstat") as f:
        for line in f:
            if line.startswith("TCP:"):
                parts = line.split()[1:]
                return {parts[i]: int(parts[i + 1]) for i in range(0, len(parts) - 1, 2)}
    return {}


def slabinfo():
    """Bytes in use per slab cache (active objects x object size), {} if unreadable."""
    out = {}
    try:
        with open("/proc/slabinfo") as f:
            for line in f.readlines()[2:]:
                parts = line.split()
                out[parts[0]] = int(parts[1]) * int(parts[3])
    except (OSError, IndexError, ValueError):
        pass
    return out


def system_snapshot():
    m = meminfo()
    return {"slab": m.get("Slab", 0), "sunreclaim": m.get("SUnreclaim", 0),
            "available": m.get("MemAvailable", 0), "tcp_mem": sockstat_tcp().get("mem", 0) * os.sysconf("SC_PAGE_SIZE"),
            "slabs": slabinfo()}


def healthz(port):
    """wsx serve's /healthz as a dict (connections, rooms, ...), None if it does not answer."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        return json.loads(data.split(b"\r\n\r\n", 1)[1])
    except (OSError, ValueError, IndexError):
        return None


def wait_connections(port, want, timeout):
    """Waits (bounded) until the server counts `want` connections; returns the last count."""
    deadline = time.monotonic() + timeout
    count = None
    while time.monotonic() < deadline:
        h = healthz(port)
        count = h and h.get("connections")
        if count == want:
            return count
        time.sleep(0.2)
    return count


def start_server(wsx, args, env=None):
    port = free_port()
    cmd = [wsx, "serve", "--listen", f"127.0.0.1:{port}", "--log", "error", *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=dict(os.environ, **(env or {})))
    for _ in range(100):
        if healthz(port):
            return proc, port
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    raise SystemExit(f"wsx serve did not start: {' '.join(cmd)}")


class Holder:
    """A `measure hold N URL` process: started, waited for until `ready` (bounded)."""

    def __init__(self, measure, n, url, env):
        self.n = n
        self.err = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([measure, "hold", str(n), url], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.err,
                                     env=dict(os.environ, **env))

    def wait_ready(self, timeout):
        """None when ready, else why not (with how many it had opened)."""
        deadline = time.monotonic() + timeout
        out = b""
        poll = select.poll()  # not select.select: with many holders the pipes' numbers pass 1024
        poll.register(self.proc.stdout, select.POLLIN | select.POLLHUP)
        while time.monotonic() < deadline:
            if poll.poll(500):
                chunk = os.read(self.proc.stdout.fileno(), 4096)
                out += chunk
                if b"ready" in out:
                    return None
                if not chunk:
                    break
        self.proc.kill()
        self.proc.wait()
        self.err.seek(0)
        lines = self.err.read().decode(errors="replace").strip().splitlines()
        opened = [l for l in lines if l.endswith("connections open")]
        errors = [l for l in lines if not l.endswith("connections open")]
        why = errors[-1] if errors else ("timed out" if time.monotonic() >= deadline else "exited")
        return f"{opened[-1] if opened else 'fewer than 1000 connections open'}, then: {why}"

    def close(self):
        """Closes its stdin (it drops its connections and exits); bounded wait."""
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.err.close()


def start_nginx(node_port, n, directory):
    """nginx running deploy/nginx.conf in front of the node on `node_port`, with one worker that
    takes `n` proxied connections; returns (master process, port, worker pid)."""
    port = free_port()
    with open(NGINX_CONF) as f:
        conf = f.read()

    def change(old, new):  # each must apply: this runs the shipped file, not a look-alike
        nonlocal conf
        if old not in conf:
            raise SystemExit(f"deploy/nginx.conf no longer contains {old!r}")
        conf = conf.replace(old, new, 1)

    change("server 127.0.0.1:8081 max_fails=1 fail_timeout=10s;",
           f"server 127.0.0.1:{node_port} max_fails=1 fail_timeout=10s;")
    change("server 127.0.0.1:8082 max_fails=1 fail_timeout=10s;\n", "\n")
    change("listen 8080;", f"listen 127.0.0.1:{port};")
    # The holder does not read (nothing crosses nginx while it holds): no read timeout meanwhile.
    change("proxy_read_timeout 60s;", "proxy_read_timeout 1h;")
    change("worker_processes auto;", f"worker_processes 1;\nworker_rlimit_nofile {2 * n + 200};")
    change("worker_connections 4096;", f"worker_connections {2 * n + 100};")
    change("http {\n", f"http {{\n    access_log off;\n    client_body_temp_path {directory}/body;\n"
                       f"    proxy_temp_path {directory}/proxy;\n    fastcgi_temp_path {directory}/fastcgi;\n"
                       f"    uwsgi_temp_path {directory}/uwsgi;\n    scgi_temp_path {directory}/scgi;\n")
    path = os.path.join(directory, "nginx.conf")
    with open(path, "w") as f:
        f.write(conf)
    master = subprocess.Popen(["nginx", "-p", directory, "-e", f"{directory}/error.log", "-c", path, "-g",
                               f"daemon off; pid {directory}/nginx.pid; error_log {directory}/error.log error;"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        workers = [pid for pid in os.listdir("/proc") if pid.isdigit() and parent_of(int(pid)) == master.pid]
        try:
            if workers:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return master, port, int(workers[0])
        except OSError:
            pass
        time.sleep(0.05)
    stop(master)
    raise SystemExit(f"nginx did not start (its log: {directory}/error.log)")


def parent_of(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def fits(state, n):
    """How many connections of `state` MemAvailable can take now (at most n)."""
    spare = meminfo()["MemAvailable"] - KEEP_FREE
    return max(0, min(n, spare // NEED_PER_CONNECTION[state]))


def run_state(state, n, rooms, opts):
    """Measures one state; returns a dict of its figures (or its failure)."""
    row = {"state": state, "asked": n}
    n_fit = fits(state, n)
    if n_fit < n:
        row["note"] = f"{n:,} asked, MemAvailable allowed {n_fit:,}"
        log(f"{state}: only {n_fit:,} connections fit in MemAvailable (less {KEEP_FREE >> 30} GiB)")
        n = n_fit
    if state == "rooms":
        n -= n % rooms  # rooms of equal size
    if state == "nginx":
        if not shutil.which("nginx"):
            row.update(n=n, skipped="nginx is not installed (apt-get install nginx)")
            return row
        limit = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        if 2 * n + 200 > limit:
            row["note"] = f"{n:,} asked; one nginx worker's {limit:,} open files allow {(limit - 200) // 2:,}"
            n = (limit - 200) // 2
    row["n"] = n
    if n <= 0:
        row["error"] = "no connections fit"
        return row
    server_args = ["--max-connections", str(n + 1000), "--keepalive", "1h"]
    if state == "takeover":
        server_args.append("--deflate-takeover")
    env = {"deflate": {"WSX_DEFLATE": "1", "WSX_WARM": "1"},
           "takeover": {"WSX_DEFLATE": "1", "WSX_WARM": "1"}}.get(state, {})
    # churn1: glibc malloc with one arena (the server's environment), against churn's default.
    server_env = {"MALLOC_ARENA_MAX": "1"} if state == "churn1" else {}
    server, port = start_server(opts.wsx, server_args, server_env)
    holders, nginx, directory = [], None, None
    # The process measured: wsx serve, or the nginx worker in front of it.
    measured = server.pid
    try:
        url = f"ws://127.0.0.1:{port}/echo"
        if state == "nginx":
            directory = tempfile.mkdtemp(prefix="wsx-capacity-nginx-")
            nginx, nginx_port, measured = start_nginx(port, n, directory)
            url = f"ws://127.0.0.1:{nginx_port}/echo"
        row["start"] = proc_status(measured, "VmRSS")
        if state in ("deflate", "takeover"):
            answer, compressed = deflate_check(port, 1024)
            row["extensions"] = answer or "not agreed"
            row["compressed"] = compressed
            if not (answer and compressed):
                row["error"] = f"permessage-deflate {'agreed' if answer else 'not agreed'}" \
                               f"{'' if compressed else ', echo not compressed'}"
                return row
        else:
            row["extensions"] = "not offered"
        # One connection first (and its message, if any): allocator and runtime warm.
        warm = Holder(opts.measure, 1, url, env)
        why = warm.wait_ready(30)
        warm.close()
        if why:
            row["error"] = f"the warm-up connection failed: {why}"
            return row
        wait_connections(port, 0, 10)
        time.sleep(0.5)
        row["before"] = proc_status(measured, "VmRSS")
        node_before = proc_status(server.pid, "VmRSS")
        system_before = system_snapshot()
        cycles = opts.cycles if state.startswith("churn") else 1
        row["cycles_open"] = []
        for cycle in range(cycles):
            opened = time.monotonic()
            if state == "rooms":
                for i in range(rooms):
                    holders.append(Holder(opts.measure, n // rooms, f"ws://127.0.0.1:{port}/chat/room-{i}", env))
                    why = holders[-1].wait_ready(60 + n // rooms / 50)
                    if why:
                        row["error"] = f"room {i + 1} of {rooms} ({i * (n // rooms):,} members held before it): {why}"
                        return row
            else:
                holders.append(Holder(opts.measure, n, url, env))
                why = holders[-1].wait_ready(120 + n / 50)
                if why:
                    row["error"] = why if cycles == 1 else f"cycle {cycle + 1}: {why}"
                    return row
            row["open_s"] = time.monotonic() - opened
            counted = wait_connections(port, n, 60)
            if counted != n:
                row["error"] = f"the holders are ready but the server counts {counted} connections"
                return row
            h = healthz(port) or {}
            row["rooms"] = h.get("rooms")
            time.sleep(1)
            row["open"] = proc_status(measured, "VmRSS")
            row["cycles_open"].append(row["open"])
            if cycle == 0:
                row["node_per_connection"] = (proc_status(server.pid, "VmRSS") - node_before) * 1024 / n
                system_open = system_snapshot()
            for h in holders:
                h.close()
            holders = []
            row["closed_count"] = wait_connections(port, 0, 60)
            time.sleep(1)
            row["closed"] = proc_status(measured, "VmRSS")
        # VmHWM can lag VmRSS by a little (the kernel's per-thread RSS counters).
        row["peak"] = max(proc_status(measured, "VmHWM"), row["open"])
        row["per_connection"] = (row["open"] - row["before"]) * 1024 / n
        if state == "idle":
            row["kernel"] = kernel_figures(system_before, system_open)
        return row
    finally:
        for h in holders:
            h.close()
        if nginx:
            stop(nginx)  # SIGTERM to the master: it stops its worker
        if directory:
            shutil.rmtree(directory, ignore_errors=True)
        stop(server)


# The slab caches an open TCP socket on an epoll instance takes (Linux 6.x names): the socket
# (TCP: struct tcp_sock), its inode and dentry, its file, its epoll item, the LSM blobs.
SOCKET_CACHES = ["TCP", "sock_inode_cache", "dentry", "filp", "eventpoll_epi", "eventpoll_pwq",
                 "lsm_inode_cache", "lsm_file_cache"]


def kernel_figures(before, after):
    """System-wide kernel memory growth between two snapshots."""
    caches = {name: after["slabs"].get(name, 0) - before["slabs"].get(name, 0)
              for name in SOCKET_CACHES if name in after["slabs"]}
    return {
        "Slab (/proc/meminfo)": after["slab"] - before["slab"],
        "SUnreclaim (/proc/meminfo)": after["sunreclaim"] - before["sunreclaim"],
        "the socket's slab caches (/proc/slabinfo: " + ", ".join(caches) + ")": sum(caches.values()),
        "TCP buffer pages (/proc/net/sockstat mem)": after["tcp_mem"] - before["tcp_mem"],
        "caches": caches,
    }


def mib(kib):
    return f"{kib / 1024:,.1f}" if kib is not None else "-"


def tables(rows, opts):
    lines = ["| state | connections | permessage-deflate (server's answer) | RSS at start (MiB) | "
             "with 1 connection (MiB) | with N open (MiB) | peak (MiB) | after all closed (MiB) | "
             "per connection (bytes) |",
             "|---|---|---|---|---|---|---|---|---|"]
    describe = {"idle": "idle, /echo",
                "deflate": "deflate, no context takeover (default), after 1 message each way",
                "takeover": "deflate with --deflate-takeover, after 1 message each way",
                "rooms": f"chat room members, {opts.rooms} room{'s' if opts.rooms != 1 else ''}",
                "nginx": "nginx in front (deploy/nginx.conf, 1 worker), idle /echo: **the nginx worker's RSS**",
                "churn": f"idle, /echo, opened and closed {opts.cycles} times (glibc malloc's default arenas)",
                "churn1": f"the same with MALLOC_ARENA_MAX=1 in the server's environment"}
    for r in rows:
        n = f"{r['n']:,}"
        if r["state"] == "rooms" and r.get("rooms") is not None:
            n += f" ({r['rooms']} room{'s' if r['rooms'] != 1 else ''} of {r['n'] // opts.rooms:,})"
        if r.get("note"):
            n += f" ({r['note']})"
        if r.get("skipped"):
            lines.append(f"| {describe[r['state']]} | - | - | skipped: {r['skipped']} | - | - | - | - | - |")
            continue
        if r.get("error"):
            lines.append(f"| {describe[r['state']]} | {n} | {r.get('extensions', '-')} | "
                         f"{mib(r.get('start'))} | {mib(r.get('before'))} | failed: {r['error']} | - | - | - |")
            continue
        lines.append(f"| {describe[r['state']]} | {n} | {r['extensions']} | {mib(r['start'])} | "
                     f"{mib(r['before'])} | {mib(r['open'])} | {mib(r['peak'])} | {mib(r['closed'])} | "
                     f"{r['per_connection']:,.0f} |")
    churned = [r for r in rows if r["state"].startswith("churn") and len(r.get("cycles_open", [])) > 1]
    if churned:
        lines.append("")
        for r in churned:
            lines.append(f"Server RSS (MiB) with the {r['n']:,} open, cycle by cycle, {r['state']}: "
                         + ", ".join(mib(kib) for kib in r["cycles_open"]) + ".")
    behind = [r for r in rows if r["state"] == "nginx" and "node_per_connection" in r]
    if behind:
        grew = behind[0]["node_per_connection"]
        lines += ["", f"Behind nginx, wsx serve itself grew by {grew:,.0f} bytes per connection."]
    idle = next((r for r in rows if r["state"] == "idle" and "kernel" in r), None)
    if idle:
        n = idle["n"]
        lines += ["", f"Kernel memory, system-wide, with the idle state's {n:,} connections open against just "
                  f"before ({2 * n:,} sockets: both ends are on this machine; the machine is shared, "
                  f"so these move with whatever else runs):", "",
                  "| measure | growth (MiB) | per connection, both ends (bytes) | per socket (bytes) |",
                  "|---|---|---|---|"]
        for name, value in idle["kernel"].items():
            if name != "caches":
                lines.append(f"| {name} | {value / 2**20:,.1f} | {value / n:,.0f} | {value / (2 * n):,.0f} |")
        caches = [f"{name} {value / (2 * n):,.0f}" for name, value in idle["kernel"]["caches"].items()]
        if caches:
            lines += ["", "The socket's slab caches, growth per socket (bytes; active objects x object size): "
                      + ", ".join(caches) + "."]
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--connections", type=int, default=19000, help="connections held per state")
    ap.add_argument("--rooms", type=int, default=100, help="rooms the members of the rooms state spread over")
    ap.add_argument("--cycles", type=int, default=6, help="times the churn states open and close the connections")
    ap.add_argument("--only", default=",".join(STATES), help=f"states to measure, of {','.join(STATES)}")
    ap.add_argument("--out", help="also write the tables (with the command and the date) to this file")
    ap.add_argument("--wsx", default=WSX, help="the wsx binary (default: target/release/wsx)")
    ap.add_argument("--measure", default=MEASURE, help="the measure example (default: target/release/examples/measure)")
    opts = ap.parse_args()
    states = [s for s in opts.only.split(",") if s]
    unknown = set(states) - set(STATES)
    if unknown:
        raise SystemExit(f"--only: unknown states {','.join(sorted(unknown))}; use {','.join(STATES)}")
    for path, build in [(opts.wsx, "cargo build --release -p wsx-cli"),
                        (opts.measure, "cargo build --release -p wsx --example measure")]:
        if not os.access(path, os.X_OK):
            raise SystemExit(f"{path} is missing: {build}")
    n = opts.connections
    if n < opts.rooms or opts.rooms < 1:
        raise SystemExit("--connections must be at least --rooms, and --rooms at least 1")
    # ulimit -n $(ulimit -Hn): the server and the holders inherit it.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard != resource.RLIM_INFINITY and n + 64 > hard:
        raise SystemExit(f"{n:,} connections need {n + 64:,} open files in one process; the hard limit is "
                         f"{hard:,} (try --connections {hard - 64})")
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        low, high = map(int, f.read().split())
    if n > high - low + 1:
        raise SystemExit(f"{n:,} connections from 127.0.0.1 to one port need as many local ports; "
                         f"net.ipv4.ip_local_port_range has {high - low + 1:,}")
    flags = [("--connections", n, 19000), ("--rooms", opts.rooms, 100), ("--cycles", opts.cycles, 6),
             ("--only", opts.only, ",".join(STATES))]
    command = "python3 bench/capacity.py" + "".join(
        f" {flag} {value}" for flag, value, default in flags if value != default)
    started = time.time()
    rows = []
    for state in states:
        log(f"{state}: {n:,} connections ...")
        row = run_state(state, n, opts.rooms, opts)
        rows.append(row)
        if row.get("skipped"):
            log(f"{state}: skipped: {row['skipped']}")
        elif row.get("error"):
            log(f"{state}: failed: {row['error']}")
        else:
            log(f"{state}: {row['n']:,} open in {row['open_s']:.1f} s; RSS {mib(row['before'])} -> "
                f"{mib(row['open'])} MiB, {row['per_connection']:,.0f} B per connection; "
                f"{mib(row['closed'])} MiB after they closed ({row['closed_count']} left)")
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        cpu = "unknown CPU"
    head = subprocess.run(["git", "-C", ROOT, "log", "-1", "--format=%h %cI"],
                          capture_output=True, text=True).stdout.split()
    built = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(os.stat(opts.wsx).st_mtime))
    caption = (f"{time.strftime('%Y-%m-%d', time.gmtime())}, {platform.machine()}, {os.cpu_count()} cores, "
               f"{meminfo()['MemTotal'] / 2**30:.1f} GiB, {cpu}, Linux {platform.release()}: `{command}` "
               f"({time.time() - started:.0f} s); wsx built {built}"
               + (f", HEAD {head[0]} of {head[1][:16].replace('T', ' ')}" if len(head) == 2 else ""))
    text = caption + "\n\n" + tables(rows, opts)
    print(text)
    if opts.out:
        with open(opts.out, "w") as f:
            f.write(text + "\n")
        log(f"wrote {opts.out}")


if __name__ == "__main__":
    main()
