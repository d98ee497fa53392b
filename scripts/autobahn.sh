#!/usr/bin/env bash
# The Autobahn Testsuite as a gate, both sides, all 517 cases (9.* included):
#   server: `wsx serve --max-message-size 67108864` at ws://127.0.0.1:PORT/echo
#   client: the `autobahn_client` example against the fuzzing server
# Passes only with 0 FAILED, 0 NON-STRICT and 0 UNIMPLEMENTED (permessage-deflate included). Writes the summaries to docs/conformance.md.
# Needs ../shared/tools/autobahn (setup.sh is run once if wstest is missing).
set -euo pipefail
cd "$(dirname "$0")/.."
tools="$(cd ../shared/tools/autobahn && pwd)"
venv="${AUTOBAHN_VENV:-/tmp/autobahn-venv}"
[ -x "$venv/bin/wstest" ] || "$tools/setup.sh" "$venv"
export AUTOBAHN_VENV="$venv"

cargo build --release --quiet -p wsx-cli -p wsx --examples --bins
reports="$(pwd)/target/autobahn"
rm -rf "$reports"; mkdir -p "$reports"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Server side.
port=$(free_port)
target/release/wsx serve --listen "127.0.0.1:$port" --max-message-size 67108864 --log warn \
  >"$reports/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
"$tools/run-fuzzingclient.sh" -o "$reports/server" -a wsx -x "" "ws://127.0.0.1:$port/echo" \
  | tee "$reports/server.txt" || true
kill $server; wait $server 2>/dev/null || true
trap - EXIT
server_ok=0; python3 interop/autobahn/check.py "$reports/server" wsx || server_ok=1

# Client side.
port=$(free_port)
"$tools/run-fuzzingserver.sh" -o "$reports/client" -p "$port" -x "" -- \
  target/release/examples/autobahn_client | tee "$reports/client.txt" || true
client_ok=0; python3 interop/autobahn/check.py "$reports/client" wsx || client_ok=1

{
  echo "# Conformance: the Autobahn Testsuite"
  echo
  echo "Latest run of \`scripts/autobahn.sh\` (all 517 cases, 9.* included, strict gate:"
  echo "no FAILED, no NON-STRICT, no UNIMPLEMENTED: permessage-deflate's 12.* and 13.* included)."
  echo "Run on $(date -u +%Y-%m-%d), $(uname -m), $(nproc) cores."
  echo
  echo "## Server: \`wsx serve --max-message-size 67108864\`, \`/echo\`"
  echo '```'
  grep -vE '^(wstest|wall time)' "$reports/server.txt" | sed "s|$(pwd)/||" || true
  echo '```'
  echo
  echo "## Client: \`wsx/examples/autobahn_client.rs\`"
  echo '```'
  grep -vE '^(wstest|client:|wall time)' "$reports/client.txt" | sed "s|$(pwd)/||" || true
  echo '```'
} > docs/conformance.md
[ $server_ok = 0 ] && [ $client_ok = 0 ]
