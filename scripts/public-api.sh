#!/usr/bin/env bash
# The public API, written down: fails when what wsx-proto or wsx export (with every feature)
# differs from docs/public-api/CRATE.txt, so that changes to it are deliberate.
#   scripts/public-api.sh            check (what scripts/test.sh runs)
#   scripts/public-api.sh --bless    write the lists anew after a deliberate change
# Uses rustdoc's JSON output (unstable; RUSTC_BOOTSTRAP lets the stable toolchain emit it).
set -euo pipefail
cd "$(dirname "$0")/.."
status=0
for crate in wsx_proto wsx; do
  package=${crate//_/-}
  RUSTC_BOOTSTRAP=1 cargo rustdoc -q -p "$package" --all-features --lib -- \
    -Z unstable-options --output-format json
  mkdir -p target/public-api
  python3 scripts/public_api.py "target/doc/$crate.json" > "target/public-api/$package.txt"
  if [ "${1:-}" = "--bless" ]; then
    cp "target/public-api/$package.txt" "docs/public-api/$package.txt"
  elif ! diff -u "docs/public-api/$package.txt" "target/public-api/$package.txt"; then
    echo "error: the public API of $package changed (above: - was, + is). If that is deliberate," >&2
    echo "       run scripts/public-api.sh --bless and commit docs/public-api/$package.txt" >&2
    status=1
  fi
done
exit $status
