#!/usr/bin/env python3
"""The Autobahn gate: stricter than the suite's own pass/fail.

usage: check.py REPORT_DIR AGENT

Fails unless every case is OK or INFORMATIONAL with a closing behaviour of OK or
INFORMATIONAL: NON-STRICT, FAILED, UNIMPLEMENTED (permessage-deflate's 12.* and 13.*
included) and anything else fail the gate. Also fails when fewer than 517 cases were
reported.
"""
import json
import os
import sys

EXPECTED_CASES = 517


def main():
    args = sys.argv[1:]
    if len(args) != 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    outdir, agent = args
    try:
        with open(os.path.join(outdir, "index.json")) as f:
            cases = json.load(f)[agent]
    except (OSError, ValueError, KeyError) as e:
        print("autobahn gate: no report for %s in %s: %s" % (agent, outdir, e))
        return 1
    bad = []
    for cid, c in sorted(cases.items()):
        behavior, close = c["behavior"], c["behaviorClose"]
        if behavior not in ("OK", "INFORMATIONAL") or close not in ("OK", "INFORMATIONAL"):
            bad.append("%s: behavior %s, close %s (%s)" % (cid, behavior, close, c["reportfile"]))
    if len(cases) < EXPECTED_CASES:
        bad.append("only %d of %d cases reported" % (len(cases), EXPECTED_CASES))
    for line in bad:
        print("autobahn gate FAILED: " + line)
    if not bad:
        print("autobahn gate passed for %s: %d cases, none NON-STRICT, FAILED or UNIMPLEMENTED"
              % (agent, len(cases)))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
