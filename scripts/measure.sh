#!/usr/bin/env bash
# Measures the tokio layer on loopback, with the echo_server example in release:
#  1. server memory per idle connection (RSS delta over N connections), without and with
#     permessage-deflate, and with deflate after one message per connection (context takeover
#     keeps the compression state);
#  2. syscalls per small message (strace on the server: 16-byte messages in batches of 100);
#  3. echo throughput of JSON-like text, plain and compressed.
# Usage: scripts/measure.sh [CONNECTIONS] [MESSAGES]   (defaults 5000, 20000)
set -euo pipefail
cd "$(dirname "$0")/.."
conns=${1:-5000}
msgs=${2:-20000}
cargo build --release -q -p wsx --examples
bin=target/release/examples
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
server=""
trap '[ -n "$server" ] && kill $server 2>/dev/null || true' EXIT

start_server() { # [deflate]
  port=$(free_port); url="ws://127.0.0.1:$port/"
  "$bin/echo_server" "127.0.0.1:$port" "$@" >/dev/null 2>&1 &
  server=$!
  for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
}
stop_server() { kill $server; wait $server 2>/dev/null || true; server=""; }
rss() { awk '/VmRSS/ {print $2}' /proc/$server/status; }

idle_memory() { # label, then env for the client
  local label=$1; shift
  # Warm up the allocator and the runtime with one connection.
  echo | env "$@" "$bin/measure" hold 1 "$url" >/dev/null 2>&1
  local before after fifo holder
  before=$(rss)
  fifo=$(mktemp -u); mkfifo "$fifo"
  env "$@" "$bin/measure" hold "$conns" "$url" <"$fifo" >"$fifo.out" 2>/dev/null &
  holder=$!
  exec 4>"$fifo"
  for _ in $(seq 1200); do grep -q ready "$fifo.out" 2>/dev/null && break; sleep 0.1; done
  sleep 1
  after=$(rss)
  exec 4>&-
  wait $holder || true
  rm -f "$fifo" "$fifo.out"
  echo "idle memory, $label: server RSS $before KiB -> $after KiB with $conns connections:" \
    "$(( (after - before) * 1024 / conns )) bytes per connection"
}

start_server
idle_memory "no deflate"
stop_server
start_server deflate
idle_memory "deflate agreed, no message yet" WSX_DEFLATE=1
stop_server
start_server deflate
idle_memory "deflate, after one 4 KiB message each way (context takeover)" WSX_DEFLATE=1 WSX_WARM=1
stop_server
start_server deflate
idle_memory "deflate, after one 4 KiB message each way (no context takeover)" WSX_DEFLATE=fresh WSX_WARM=1
stop_server

start_server
# -y names each fd: only calls on sockets count (not the runtime's eventfd wake-ups).
strace -f -q -y -e trace=read,write,readv,writev,recvfrom,sendto,recvmsg,sendmsg -p $server -o /tmp/wsx-strace.txt &
tracer=$!
sleep 1
"$bin/measure" burst "$msgs" "$url"
sleep 0.5
kill -INT $tracer; wait $tracer 2>/dev/null || true
calls=$(grep -cE '^[0-9]+ +[a-z]+\([0-9]+<socket:' /tmp/wsx-strace.txt || true)
writes=$(grep -cE '^[0-9]+ +(write|writev|sendto|sendmsg)\([0-9]+<socket:' /tmp/wsx-strace.txt || true)
echo "syscalls: $calls socket read/write calls for $msgs echoed 16-byte messages (batches of 100):" \
  "$(python3 -c "print(round($calls/$msgs, 3))") per message, of which writes: $writes" \
  "($(python3 -c "print(round($writes/$msgs, 3))") per message)"
stop_server

start_server deflate
for run in "20000 1024" "2000 65536"; do
  set -- $run
  "$bin/measure" throughput "$1" "$2" "$url"
  WSX_DEFLATE=1 "$bin/measure" throughput "$1" "$2" "$url"
  WSX_DEFLATE=fresh "$bin/measure" throughput "$1" "$2" "$url"
done
stop_server
