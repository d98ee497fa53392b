#!/usr/bin/env bash
# The Autobahn Testsuite as a gate, both sides, all 517 cases (9.* included):
#   server: `wsx serve --max-message-size 67108864` at ws://127.0.0.1:PORT/echo
#   client: the `autobahn_client` example against the fuzzing server
# and both again over HTTP/2 (RFC 8441), through HAProxy (Debian's haproxy, a real proxy that
# speaks RFC 8441 on both sides):
#   server: fuzzingclient --HTTP/1.1--> haproxy --h2c, extended CONNECT--> wsx serve --http2
#           (wsx's /metrics must count a WebSocket over HTTP/2 for every case)
#   client: autobahn_client --http2 --h2c, extended CONNECT--> haproxy --HTTP/1.1--> fuzzingserver
# Passes only with 0 FAILED, 0 NON-STRICT and 0 UNIMPLEMENTED (permessage-deflate included).
# The fuzzer is the repository's own Python 3 port of the suite: interop/autobahn/setup.sh
# installs it into target/autobahn-venv on first use (from PyPI), interop/autobahn/run.py runs it,
# interop/autobahn/check.py is the gate. Reports go to target/autobahn/{server,client}/, the
# summary to target/autobahn/conformance.md.
#
# Usage: scripts/autobahn.sh [--update-docs]
#   --update-docs  also copy the summary to docs/conformance.md (a deliberate step: a plain run
#                  leaves the tracked tree alone)
# Env: WSX_BIN, AUTOBAHN_CLIENT_BIN  the binaries under test (default target/release/wsx and
#                                    target/release/examples/autobahn_client)
#      AUTOBAHN_SKIP_BUILD=1         test those binaries as they are (no cargo build)
#      AUTOBAHN_VENV                 where the fuzzer lives (default target/autobahn-venv)
#      AUTOBAHN_ONLY=h1|h2           only the HTTP/1.1 runs, or only those over HTTP/2 (for
#                                    work on one of them; the gate runs both)
set -euo pipefail
cd "$(dirname "$0")/.."
update_docs=0
case "${1:-}" in
  --update-docs) update_docs=1 ;;
  "") ;;
  *) echo "usage: scripts/autobahn.sh [--update-docs]" >&2; exit 2 ;;
esac

interop/autobahn/setup.sh

if [ "${AUTOBAHN_SKIP_BUILD:-}" != 1 ]; then
  cargo build --release --quiet -p wsx-cli -p wsx --examples --bins
fi
wsx="${WSX_BIN:-target/release/wsx}"
client="${AUTOBAHN_CLIENT_BIN:-target/release/examples/autobahn_client}"
for bin in "$wsx" "$client"; do [ -x "$bin" ] || { echo "autobahn: no executable $bin" >&2; exit 1; }; done
reports="$(pwd)/target/autobahn"
rm -rf "$reports"; mkdir -p "$reports"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
run() { python3 interop/autobahn/run.py "$@"; }

only="${AUTOBAHN_ONLY:-all}"
server_ok=0; client_ok=0; server_h2_ok=0; client_h2_ok=0; h2_streams=0
touch "$reports/server.txt" "$reports/client.txt" "$reports/server-h2.txt" "$reports/client-h2.txt"
if [ "$only" != h2 ]; then
# Server side.
port=$(free_port)
"$wsx" serve --listen "127.0.0.1:$port" --max-message-size 67108864 --log warn \
  >"$reports/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
run fuzzingclient -o "$reports/server" -a wsx -x "" "ws://127.0.0.1:$port/echo" \
  | tee "$reports/server.txt" || true
kill $server; wait $server 2>/dev/null || true
trap - EXIT
server_ok=0; python3 interop/autobahn/check.py "$reports/server" wsx || server_ok=1

# Client side (the fuzzing server listens on a free port of 127.0.0.1; the client gets AUTOBAHN_URL).
run fuzzingserver -o "$reports/client" -a wsx -x "" -- "$client" | tee "$reports/client.txt" || true
client_ok=0; python3 interop/autobahn/check.py "$reports/client" wsx || client_ok=1
fi

# Over HTTP/2 (RFC 8441), through HAProxy. haproxy_between FRONT_PORT BACK_PORT FRONT_PROTO
# BACK_PROTO: a config in $reports (proto "h2": cleartext HTTP/2 with prior knowledge).
haproxy_between() {
  local cfg="$reports/haproxy-$1.cfg"
  cat >"$cfg" <<CFG
global
  maxconn 2000
defaults
  mode http
  timeout connect 5s
  timeout client 120s
  timeout server 120s
  timeout tunnel 300s
frontend fuzz
  bind 127.0.0.1:$1 ${3:+proto $3}
  default_backend testee
backend testee
  # The fuzzing server checks that Host names its own port (a proxy in front rewrites it).
  http-request set-header host 127.0.0.1:$2
  server testee 127.0.0.1:$2 ${4:+proto $4}
CFG
  haproxy -f "$cfg" -db >>"$reports/haproxy.log" 2>&1 &
  echo $!
}
wait_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }

if [ "$only" != h1 ]; then
command -v haproxy >/dev/null || { echo "autobahn: haproxy is not installed (apt-get install haproxy)" >&2; exit 1; }
# Server side over HTTP/2.
port=$(free_port); proxy_port=$(free_port)
"$wsx" serve --listen "127.0.0.1:$port" --http2 --max-message-size 67108864 --log warn \
  >"$reports/server-h2.log" 2>&1 &
server=$!
proxy=$(haproxy_between "$proxy_port" "$port" "" h2)
trap 'kill $server $proxy 2>/dev/null || true' EXIT
wait_port "$port"; wait_port "$proxy_port"
run fuzzingclient -o "$reports/server-h2" -a wsx -x "" "ws://127.0.0.1:$proxy_port/echo" \
  | tee "$reports/server-h2.txt" || true
h2_streams=$(python3 -c "import urllib.request as u; print(next(l.split()[1] for l in u.urlopen('http://127.0.0.1:$port/metrics').read().decode().splitlines() if l.startswith('wsx_http2_websockets_total')))")
kill $server $proxy; wait $server $proxy 2>/dev/null || true
trap - EXIT
server_h2_ok=0; python3 interop/autobahn/check.py "$reports/server-h2" wsx || server_h2_ok=1
echo "wsx serve took $h2_streams WebSockets over HTTP/2 from haproxy"
if [ "${h2_streams:-0}" -lt 517 ]; then
  echo "error: haproxy did not carry every case over HTTP/2 ($h2_streams WebSockets over HTTP/2)" >&2
  server_h2_ok=1
fi

# Client side over HTTP/2: the fuzzing server on a port chosen here, haproxy in front of it.
fuzz_port=$(free_port); proxy_port=$(free_port)
proxy=$(haproxy_between "$proxy_port" "$fuzz_port" h2 "")
trap 'kill $proxy 2>/dev/null || true' EXIT
wait_port "$proxy_port"
run fuzzingserver -p "$fuzz_port" -o "$reports/client-h2" -a wsx -x "" -- \
  "$client" --http2 "ws://127.0.0.1:$proxy_port" | tee "$reports/client-h2.txt" || true
kill $proxy; wait $proxy 2>/dev/null || true
trap - EXIT
client_h2_ok=0; python3 interop/autobahn/check.py "$reports/client-h2" wsx || client_h2_ok=1
fi

summary() { grep -E '^([0-9]+ passed|  )' "$1" | sed "s|$(pwd)/||" || true; }
{
  echo "# Conformance: the Autobahn Testsuite"
  echo
  echo "Latest run of \`scripts/autobahn.sh\` (all 517 cases, 9.* included, strict gate:"
  echo "no FAILED, no NON-STRICT, no UNIMPLEMENTED: permessage-deflate's 12.* and 13.* included)."
  echo "Run on $(date -u +%Y-%m-%d), $(uname -m), $(nproc) cores, with the repository's own Python 3"
  echo "port of the Autobahn Testsuite's fuzzer (\`interop/autobahn/\`: autobahntestsuite 25.10.1 and"
  echo "autobahn 0.10.9 from PyPI, ported by \`port.py\`, run by \`run.py\`, gated by \`check.py\`)."
  echo
  echo "## Server: \`wsx serve --max-message-size 67108864\`, \`/echo\`"
  echo '```'
  summary "$reports/server.txt"
  echo '```'
  echo
  echo "## Client: \`wsx/examples/autobahn_client.rs\`"
  echo '```'
  summary "$reports/client.txt"
  echo '```'
  echo
  echo "## Server over HTTP/2 (RFC 8441): fuzzingclient -> HAProxy $(haproxy -v 2>/dev/null | head -1 | awk '{print $3}') (HTTP/1.1 in, h2c out) -> \`wsx serve --http2\`"
  echo
  echo "wsx serve's /metrics counted $h2_streams WebSockets over HTTP/2 (\`wsx_http2_websockets_total\`)."
  echo '```'
  summary "$reports/server-h2.txt"
  echo '```'
  echo
  echo "## Client over HTTP/2 (RFC 8441): \`autobahn_client --http2\` (every case on one HTTP/2 connection) -> HAProxy (h2c in, HTTP/1.1 out) -> fuzzingserver"
  echo '```'
  summary "$reports/client-h2.txt"
  echo '```'
} > "$reports/conformance.md"
echo "summary: target/autobahn/conformance.md"
if [ $update_docs = 1 ]; then
  cp "$reports/conformance.md" docs/conformance.md
  echo "copied to docs/conformance.md"
fi
[ $server_ok = 0 ] && [ $client_ok = 0 ] && [ $server_h2_ok = 0 ] && [ $client_h2_ok = 0 ]
