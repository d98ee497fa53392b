#!/usr/bin/env bash
# Measures the tokio layer on loopback: server memory per idle connection (RSS delta over N
# connections) and syscalls per small message (strace -c on the server while a client sends
# 16-byte messages in batches of 100).
# Usage: scripts/measure.sh [CONNECTIONS] [MESSAGES]   (defaults 5000, 20000)
set -euo pipefail
cd "$(dirname "$0")/.."
conns=${1:-5000}
msgs=${2:-20000}
cargo build --release -q -p wsx --examples
bin=target/release/examples
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
url="ws://127.0.0.1:$port/"

"$bin/echo_server" "127.0.0.1:$port" >/dev/null 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
rss() { awk '/VmRSS/ {print $2}' /proc/$server/status; }

# Warm up the allocator and the runtime with one connection.
echo | "$bin/measure" hold 1 "$url" >/dev/null 2>&1
before=$(rss)
fifo=$(mktemp -u); mkfifo "$fifo"
"$bin/measure" hold "$conns" "$url" <"$fifo" >"$fifo.out" 2>/dev/null &
holder=$!
exec 4>"$fifo"
for _ in $(seq 600); do grep -q ready "$fifo.out" 2>/dev/null && break; sleep 0.1; done
sleep 1
after=$(rss)
exec 4>&-
wait $holder || true
rm -f "$fifo" "$fifo.out"
echo "idle memory: server RSS $before KiB -> $after KiB with $conns connections:" \
  "$(( (after - before) * 1024 / conns )) bytes per connection"

# -y names each fd: only calls on TCP sockets count (not the runtime's eventfd wake-ups).
strace -f -q -y -e trace=read,write,readv,writev,recvfrom,sendto,recvmsg,sendmsg -p $server -o /tmp/wsx-strace.txt &
tracer=$!
sleep 1
"$bin/measure" burst "$msgs" "$url"
sleep 0.5
kill -INT $tracer; wait $tracer 2>/dev/null || true
calls=$(grep -cE '^[0-9]+ +[a-z]+\([0-9]+<socket:' /tmp/wsx-strace.txt || true)
writes=$(grep -cE '^[0-9]+ +(write|writev|sendto|sendmsg)\([0-9]+<socket:' /tmp/wsx-strace.txt || true)
echo "syscalls: $calls read/write calls for $msgs echoed 16-byte messages (batches of 100):" \
  "$(python3 -c "print(round($calls/$msgs, 3))") per message, of which writes: $writes ($(python3 -c "print(round($writes/$msgs, 3))") per message)"
