#!/usr/bin/env python3
"""One big chat room on one node: deliveries per second and the server's CPU per delivery.

usage: bench/rooms.py [--members 1000] [--senders 4] [--in-flight 4] [--size 128] [--seconds 5]
                      [--runs 3] [--baseline OLD_WSX]

`wsx bench --mode room` opens --members members of one room of `wsx serve` (in memory); the
first --senders send flat out (each keeps --in-flight messages in the room); every member
receives every message. Two layouts: plain, and with permessage-deflate agreed by every member
(no context takeover, what `wsx serve` agrees to by default). The server's CPU (user + system,
from /proc) over the measured seconds, divided by the deliveries, is the cost of one delivery:
with rooms that encode once (a message framed, and compressed, once for all members), a
delivery costs a fraction of an echoed message. With --baseline, the same layouts with that
binary as the server, in the same run (runs interleaved; medians).
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
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """User + system CPU time of `pid` so far, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def one_run(server_bin, deflate, args):
    port = free_port()
    cmd = [server_bin, "serve", "--listen", f"127.0.0.1:{port}", "--log", "error", "--keepalive", "0",
           "--room-backlog", "65536", "--max-connections", "20000", "--max-per-client", "0"]
    server = start(cmd, port, "wsx serve")
    try:
        bench = [WSX, "bench", "--mode", "room", f"ws://127.0.0.1:{port}/chat/big", "--json",
                 "-c", str(args.members), "--senders", str(args.senders), "-k", str(args.in_flight),
                 "-s", str(args.size), "-d", f"{args.seconds}s", "--warmup", "1s"]
        if deflate:
            bench.append("--deflate")
        proc = subprocess.Popen(bench, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # The measured window: after the connections are open and the warm-up is over.
        time.sleep(1.0 + args.members / 2000)
        before, t0 = cpu_seconds(server.pid), time.time()
        time.sleep(args.seconds * 0.8)
        after, t1 = cpu_seconds(server.pid), time.time()
        out, err = proc.communicate(timeout=args.seconds + 120)
        if proc.returncode != 0:
            sys.exit(f"wsx bench failed:\n{err}")
        result = json.loads(out.strip().splitlines()[-1])
        rate = result["rate"]
        return rate, (after - before) / (t1 - t0) / rate * 1e6
    finally:
        server.kill()
        server.wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--senders", type=int, default=4)
    parser.add_argument("--in-flight", type=int, default=4)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--baseline", metavar="OLD_WSX")
    args = parser.parse_args()
    layouts = [("wsx", WSX, False), ("wsx, deflate", WSX, True)]
    if args.baseline:
        layouts += [("baseline", args.baseline, False), ("baseline, deflate", args.baseline, True)]
    results = {name: [] for name, _, _ in layouts}
    for run in range(args.runs):
        for name, binary, deflate in layouts:
            rate, cpu = one_run(binary, deflate, args)
            results[name].append((rate, cpu))
            print(f"run {run + 1}/{args.runs} {name}: {rate:,.0f} deliveries/s, "
                  f"{cpu:.3f} µs server CPU per delivery", file=sys.stderr)
    print(f"one room, {args.members} members on one node, {args.senders} senders x {args.in_flight} "
          f"in flight, {args.size} B text, medians of {args.runs} interleaved runs\n")
    print("| server | deliveries/s | server CPU per delivery |")
    print("|---|---|---|")
    for name, _, _ in layouts:
        rate = statistics.median(r for r, _ in results[name])
        cpu = statistics.median(c for _, c in results[name])
        print(f"| {name} | {rate:,.0f} | {cpu:.3f} µs |")


if __name__ == "__main__":
    main()
