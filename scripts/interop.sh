#!/usr/bin/env bash
# The interop suite: wsx against real peers, both ways.
#   peers as clients of `wsx serve`:  Python websockets, Node ws
#   wsx (interop_client example) as client of peer echo servers
# Each run checks subprotocols, text and binary from 0 B to 16 MiB, fragments, ping/pong,
# close codes, permessage-deflate (off, default, no context takeover, 9-bit windows, in every
# pairing) and wss:// with a test CA. Prints the matrix; exits 1 if any check failed.
# Installs the peers on first use: a venv under target/ (pip) and interop/node/node_modules (npm).
# Writes the matrix to target/interop/interop.md; `scripts/interop.sh --update-docs` also copies it
# to docs/interop.md (a deliberate step: a plain run leaves the tracked tree alone).
set -euo pipefail
cd "$(dirname "$0")/.."
update_docs=0
case "${1:-}" in
  --update-docs) update_docs=1 ;;
  "") ;;
  *) echo "usage: scripts/interop.sh [--update-docs]" >&2; exit 2 ;;
esac
venv=target/interop-venv
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import websockets' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q -r interop/requirements.txt
fi
[ -d interop/node/node_modules/ws ] || npm ci --prefix interop/node --no-audit --no-fund --loglevel=error
cargo build --release --quiet -p wsx-cli -p wsx --examples --bins
wsx=target/release/wsx
client=target/release/examples/interop_client
py="$venv/bin/python interop/python/peer.py"
node="node interop/node/peer.mjs"
out=target/interop; rm -rf "$out"; mkdir -p "$out"

# A test CA: a self-signed certificate for 127.0.0.1, made now.
# (An end-entity certificate, not a CA: webpki refuses a CA certificate as a server's.)
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 \
  -addext subjectAltName=IP:127.0.0.1 -addext basicConstraints=critical,CA:FALSE \
  -addext extendedKeyUsage=serverAuth -keyout "$out/key.pem" -out "$out/cert.pem" 2>/dev/null

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }
pids=()
trap 'for p in "${pids[@]}"; do kill $p 2>/dev/null || true; done' EXIT
start() { # command... (listening on $port, chosen by the caller)
  "$@" >>"$out/servers.log" 2>&1 &
  pids+=($!)
  wait_port "$port"
}

failed=0
results=()
run() { # label, command...
  local label=$1; shift
  local log="$out/$(echo "$label" | tr -c 'a-zA-Z0-9' _).log"
  if timeout 300 "$@" >"$log" 2>&1 && ! grep -q '^FAIL' "$log"; then
    results+=("ok    $label ($(grep -c '^ok' "$log") checks)")
  else
    failed=1
    results+=("FAIL  $label (see $log)")
    grep -E '^FAIL|Error|error' "$log" | head -5 | sed 's/^/        /' || true
  fi
}

# 1. Peer clients against wsx serve. (On /chat/ROOM: a one-member room echoes, and a
#    subprotocol is selected, which Node's ws insists on once it offered some.)
serve() { start $wsx serve --listen "127.0.0.1:$port" --log warn "$@"; }
port=$(free_port); serve
for peer in py node; do
  for kind in default off fresh w9; do
    run "$peer client -> wsx serve (deflate: client $kind, server default)" ${!peer} client "ws://127.0.0.1:$port/chat/interop" --deflate $kind
  done
done
port=$(free_port); serve --deflate-takeover
for peer in py node; do
  run "$peer client -> wsx serve --deflate-takeover (client default)" ${!peer} client "ws://127.0.0.1:$port/chat/interop" --deflate default
done
port=$(free_port); serve --no-deflate
for peer in py node; do
  run "$peer client -> wsx serve --no-deflate (client default)" ${!peer} client "ws://127.0.0.1:$port/chat/interop" --deflate default --server-deflate off
done
port=$(free_port); serve --tls-cert "$out/cert.pem" --tls-key "$out/key.pem"
for peer in py node; do
  run "$peer client -> wsx serve over wss://" ${!peer} client "wss://127.0.0.1:$port/chat/tls" --cafile "$out/cert.pem"
done

# 1b. wsx serve --http2: WebSockets over HTTP/2 (RFC 8441) from Node's own http2 module (not a
#     WebSocket library), h2c with prior knowledge and TLS with ALPN; HTTP/1.1 peers on the
#     same listeners still work.
port=$(free_port); serve --http2
run "node http2 client -> wsx serve --http2 (h2c, RFC 8441)" node interop/h2/client.mjs "http://127.0.0.1:$port"
run "py client -> wsx serve --http2 (HTTP/1.1 beside h2c)" $py client "ws://127.0.0.1:$port/chat/h1"
port=$(free_port); serve --http2 --tls-cert "$out/cert.pem" --tls-key "$out/key.pem"
run "node http2 client -> wsx serve --http2 over TLS (ALPN h2, RFC 8441)" node interop/h2/client.mjs "https://127.0.0.1:$port" --cafile "$out/cert.pem"
run "node client -> wsx serve --http2 over wss:// (ALPN http/1.1)" $node client "wss://127.0.0.1:$port/chat/h1" --cafile "$out/cert.pem"

# 2. wsx as the client of peer servers.
for peer in py node; do
  for server_kind in default off fresh w9; do
    port=$(free_port); start ${!peer} server "$port" --deflate $server_kind
    for kind in default off fresh w9; do
      run "wsx client -> $peer server (deflate: client $kind, server $server_kind)" $client "ws://127.0.0.1:$port" --deflate $kind --server-deflate $server_kind
    done
  done
  port=$(free_port); start ${!peer} server "$port" --tls "$out/cert.pem" "$out/key.pem"
  run "wsx client -> $peer server over wss://" $client "wss://127.0.0.1:$port" --cafile "$out/cert.pem"
done

printf '%s\n' "${results[@]}"
{
  echo "# Interop matrix"
  echo
  echo "Latest run of \`scripts/interop.sh\` on $(date -u +%Y-%m-%d): wsx against Python websockets"
  echo "$("$venv/bin/python" -c 'import websockets; print(websockets.__version__)') and Node ws $(node -p 'require("./interop/node/node_modules/ws/package.json").version'), both ways."
  echo "Each run: subprotocol, text and binary of 0 B, 1 B, 125 B, 126 B, 64 KiB - 1, 64 KiB, 1 MiB and"
  echo "16 MiB, a fragmented message, ping/pong, a close code echoed (and, wsx as client, a server-initiated"
  echo "close), permessage-deflate as listed, wss:// with a test certificate."
  echo
  echo '```'
  printf '%s\n' "${results[@]}"
  echo '```'
} > "$out/interop.md"
echo "matrix: $out/interop.md"
if [ $update_docs = 1 ]; then
  cp "$out/interop.md" docs/interop.md
  echo "copied to docs/interop.md"
fi
[ $failed = 0 ] && echo "interop: all ${#results[@]} runs passed" || { echo "interop: failures above"; exit 1; }
