#!/usr/bin/env python3
"""Chat room fan-out on one node and on two nodes sharing the room through Redis.

usage: bench/cluster.py [--members 40] [--senders 4] [--in-flight 4] [--size 64] [--seconds 5]
                        [--runs 3] [--baseline OLD_WSX]

Each layout gets its own fresh servers, on free loopback ports, stopped by process id:
  1 node, in memory    wsx serve (no Redis): the baseline
  1 node + Redis       wsx serve --redis: every message goes through Redis and back
  2 nodes + Redis      members alternate between the two nodes: half of every delivery crosses
                       nodes, and all of them go through Redis
  2 nodes + Redis Cluster   the same on a 3-master Redis Cluster (sharded pub/sub; one room
                       lives on one shard)
(with --baseline OLD_WSX, the Redis layouts once more with that binary as the nodes: an older
build, compared in the same run) and is loaded by `wsx bench --mode room` (members of one room; the senders keep K messages in
flight each; every delivery to every member is timed from its send, on one clock). Runs are
interleaved; the table gives medians. Needs redis-server (Debian's package) and a release build
(`cargo build --release -p wsx-cli`).
"""
import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

from run import free_port  # bench/run.py, beside this file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WSX = os.path.join(ROOT, "target/release/wsx")


def wait_port(port, what):
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"{what} is not listening on {port} after 10 s")


def start(cmd, port, what):
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port, what)
    return proc


def redis_cluster(redis_server, tmp):
    """Starts a 3-master Redis Cluster on loopback; returns (processes, seed URLs)."""
    procs, ports = [], []
    for i in range(3):
        port, bus = free_port(), free_port()
        d = os.path.join(tmp, str(i))
        os.makedirs(d)
        procs.append(start([redis_server, "--port", str(port), "--cluster-port", str(bus), "--bind", "127.0.0.1",
                            "--cluster-enabled", "yes", "--save", "", "--appendonly", "no", "--dir", d],
                           port, "redis-server (cluster)"))
        ports.append(port)
    subprocess.run(["redis-cli", "--cluster", "create", *[f"127.0.0.1:{p}" for p in ports],
                    "--cluster-replicas", "0", "--cluster-yes"], check=True, capture_output=True, timeout=30)
    for _ in range(100):
        info = subprocess.run(["redis-cli", "-p", str(ports[0]), "cluster", "info"], capture_output=True, text=True)
        if "cluster_state:ok" in info.stdout:
            break
        time.sleep(0.1)
    else:
        sys.exit("the Redis Cluster did not come up in 10 s")
    return procs, ",".join(f"redis://127.0.0.1:{p}" for p in ports)


def layout(name, redis_url, cluster_urls, baseline):
    """Starts the nodes of `name`; returns (processes, urls)."""
    nodes = 2 if name.startswith("2") else 1
    wsx = baseline if "baseline" in name else WSX
    procs, urls = [], []
    for i in range(nodes):
        port = free_port()
        cmd = [wsx, "serve", "--listen", f"127.0.0.1:{port}", "--log", "error", "--node", f"n{i + 1}",
               "--keepalive", "0", "--room-backlog", "65536"]
        if "Cluster" in name:
            cmd += ["--redis", cluster_urls]
        elif "Redis" in name:
            cmd += ["--redis", redis_url]
        procs.append(start(cmd, port, "wsx serve"))
        urls.append(f"ws://127.0.0.1:{port}/chat/bench")
    if "Redis" in name:
        time.sleep(0.5)  # the nodes connect to Redis
    return procs, urls


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=40)
    parser.add_argument("--senders", type=int, default=4)
    parser.add_argument("--in-flight", type=int, default=4)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--baseline", metavar="OLD_WSX", help="another wsx binary to run the Redis layouts with")
    args = parser.parse_args()
    redis_server = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not os.path.exists(redis_server):
        sys.exit("redis-server is not installed: apt-get install redis-server")
    if not os.path.exists(WSX):
        sys.exit(f"{WSX} is missing: cargo build --release -p wsx-cli")
    redis_port = free_port()
    redis = start([redis_server, "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
                   "--appendonly", "no"], redis_port, "redis-server")
    tmp = tempfile.mkdtemp(prefix="wsx-cluster-bench-")
    cluster, cluster_urls = redis_cluster(redis_server, tmp)
    layouts = ["1 node, in memory", "1 node + Redis", "2 nodes + Redis", "2 nodes + Redis Cluster"]
    if args.baseline:
        layouts += ["1 node + Redis (baseline)", "2 nodes + Redis (baseline)"]
    results = {name: [] for name in layouts}
    try:
        for run in range(args.runs):
            for name in layouts:
                procs, urls = layout(name, f"redis://127.0.0.1:{redis_port}", cluster_urls, args.baseline)
                cmd = [WSX, "bench", "--mode", "room", urls[0], "--json", "-c", str(args.members),
                       "--senders", str(args.senders), "-k", str(args.in_flight), "-s", str(args.size),
                       "-d", f"{args.seconds}s", "--warmup", "1s"]
                for url in urls[1:]:
                    cmd += ["--also", url]
                try:
                    out = subprocess.run(cmd, capture_output=True, text=True, timeout=args.seconds + 60)
                finally:
                    for p in procs:
                        p.kill()
                        p.wait()
                if out.returncode != 0:
                    sys.exit(f"wsx bench failed on {name}:\n{out.stderr}")
                r = json.loads(out.stdout.strip().splitlines()[-1])
                results[name].append(r)
                print(f"run {run + 1}/{args.runs} {name}: {r['published_rate']:.0f} published/s, "
                      f"{r['rate']:.0f} deliveries/s, p50 {r['p50_ns'] / 1e6:.3f} ms, "
                      f"p99 {r['p99_ns'] / 1e6:.3f} ms, errors {r['errors']}", file=sys.stderr)
    finally:
        for p in [redis, *cluster]:
            p.kill()
            p.wait()
        shutil.rmtree(tmp, ignore_errors=True)

    base = statistics.median(r["published_rate"] for r in results[layouts[0]])
    print(f"{args.members} members of one room, {args.senders} senders x {args.in_flight} in flight, "
          f"{args.size} B text, {args.seconds} s, median of {args.runs} interleaved runs\n")
    print("| layout | published msgs/s | deliveries/s | latency p50 | latency p99 | msgs/s vs 1 node in memory |")
    print("|---|---|---|---|---|---|")
    for name in layouts:
        rs = results[name]
        pub = statistics.median(r["published_rate"] for r in rs)
        dlv = statistics.median(r["rate"] for r in rs)
        p50 = statistics.median(r["p50_ns"] for r in rs) / 1e6
        p99 = statistics.median(r["p99_ns"] for r in rs) / 1e6
        print(f"| {name} | {pub:,.0f} | {dlv:,.0f} | {p50:.3f} ms | {p99:.3f} ms | {pub / base:.2f} |")


if __name__ == "__main__":
    main()
