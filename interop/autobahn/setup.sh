#!/usr/bin/env bash
# Installs the Autobahn Testsuite's fuzzer (`wstest`) on Python 3, in a venv of its own.
#
#   interop/autobahn/setup.sh        # -> target/autobahn-venv/bin/wstest (AUTOBAHN_VENV=DIR overrides)
#
# The suite is Python 2.7 code (autobahntestsuite 25.10.1 on PyPI, with autobahn 0.10.9, the
# version it pins). This script downloads both sdists from PyPI, checks their sha256, ports them
# to Python 3 with interop/autobahn/port.py (lib2to3, then targeted edits that each fail loudly
# if their target text is missing) and installs them, with pinned current dependencies, into the
# venv. Nothing converted is kept in the repository.
#
# Idempotent: when the venv's wstest answers --autobahnversion and was built by this same setup.sh
# and port.py, it does nothing. A venv left by an older port is rebuilt.
#
# Needs: Python 3.9-3.12 with venv and lib2to3 (3.13 dropped lib2to3; PYTHON=/path/to/python3.x
# picks one, otherwise the first of python3, python3.12 ... python3.9 that fits), pip access to
# PyPI, tar and sha256sum.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="${AUTOBAHN_VENV:-$root/target/autobahn-venv}"
case "$venv" in /*) ;; *) venv="$(pwd)/$venv" ;; esac

die() { echo "autobahn setup: $*" >&2; exit 1; }

ATS_VERSION=25.10.1
ATS_SHA256=b083d6e15330fc16f3e5f0975cce2b15f21bfa0c6db09547316b1852c6dbd6df
AB_VERSION=0.10.9
AB_SHA256=3fecc1e2a26a0421128ddcfb4e577f0bc669dd65d0e0fdad1c773965cbcef75a

# What wstest runs on, pinned (every package of the resolved set): the versions this port was
# validated with. Python 3.11 and later get the current releases; 3.9 and 3.10 the newest that
# still support them (Twisted 26.10 needs 3.10, txaio 26.6 needs 3.11). wsaccel is autobahn's
# "accelerate" extra (C UTF-8 validator and XOR masker; the pure-Python fallbacks work but make
# 9.* and 12.* several times slower). setuptools < 81 keeps pkg_resources, which the suite uses at
# run time; 75.3 does not yet warn about it on every start.
new="python_version >= '3.11'" old="python_version < '3.11'"
deps=(
  "setuptools==75.3.0" "wheel==0.48.0" "six==1.17.0" "wsaccel==0.6.7"
  "pyOpenSSL==26.4.0" "service-identity==26.1.0" "cryptography==50.0.2"
  "attrs==26.1.0" "Automat==25.4.16" "constantly==23.10.4" "hyperlink==21.0.0" "idna==3.20"
  "incremental==24.11.0" "typing_extensions==4.16.0" "Jinja2==3.1.6" "MarkupSafe==3.0.4"
  "Twisted==26.10.0; $new" "txaio==26.6.1; $new" "zope.interface==8.7; $new"
  "cffi==2.1.1; $new" "pycparser==3.12; $new" "packaging==26.4; $new"
  "Twisted==26.4.0; $old" "txaio==23.6.1; $old" "zope.interface==8.0.1; $old"
  "cffi==2.0.0; $old" "pycparser==2.23; $old" "packaging==26.3; $old" "tomli==2.5.0; $old"
)

# A stamp of what built the venv: this script and the port.
stamp="$(cat "$here/setup.sh" "$here/port.py" | sha256sum | cut -d' ' -f1)"
if [ -x "$venv/bin/wstest" ] && [ "$(cat "$venv/.wsx-autobahn-stamp" 2>/dev/null)" = "$stamp" ] \
   && (cd "$venv" && bin/wstest --autobahnversion) >/dev/null 2>&1; then
  echo "autobahn setup: $venv/bin/wstest is ready"
  exit 0
fi

# --- requirements --------------------------------------------------------------------------
usable() { # python: 3.9-3.12, with lib2to3 and a venv that can install pip
  "$1" -W ignore -c 'import sys, lib2to3.main, venv, ensurepip
sys.exit(not (3, 9) <= sys.version_info[:2] <= (3, 12))' >/dev/null 2>&1
}
if [ -n "${PYTHON:-}" ]; then
  usable "$PYTHON" || die "PYTHON=$PYTHON is not Python 3.9-3.12 with lib2to3, venv and ensurepip"
  py="$PYTHON"
else
  py=""
  for candidate in python3 python3.12 python3.11 python3.10 python3.9; do
    if command -v "$candidate" >/dev/null && usable "$candidate"; then py="$candidate"; break; fi
  done
  [ -n "$py" ] || die "needs Python 3.9-3.12 with lib2to3, venv and ensurepip (python3 is $(python3 --version 2>&1 || echo missing); on Debian: apt-get install python3-venv; or set PYTHON=)"
fi
for tool in tar sha256sum; do command -v "$tool" >/dev/null || die "needs $tool"; done
if [ -e "$venv" ] && [ ! -f "$venv/pyvenv.cfg" ] && [ -n "$(ls -A "$venv" 2>/dev/null)" ]; then
  die "$venv exists and is not a venv: not touching it (set AUTOBAHN_VENV to another directory)"
fi

start=$(date +%s)
work="$(mktemp -d "${TMPDIR:-/tmp}/wsx-autobahn-setup.XXXXXX")"
trap 'rm -rf "$work"' EXIT
pipq() { "$venv/bin/python" -m pip --disable-pip-version-check -q "$@"; }

echo "autobahn setup: venv $venv ($("$py" --version 2>&1))"
"$py" -m venv --clear "$venv" || die "could not create the venv $venv"
pipq install "${deps[@]}" || die "pip could not install the dependencies (is PyPI reachable?)"

echo "autobahn setup: downloading autobahntestsuite $ATS_VERSION and autobahn $AB_VERSION (sdists)"
# Hash-checking mode: pip checks each archive before it runs any of its code (setup.py).
printf '%s\n' "autobahntestsuite==$ATS_VERSION --hash=sha256:$ATS_SHA256" \
  "autobahn==$AB_VERSION --hash=sha256:$AB_SHA256" > "$work/sdists.txt"
pipq download --no-deps --no-binary :all: --no-build-isolation --require-hashes -d "$work/sdist" \
  -r "$work/sdists.txt" || die "pip could not download the sdists, or their sha256 did not match"
ats_tgz="$work/sdist/autobahntestsuite-$ATS_VERSION.tar.gz"
ab_tgz="$work/sdist/autobahn-$AB_VERSION.tar.gz"
printf '%s  %s\n%s  %s\n' "$ATS_SHA256" "$ats_tgz" "$AB_SHA256" "$ab_tgz" | sha256sum -c --quiet - \
  || die "sha256 mismatch: these are not the sdists this port was written for"
tar xzf "$ats_tgz" -C "$work"
tar xzf "$ab_tgz" -C "$work"

echo "autobahn setup: porting to Python 3 (port.py)"
"$venv/bin/python" "$here/port.py" "$work/autobahn-$AB_VERSION" "$work/autobahntestsuite-$ATS_VERSION" \
  || die "port.py failed (see above); nothing installed"
pipq install --no-deps --no-build-isolation "$work/autobahn-$AB_VERSION" "$work/autobahntestsuite-$ATS_VERSION" \
  || die "pip could not install the ported packages"

version="$(cd "$venv" && bin/wstest --autobahnversion 2>&1)" || die "the installed wstest does not start:
$version"
echo "$stamp" > "$venv/.wsx-autobahn-stamp"
echo "autobahn setup: $venv/bin/wstest ready ($(echo $version)) in $(( $(date +%s) - start ))s"
