#!/usr/bin/env bash
# The Autobahn Testsuite as a gate, both sides, all 517 cases (9.* included):
#   server: `wsx serve --max-message-size 67108864` at ws://127.0.0.1:PORT/echo
#   client: the `autobahn_client` example against the fuzzing server
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
} > "$reports/conformance.md"
echo "summary: target/autobahn/conformance.md"
if [ $update_docs = 1 ]; then
  cp "$reports/conformance.md" docs/conformance.md
  echo "copied to docs/conformance.md"
fi
[ $server_ok = 0 ] && [ $client_ok = 0 ]
