#!/usr/bin/env bash
# Every test of the project, in the order a failure is cheapest to read: format, lints,
# unit + integration + doc tests, docs, benches compile, the browser test, fuzz smoke runs,
# the interop suite (real peers), the chat rooms' superchat suite (real redis-server, nginx and
# nodes), the soak and the Autobahn gate (about 10 minutes of the total).
# Usage: scripts/test.sh            (FUZZ_SECONDS=N to fuzz each target longer; default 20)
# Under CI=true nothing may be skipped: a missing tool is a failure, not a skip.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }
missing() {
  if [ "${CI:-}" = "true" ]; then
    echo "error: $1 is not installed; .ci/run installs it (CI may not skip a suite)" >&2
    exit 1
  fi
  echo "SKIPPED: $1 is not installed ($2)" >&2
}

step "cargo fmt --check"
cargo fmt --all -- --check
(cd fuzz && cargo fmt -- --check)

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --all-features -- -D warnings

step "cargo test"
cargo test --workspace --all-features

step "cargo doc -D warnings"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --all-features --no-deps --quiet

step "public API unchanged (docs/public-api; scripts/public-api.sh --bless after a deliberate change)"
scripts/public-api.sh

step "wsx without default features (no rustls): same types, lints clean"
cargo clippy -p wsx --no-default-features -- -D warnings

step "the three crates package and build as published (cargo publish --dry-run)"
# The dry run builds our packages as if from a registry, and cargo never rebuilds a registry
# crate of a name and version it has built before: an earlier run's wsx-proto 0.1.0 would be
# reused, stale once the code changed. So: a target directory of its own, our three packages
# cleaned out of it first, and no unpacked copy of them left from an earlier run.
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
for crate in wsx wsx-proto wsx-cli; do
  rm -rf "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/"$crate-$version" \
    "${CARGO_HOME:-$HOME/.cargo}"/registry/cache/*/"$crate-$version.crate"
done
cargo clean --quiet --target-dir target/publish -p wsx-proto -p wsx -p wsx-cli 2>/dev/null || true
cargo publish --workspace --dry-run --allow-dirty --quiet --target-dir target/publish

step "benches compile (criterion, and the peer servers of bench/run.py; no timing in CI)"
cargo bench --workspace --all-features --no-run --quiet
cargo build --quiet --manifest-path bench/servers/Cargo.toml

step "browser: the chat page in headless Chromium (Playwright)"
if command -v node >/dev/null && [ -x "${CHROMIUM:-/usr/bin/chromium}" ] && [ -d tests/browser/node_modules/playwright-core ]; then
  cargo build --quiet -p wsx-cli
  node tests/browser/chat.mjs target/debug/wsx
  node tests/browser/h2.mjs target/debug/wsx
else
  missing "chromium or playwright-core" "apt-get install chromium; npm ci --prefix tests/browser"
fi

step "fuzz targets"
if cargo fuzz --version >/dev/null 2>&1; then
  # Stable toolchain: RUSTC_BOOTSTRAP lets it accept the sanitizer flags cargo-fuzz passes.
  export RUSTC_BOOTSTRAP=1
  (cd fuzz && cargo clippy --quiet -- -D warnings)
  for target in $(cd fuzz && cargo fuzz list); do
    echo "fuzzing $target for ${FUZZ_SECONDS:-20}s"
    # -rss_limit_mb/-malloc_limit_mb: any allocation beyond the configured limits is a failure.
    # A corpus under fuzz/target/ (seeded from fuzz/seeds/), so runs do not dirty the tree.
    mkdir -p "fuzz/target/corpus/$target"
    log="fuzz/target/$target.log"
    if ! (cd fuzz && cargo fuzz run "$target" "target/corpus/$target" "seeds/$target" -- \
      -dict=http.dict -max_total_time="${FUZZ_SECONDS:-20}" \
      -rss_limit_mb=1024 -malloc_limit_mb=64 -timeout=5) >"$log" 2>&1; then
      tail -n 60 "$log"
      echo "error: fuzz target $target failed (log: $log; the crashing input is in fuzz/artifacts/$target/)" >&2
      exit 1
    fi
    grep -E '^Done' "$log"
  done
else
  missing cargo-fuzz "cargo install cargo-fuzz --locked"
fi

step "interop: Python websockets and Node ws, both ways"
if command -v node >/dev/null && command -v openssl >/dev/null; then
  scripts/interop.sh
else
  missing "node or openssl" "apt-get install nodejs openssl"
fi

step "rooms: superchat (history, resume, presence, chaos) with real redis-server, a 3-master Redis Cluster, nginx and nodes"
# (interop/rooms/test_rooms.py: Python websockets as a client written from docs/rooms.md; it
# starts every server itself on free loopback ports and stops each by its pid; about 2 minutes.)
have() { command -v "$1" >/dev/null || [ -x "/usr/sbin/$1" ] || [ -x "/usr/local/sbin/$1" ] || [ -x "/sbin/$1" ]; }
if have redis-server && have redis-cli && have nginx; then
  venv=target/interop-venv
  if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import websockets' 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q -r interop/requirements.txt
  fi
  cargo build --quiet -p wsx-cli
  timeout 600 "$venv/bin/python" interop/rooms/test_rooms.py --wsx target/debug/wsx
else
  missing "redis-server, redis-cli or nginx" "apt-get install redis-server redis-tools nginx"
fi

step "soak: 1,000 connections for 2 minutes (echo, rooms, joins and leaves, slow and vanishing clients)"
# (bench/soak.py; the full run is 10,000 connections for 10 minutes: see its docstring.) Every
# message is checked; the server's RSS may not grow by more than 2 MiB/min after the warm-up.
# Up to 5 client-side stragglers (a replacement connection that did not finish in time while the
# Python clients' event loop lagged on a loaded machine) are tolerated; lost, duplicated or
# reordered messages never are.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
target/interop-venv/bin/python bench/soak.py --ci --duration 120 --warmup 60 \
  --max-rss-slope-kib-per-min 2048 --max-failures 5

step "conformance: the Autobahn Testsuite, server and client, all 517 cases, over HTTP/1.1 and over HTTP/2 (RFC 8441, through HAProxy)"
# (installs the repository's own Python 3 port of the fuzzer on first use: interop/autobahn/setup.sh)
if command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ]; then
  PATH="$PATH:/usr/sbin" scripts/autobahn.sh
else
  missing haproxy "apt-get install haproxy"
  AUTOBAHN_ONLY=h1 scripts/autobahn.sh
fi

step "all tests passed"
