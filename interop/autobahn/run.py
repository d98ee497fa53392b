#!/usr/bin/env python3
"""Run the Autobahn Testsuite's fuzzer (wstest, installed by setup.sh) and summarise.

Test a SERVER (wstest's fuzzingclient mode; the server must echo text and binary messages):
  run.py fuzzingclient [-o OUTDIR] [-a AGENT] [-c CASES] [-x EXCLUDES] URL

Test a CLIENT (wstest's fuzzingserver mode, listening on 127.0.0.1 only; the command gets
AUTOBAHN_URL=ws://127.0.0.1:PORT in its environment):
  run.py fuzzingserver [-o OUTDIR] [-a AGENT] [-c CASES] [-x EXCLUDES] [-p PORT] -- CMD [ARG...]

Re-print the summary of a report directory:
  run.py summary OUTDIR [AGENT]

  -c CASES     comma-separated case patterns, default "*" (all 517)
  -x EXCLUDES  comma-separated patterns to leave out, default none; e.g. -x "9.*,12.*,13.*"
  -o OUTDIR    report directory (index.json, index.html, a .json and .html per case, wstest.log,
               and in fuzzingserver mode client.log); default ./autobahn-reports
  -a AGENT     the agent to summarise (default: every agent in the report); in fuzzingclient
               mode also the name the reports give the server (default "server")
  -p PORT      fuzzingserver port (default: a free port chosen now)
  --timeout S  give up on wstest / the client command after S seconds (default 3600)

The client command speaks the usual testee protocol: one connection to $AUTOBAHN_URL/getCaseCount
(one text message: N), then for i in 1..N $AUTOBAHN_URL/runCase?case=i&agent=NAME echoing every
text/binary message until the close. This script then asks the fuzzer for the reports
(/updateReports) and stops it; its output goes to OUTDIR/client.log.

Prints, per agent:
  N passed, M failed (OK a, NON-STRICT b, INFORMATIONAL c, UNIMPLEMENTED d, FAILED e; T cases) [agent]
where passed = OK + NON-STRICT + INFORMATIONAL (Autobahn's own notion) and failed = anything but
those and UNIMPLEMENTED (12.*/13.* without permessage-deflate), then one line for every case
whose behaviour or closing behaviour is not OK (UNIMPLEMENTED cases: one line per group).
Exit status: 0 nothing failed; 1 a case failed, or fewer cases were reported than wstest
planned; 2 no report at all (e.g. the server was not reachable). interop/autobahn/check.py is
the stricter gate.

Env: AUTOBAHN_VENV (default target/autobahn-venv of this repository); setup.sh is run first
when that venv has no wstest.
"""
import argparse
import base64
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
PASSING = ("OK", "NON-STRICT", "INFORMATIONAL")


def venv_dir():
    return os.path.abspath(os.environ.get("AUTOBAHN_VENV") or os.path.join(ROOT, "target", "autobahn-venv"))


def wstest():
    path = os.path.join(venv_dir(), "bin", "wstest")
    if not os.access(path, os.X_OK):
        print("no wstest in %s: running interop/autobahn/setup.sh" % venv_dir(), flush=True)
        subprocess.run([os.path.join(HERE, "setup.sh")], check=True)
    return path


def split(patterns):
    return [p.strip() for p in patterns.split(",") if p.strip()]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port, proc, seconds=30):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            return False
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return True
        except OSError:
            time.sleep(0.1)
    return False


def stop(proc, grace=5):
    """End a process we started (and the process group it leads), by its pid."""
    if proc is None or proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            pass


def ws_command(port, path, timeout):
    """Open a WebSocket to the fuzzingserver at `path` (/updateReports?..., /stopServer) and wait
    until the fuzzer closes it: it writes the reports before its close frame. True on a 101."""
    s = socket.create_connection(("127.0.0.1", port), 10)
    try:
        s.settimeout(timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        s.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n"
                   % (path, port, key)).encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                return False
            buf += chunk
        head, buf = buf.split(b"\r\n\r\n", 1)
        if not head.startswith(b"HTTP/1.1 101"):
            return False
        while True:  # frames from the server (unmasked) until its close, or EOF
            while len(buf) < 2:
                chunk = s.recv(65536)
                if not chunk:
                    return True
                buf += chunk
            opcode, n = buf[0] & 0x0F, buf[1] & 0x7F
            hdr = 2 + {126: 2, 127: 8}.get(n, 0)
            while len(buf) < hdr:
                chunk = s.recv(65536)
                if not chunk:
                    return True
                buf += chunk
            if n == 126:
                n = struct.unpack("!H", buf[2:4])[0]
            elif n == 127:
                n = struct.unpack("!Q", buf[2:10])[0]
            while len(buf) < hdr + n:
                chunk = s.recv(65536)
                if not chunk:
                    return True
                buf += chunk
            buf = buf[hdr + n:]
            if opcode == 8:
                s.sendall(b"\x88\x82\x00\x00\x00\x00\x03\xe8")  # masked close 1000 (mask 0)
                return True
    finally:
        s.close()


def write_spec(path, spec):
    with open(path, "w") as f:
        json.dump(spec, f, indent=2)


def planned_cases(log):
    try:
        with open(log, errors="replace") as f:
            m = re.search(r"Ok, will run (\d+) test cases", f.read())
        return int(m.group(1)) if m else None
    except OSError:
        return None


def log_notes(log):
    try:
        with open(log, errors="replace") as f:
            text = f.read()
    except OSError:
        return
    n = text.count("Traceback (most recent call last)")
    if n:
        print("note: %d Python traceback(s) in %s (a misbehaving peer can cause them; have a look)" % (n, log))


def case_key(cid):
    return tuple(int(x) if x.isdigit() else x for x in cid.split("."))


def summary(outdir, agent=None, planned=None):
    path = os.path.join(outdir, "index.json")
    try:
        with open(path) as f:
            index = json.load(f)
    except (OSError, ValueError) as e:
        print("0 passed, 0 failed (no report: %s)" % e)
        return 2
    agents = [a for a in sorted(index) if agent is None or a == agent]
    if not agents or not any(index[a] for a in agents):
        print("0 passed, 0 failed (no cases for %s in %s)" % (agent or "any agent", path))
        return 2
    status = 0
    for a in agents:
        cases = index[a]
        counts = {}
        for c in cases.values():
            counts[c["behavior"]] = counts.get(c["behavior"], 0) + 1
        passed = sum(counts.get(b, 0) for b in PASSING)
        failed = sum(n for b, n in counts.items() if b not in PASSING + ("UNIMPLEMENTED",))
        other = "".join(", %s %d" % (b, n) for b, n in sorted(counts.items())
                        if b not in PASSING + ("UNIMPLEMENTED", "FAILED"))
        print("%d passed, %d failed (OK %d, NON-STRICT %d, INFORMATIONAL %d, UNIMPLEMENTED %d, FAILED %d%s; %d cases) [%s]"
              % (passed, failed, counts.get("OK", 0), counts.get("NON-STRICT", 0),
                 counts.get("INFORMATIONAL", 0), counts.get("UNIMPLEMENTED", 0),
                 counts.get("FAILED", 0), other, len(cases), a))
        unimplemented = {}
        for cid, c in sorted(cases.items(), key=lambda kv: case_key(kv[0])):
            if c["behavior"] == "UNIMPLEMENTED":
                group = cid.split(".")[0] + ".*"
                unimplemented[group] = unimplemented.get(group, 0) + 1
            elif c["behavior"] != "OK" or c["behaviorClose"] not in ("OK", "INFORMATIONAL"):
                print("  %-9s %-14s close=%-16s code=%-5s %s" % (
                    cid, c["behavior"], c["behaviorClose"], c["remoteCloseCode"],
                    os.path.relpath(os.path.join(outdir, c["reportfile"]))))
        if unimplemented:
            print("  UNIMPLEMENTED: " + ", ".join("%s (%d cases)" % kv for kv in unimplemented.items()))
        if failed:
            status = 1
        if planned is not None and len(cases) < planned:
            print("  only %d of the %d planned cases were reported (peer unreachable, or it died?)"
                  % (len(cases), planned))
            status = 1
    return status


def prepare(outdir):
    os.makedirs(outdir, exist_ok=True)
    outdir = os.path.abspath(outdir)
    for name in ("index.json", "index.html"):
        if os.path.exists(os.path.join(outdir, name)):
            os.remove(os.path.join(outdir, name))
    return outdir


def fuzzingclient(args):
    exe = wstest()
    outdir = prepare(args.outdir)
    spec = os.path.join(outdir, "fuzzingclient.json")
    write_spec(spec, {"outdir": outdir,
                      "servers": [{"agent": args.agent or "server", "url": args.url}],
                      "cases": split(args.cases), "exclude-cases": split(args.exclude),
                      "exclude-agent-cases": {}})
    log = os.path.join(outdir, "wstest.log")
    print("wstest fuzzingclient -> %s  cases=[%s] excluded=[%s]  reports: %s"
          % (args.url, args.cases, args.exclude, os.path.relpath(outdir)), flush=True)
    start = time.time()
    with open(log, "w") as out:
        proc = subprocess.Popen([exe, "-m", "fuzzingclient", "-s", spec], cwd=outdir,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            proc.wait(args.timeout)
        except subprocess.TimeoutExpired:
            print("wstest still running after %ds: stopped" % args.timeout)
        finally:
            stop(proc)
    print("wall time: %ds (log: %s)" % (time.time() - start, os.path.relpath(log)), flush=True)
    log_notes(log)
    return summary(outdir, args.agent or "server", planned_cases(log))


def fuzzingserver(args):
    exe = wstest()
    if not args.command:
        print("fuzzingserver: no client command given (run.py fuzzingserver ... -- CMD)", file=sys.stderr)
        return 2
    outdir = prepare(args.outdir)
    port = args.port or free_port()
    url = "ws://127.0.0.1:%d" % port
    spec = os.path.join(outdir, "fuzzingserver.json")
    write_spec(spec, {"url": url, "interface": "127.0.0.1", "outdir": outdir,
                      "cases": split(args.cases), "exclude-cases": split(args.exclude),
                      "exclude-agent-cases": {}})
    log = os.path.join(outdir, "wstest.log")
    client_log = os.path.join(outdir, "client.log")
    start = time.time()
    fuzzer = client = None
    try:
        with open(log, "w") as out:
            # -u 0: no embedded web server (it would listen on port 8080)
            fuzzer = subprocess.Popen([exe, "-m", "fuzzingserver", "-s", spec, "-u", "0"], cwd=outdir,
                                      stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        if not wait_listening(port, fuzzer):
            print("the fuzzingserver did not come up on %s; see %s" % (url, log))
            return 2
        print("wstest fuzzingserver at %s  cases=[%s] excluded=[%s]  reports: %s"
              % (url, args.cases, args.exclude, os.path.relpath(outdir)))
        print("client: %s  (output: %s)" % (" ".join(args.command), os.path.relpath(client_log)), flush=True)
        with open(client_log, "w") as out:
            client = subprocess.Popen(args.command, env=dict(os.environ, AUTOBAHN_URL=url),
                                      stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
            try:
                rc = client.wait(args.timeout)
                if rc != 0:
                    print("note: the client command exited with status %d" % rc)
            except subprocess.TimeoutExpired:
                print("the client command was still running after %ds: stopped" % args.timeout)
            finally:
                stop(client)
        if not ws_command(port, "/updateReports?agent=run.py", 600):
            print("note: /updateReports failed; the report may be missing or stale")
        try:
            ws_command(port, "/stopServer", 10)
        except OSError:
            pass
        try:
            fuzzer.wait(10)
        except subprocess.TimeoutExpired:
            pass
    finally:
        stop(client)
        stop(fuzzer)
    print("wall time: %ds (log: %s)" % (time.time() - start, os.path.relpath(log)), flush=True)
    log_notes(log)
    return summary(outdir, args.agent, planned_cases(log))


def main():
    parser = argparse.ArgumentParser(usage=__doc__)
    sub = parser.add_subparsers(dest="mode")
    usage = {"fuzzingclient": "run.py fuzzingclient [-o OUTDIR] [-a AGENT] [-c CASES] [-x EXCLUDES] URL",
             "fuzzingserver": "run.py fuzzingserver [-o OUTDIR] [-a AGENT] [-c CASES] [-x EXCLUDES] [-p PORT] -- CMD [ARG...]"}
    for mode in ("fuzzingclient", "fuzzingserver"):
        p = sub.add_parser(mode, usage=usage[mode] + "\n(run.py with no arguments explains everything)")
        p.add_argument("-o", dest="outdir", default="autobahn-reports")
        p.add_argument("-a", dest="agent", default=None)
        p.add_argument("-c", dest="cases", default="*")
        p.add_argument("-x", dest="exclude", default="")
        p.add_argument("--timeout", type=int, default=3600)
        if mode == "fuzzingclient":
            p.add_argument("url")
        else:
            p.add_argument("-p", dest="port", type=int, default=0)
            p.add_argument("command", nargs=argparse.REMAINDER)
    p = sub.add_parser("summary", usage="run.py summary OUTDIR [AGENT]")
    p.add_argument("outdir")
    p.add_argument("agent", nargs="?")
    args = parser.parse_args()
    if args.mode is None:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    # SIGTERM ends us through the finally blocks, which stop what we started; a closed pipe
    # (run.py ... | head) just ends the output.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    if args.mode == "summary":
        return summary(args.outdir, args.agent)
    if args.mode == "fuzzingserver":
        if args.command and args.command[0] == "--":
            args.command = args.command[1:]
        return fuzzingserver(args)
    return fuzzingclient(args)


if __name__ == "__main__":
    sys.exit(main())
