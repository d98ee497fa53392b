#!/usr/bin/env python3
"""WebSockets over HTTP/2 (RFC 8441) against HTTP/1.1: the same echo load, one server.

usage: bench/http2.py [--connections 100] [--in-flight 1] [--size 16] [--seconds 3] [--runs 3]

`wsx serve --http2` (h2c with prior knowledge beside HTTP/1.1) is loaded by `wsx bench` twice
per run, interleaved: N WebSockets over N HTTP/1.1 connections, and N WebSockets over one HTTP/2
connection (`--http2 --http2-connections 1`). Reports msgs/s, p50/p99 round trip and the server's
RSS while the sockets are open (a fresh server per measurement); medians of the runs.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from run import free_port  # bench/run.py, beside this file
from cluster import start  # bench/cluster.py: start and wait for the port

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WSX = os.path.join(ROOT, "target/release/wsx")


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def one(http2, args):
    port = free_port()
    server = start([WSX, "serve", "--listen", f"127.0.0.1:{port}", "--http2", "--log", "error",
                    "--keepalive", "0", "--no-deflate"], port, "wsx serve")
    try:
        cmd = [WSX, "bench", f"ws://127.0.0.1:{port}/echo", "--json", "-c", str(args.connections),
               "-k", str(args.in_flight), "-s", str(args.size), "-d", f"{args.seconds}s", "--warmup", "1s"]
        if http2:
            cmd += ["--http2", "--http2-connections", "1"]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(1 + args.seconds / 2)
        rss = rss_kib(server.pid)
        out, err = proc.communicate(timeout=args.seconds + 60)
        if proc.returncode != 0:
            sys.exit(f"wsx bench failed:\n{err}")
        r = json.loads(out.strip().splitlines()[-1])
        return r["rate"], r["p50_ns"] / 1e6, r["p99_ns"] / 1e6, rss
    finally:
        server.kill()
        server.wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=100)
    parser.add_argument("--in-flight", type=int, default=1)
    parser.add_argument("--size", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=3)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    layouts = [(f"{args.connections} WebSockets over {args.connections} HTTP/1.1 connections", False),
               (f"{args.connections} WebSockets over 1 HTTP/2 connection", True)]
    results = {name: [] for name, _ in layouts}
    for run in range(args.runs):
        for name, http2 in layouts:
            r = one(http2, args)
            results[name].append(r)
            print(f"run {run + 1}/{args.runs} {name}: {r[0]:,.0f} msgs/s, p50 {r[1]:.3f} ms, "
                  f"p99 {r[2]:.3f} ms, server RSS {r[3]:,} KiB", file=sys.stderr)
    print(f"echo, {args.size} B, {args.in_flight} in flight per WebSocket, {args.seconds} s, "
          f"medians of {args.runs} interleaved runs, wsx serve --http2\n")
    print("| layout | msgs/s | p50 | p99 | server RSS |")
    print("|---|---|---|---|---|")
    for name, _ in layouts:
        rs = results[name]
        med = lambda i: statistics.median(r[i] for r in rs)
        print(f"| {name} | {med(0):,.0f} | {med(1):.3f} ms | {med(2):.3f} ms | {med(3):,.0f} KiB |")


if __name__ == "__main__":
    main()
