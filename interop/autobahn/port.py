#!/usr/bin/env python3
"""Port the Autobahn Testsuite (Python 2.7 code) to Python 3, in place.

usage: port.py AUTOBAHN_SRC TESTSUITE_SRC

AUTOBAHN_SRC and TESTSUITE_SRC are the unpacked sdists of autobahn 0.10.9 and
autobahntestsuite 25.10.1 (setup.sh downloads and sha256-checks them). Both
are edited in place; setup.sh then installs them into the venv.

How:
  1. autobahn 0.10.9 is already Python 2/3 code: three targeted edits.
  2. autobahntestsuite: line endings to LF, then lib2to3 with its default
     fixers (print, imports, has_key, xrange, except ... as, ...).
  3. The case modules' octet strings: in Python 2 every payload literal
     ("\\xfe" * 126, "Hello-\\xb5@..." in a UTF-8 source file) is a string of
     octets. The port keeps them as str, one character per octet: the case
     modules are declared latin-1, so a literal's characters are exactly the
     file's octets (a UTF-8 "\\xc2\\xb5" stays two characters, as in Python 2),
     and indexing, slicing, chr(), + and * keep their Python 2 meaning. The
     helper module autobahntestsuite/py3port.py (written below) turns them
     into bytes where they leave the case code: the FuzzingProtocol's send
     methods, the UTF-8 validator, hex and report helpers, and the comparison
     of observed with expected events.
  4. Targeted edits for what 2to3 cannot know (integer division, old-style
     class tricks, bytes in the report writers, zope.interface.implements,
     ...), each commented with why it is needed.

Every edit names the exact text it replaces and how often it must occur; if
the text is not found as often as stated, the port stops with an error (a
different sdist, or a lib2to3 that converts differently, must not give a
silently half-ported suite).
"""
import glob
import os
import re
import subprocess
import sys


class PortError(Exception):
    pass


def read(path):
    with open(path, "rb") as f:
        return f.read().decode("latin-1")  # bytes-transparent: never fails, writes back the same octets


def write(path, text):
    with open(path, "wb") as f:
        f.write(text.encode("latin-1"))


def edit(path, old, new, count=1):
    """Replace `old` by `new` in `path`; `old` must occur exactly `count` times."""
    text = read(path)
    found = text.count(old)
    if found != count:
        raise PortError("%s: expected %d occurrence(s) of %r, found %d" % (path, count, old, found))
    write(path, text.replace(old, new))


def edit_many(paths, old, new, total):
    """Replace `old` by `new` in every file of `paths`; `total` occurrences across them.
    Returns the files that changed."""
    changed = []
    seen = 0
    for path in paths:
        n = read(path).count(old)
        if n:
            edit(path, old, new, n)
            changed.append(path)
            seen += n
    if seen != total:
        raise PortError("expected %d occurrence(s) of %r in %d files, found %d"
                        % (total, old, len(paths), seen))
    return changed


def add_import(path, line, after):
    """Add `line` right after the first line that equals `after` (which must exist)."""
    text = read(path)
    at = text.find("\n" + after + "\n")
    if at < 0:
        raise PortError("%s: no line %r to add %r after" % (path, after, line))
    at += len(after) + 2
    write(path, text[:at] + line + "\n" + text[at:])


# ---------------------------------------------------------------------------
# autobahn 0.10.9
# ---------------------------------------------------------------------------

def port_autobahn(src):
    pkg = os.path.join(src, "autobahn")
    to_lf(glob.glob(os.path.join(pkg, "**", "*.py"), recursive=True))

    # `async` is a keyword since Python 3.7: `asyncio.async(res)` is a syntax
    # error, so the module does not even compile. ensure_future is its
    # replacement (not used by wstest, which runs on Twisted, but the sdist
    # must install cleanly).
    edit(os.path.join(pkg, "asyncio", "websocket.py"),
         "asyncio.async(", "asyncio.ensure_future(", count=12)

    # sendFrame(payload_len=N) repeats a short payload to N octets (9.* and
    # 10.* send megabytes this way). `/` is true division in Python 3, and
    # range() of a float raises.
    edit(os.path.join(pkg, "websocket", "protocol.py"),
         "range(payload_len / len(payload))", "range(payload_len // len(payload))")

    # txaio picks its framework (Twisted or asyncio) at run time. The txaio of
    # 2015 guessed it from what was imported; today's raises until told, and
    # autobahn 0.10.9 tells it only in its WAMP modules. Anything importing
    # autobahn.twisted wants Twisted.
    path = os.path.join(pkg, "twisted", "__init__.py")
    write(path, read(path).rstrip("\n") + "\n\n"
          "# Python 3 port (wsx interop/autobahn/port.py): today's txaio must be told\n"
          "# which framework to use; autobahn 0.10.9 only did so in its WAMP modules.\n"
          "import txaio\n"
          "txaio.use_twisted()\n")


# ---------------------------------------------------------------------------
# autobahntestsuite 25.10.1
# ---------------------------------------------------------------------------

PY3PORT = '''\
"""Python 3 port helpers, written by wsx's interop/autobahn/port.py.

The suite was Python 2 code, in which str is a string of octets. Its case
modules keep their octet strings as str, one character per octet (the modules
are read as latin-1), so every character is <= U+00FF. These helpers turn such
strings into bytes where they meet Autobahn, the UTF-8 validator, hex output,
reports and the comparison of events. A character above U+00FF makes
octets() raise: a mistake of the port is loud, never a silently wrong frame.
"""
import binascii
import inspect


def octets(s):
    """A Python 2 octet string (str of characters <= U+00FF) as bytes; bytes,
    bytearray and None pass unchanged."""
    if isinstance(s, str):
        return s.encode("latin-1")
    return s


def hexlify(s):
    """Hex digits of an octet string (str or bytes), as str (as Python 2 had it)."""
    return binascii.b2a_hex(octets(s)).decode("ascii")


def utf8_text(s):
    """An octet string shown as text: the octets decoded as UTF-8 (what a
    Python 2 report writer did by writing the octets to a UTF-8 page)."""
    return octets(s).decode("utf-8", "replace")


def report_text(value):
    """Report fields that Autobahn hands over as bytes on Python 3 (HTTP
    request/response, close reasons) as text; anything else unchanged."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace")
    return value


def _normalized(obj):
    if isinstance(obj, str):
        return obj.encode("latin-1")
    if isinstance(obj, bytearray):
        return bytes(obj)
    if isinstance(obj, (list, tuple)):
        return type(obj)(_normalized(x) for x in obj)
    if isinstance(obj, dict):
        return dict((_normalized(k), _normalized(v)) for k, v in obj.items())
    return obj


def _strictly_equal(a, b):
    if type(a) is not type(b):
        return False
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_strictly_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return (sorted(a, key=repr) == sorted(b, key=repr)
                and all(_strictly_equal(a[k], b[k]) for k in a))
    return a == b


def same_events(observed, expected):
    """Case.compare: do two lists of events (("message", payload, binary),
    ("pong", payload), ("timeout", tag), ...) match?

    Upstream compared pickle.dumps() of both. In Python 2 that meant equal
    values of equal types (True is not 1, a tuple is not a list). In Python 3
    it does not even hold for equal values: payloads arrive as bytes while
    the case code expects octet str, and pickle's memo makes the output depend
    on object identity (an expected list that repeats one payload object
    pickles differently from received copies). So: octet strings to bytes on
    both sides, then equality that also requires equal types, recursively."""
    return _strictly_equal(_normalized(observed), _normalized(expected))


def octet_arguments(owner, name, *argnames):
    """Give class `owner` a method `name` that passes the named arguments
    through octets() and then calls the next `name` in the MRO (Autobahn's
    WebSocketProtocol method). The arguments may come by position or by
    keyword: their positions are taken from Autobahn's signature. (Cheap:
    Autobahn calls sendFrame itself for every frame of a fragmented message,
    hundreds of thousands of times in 12.* and 13.*.)"""
    from autobahn.websocket.protocol import WebSocketProtocol
    params = list(inspect.signature(getattr(WebSocketProtocol, name)).parameters)
    positions = [(params.index(a) - 1, a) for a in argnames]  # -1: self is not in *args

    def method(self, *args, **kwargs):
        if args:
            args = list(args)
            for i, a in positions:
                if i < len(args):
                    args[i] = octets(args[i])
        for i, a in positions:
            if a in kwargs:
                kwargs[a] = octets(kwargs[a])
        return getattr(super(owner, self), name)(*args, **kwargs)

    method.__name__ = name
    method.__doc__ = "%s with octet-string arguments %s (Python 3 port)" % (name, ", ".join(argnames))
    setattr(owner, name, method)
'''


def to_lf(paths):
    """CRLF -> LF. Most testsuite modules have CRLF line ends; with LF the
    edits below can be written plainly. (Python reads either.)"""
    for path in paths:
        text = read(path)
        if "\r\n" in text:
            write(path, text.replace("\r\n", "\n"))


def run_2to3(pkg):
    """lib2to3 with all default fixers, in place (lib2to3 is in Python 3.9-3.12)."""
    proc = subprocess.run([sys.executable, "-W", "ignore", "-m", "lib2to3", "-w", "-n", "--no-diffs", pkg],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
    log = proc.stdout
    if proc.returncode != 0 or "Can't parse" in log or ("There was" in log and "error" in log):
        raise PortError("lib2to3 failed (exit %d):\n%s" % (proc.returncode, log[-3000:]))
    converted = len(re.findall(r"^RefactoringTool: Refactored ", log, re.M))
    print("port.py: lib2to3 converted %d modules" % converted)
    if converted < 150:
        raise PortError("lib2to3 converted only %d modules (expected about 160):\n%s" % (converted, log[-3000:]))


def declare_latin1(paths):
    """Declare every case module latin-1 (see the module doc, point 3).

    After lib2to3 the files keep their original octets. Twelve case modules
    declare UTF-8 ('# coding=utf-8'), four of them with non-ASCII literals;
    read as UTF-8, "Hello-\\xc2\\xb5" would be the one character U+00B5 and
    be sent as the single octet 0xB5 instead of the two octets Python 2 sent.
    Read as latin-1, each octet is one character."""
    coding = re.compile(r"^[ \t\f]*#.*?coding[:=][ \t]*[-\w.]+.*$")
    for path in paths:
        lines = read(path).split("\n")
        for i in (0, 1):
            if i < len(lines) and coding.match(lines[i]):
                lines[i] = "# -*- coding: latin-1 -*-"
                break
        else:
            lines.insert(0, "# -*- coding: latin-1 -*-")
        write(path, "\n".join(lines))


def port_testsuite(src):
    pkg = os.path.join(src, "autobahntestsuite")
    if not os.path.isfile(os.path.join(pkg, "fuzzing.py")):
        raise PortError("%s does not look like the autobahntestsuite sdist" % src)
    case = os.path.join(pkg, "case")
    P = lambda *parts: os.path.join(pkg, *parts)
    C = lambda name: os.path.join(case, name)

    to_lf(glob.glob(os.path.join(pkg, "**", "*.py"), recursive=True))
    run_2to3(pkg)

    case_modules = sorted(glob.glob(os.path.join(case, "*.py")))
    declare_latin1(case_modules)

    write(P("py3port.py"), PY3PORT)

    # --- case/case.py: the verdict ------------------------------------------
    # Case.compare decides every case's outcome (observed vs expected events):
    # see py3port.same_events for why pickle.dumps() equality no longer works.
    edit(C("case.py"), "import pickle\n", "import pickle\n\nfrom ..py3port import same_events\n")
    edit(C("case.py"),
         "      return pickle.dumps(obj1) == pickle.dumps(obj2)\n",
         "      ## Python 3 port: value-and-type equality of the events, octet\n"
         "      ## strings as bytes (was: pickle.dumps(obj1) == pickle.dumps(obj2))\n"
         "      return same_events(obj1, obj2)\n")

    # --- old-style class trick ----------------------------------------------
    # The generated case classes (6.5-6.23, 7.7, 7.9, 9.7/9.8, 12, 13) are made
    # with type(name, (object, Case), ...): with Case an old-style class, that
    # made them new-style. In Python 3 Case already derives from object, and
    # (object, Case) has no consistent MRO: TypeError at import.
    edit_many(case_modules, "(object, Case, )", "(Case, )", total=6)

    # --- hex of octet strings -----------------------------------------------
    # binascii.b2a_hex() takes bytes and returns bytes in Python 3; the case
    # modules give it octet str and put the result into text (descriptions,
    # the close reason shown for 7.5.1). py3port.hexlify does both ends.
    for path in edit_many(case_modules, "binascii.b2a_hex(", "hexlify(", total=23):
        add_import(path, "from ..py3port import hexlify, octets, utf8_text", "import binascii")

    # 6.2.x descriptions show the (valid UTF-8) payload itself: as text, not
    # as latin-1 characters.
    edit(C("case6_2_1.py"), "% (PAYLOAD, hexlify(PAYLOAD))", "% (utf8_text(PAYLOAD), hexlify(PAYLOAD))")
    edit(C("case6_2_3.py"), "% (PAYLOAD, hexlify(PAYLOAD))", "% (utf8_text(PAYLOAD), hexlify(PAYLOAD))")
    edit(C("case6_2_4.py"), "% (PAYLOAD, hexlify(PAYLOAD))", "% (utf8_text(PAYLOAD), hexlify(PAYLOAD))")
    edit(C("case6_2_2.py"), "% (PAYLOAD1, hexlify(PAYLOAD1), PAYLOAD2, hexlify(PAYLOAD2))",
         "% (utf8_text(PAYLOAD1), hexlify(PAYLOAD1), utf8_text(PAYLOAD2), hexlify(PAYLOAD2))")

    # 6.1-6.4 ("All prefixes of a valid UTF-8 string") ask Autobahn's UTF-8
    # validator, which takes bytes, whether each prefix is valid.
    edit(C("case6_x_x.py"), "res = v.validate(vss[:i])", "res = v.validate(octets(vss[:i]))")

    # --- integer division ---------------------------------------------------
    # 10.1.1 checks the frame count of a 65536-octet message auto-fragmented
    # to 1300: Python 2's 65536 / 1300 was 50 (plus one partial frame); 50.41
    # never equals the count, and the case would always fail.
    edit(C("case10_1_1.py"), "len(self.payload) / self.p.autoFragmentSize",
         "len(self.payload) // self.p.autoFragmentSize")
    # Table layout and "N minutes ago" helpers (WAMP reports): int operands.
    util = P("util.py")
    edit(util, "c1 = l / 2", "c1 = l // 2")
    for unit in ("60", "3600"):
        edit(util, "second_diff / %s " % unit, "second_diff // %s " % unit)
    for unit in ("7", "30", "365"):
        edit(util, "day_diff/%s)" % unit, "day_diff//%s)" % unit)

    # --- 12.* / 13.* (permessage-deflate) -----------------------------------
    # A zero-length message must be bytes for a binary corpus too (the text
    # corpus is .encode()d below it); no case uses LEN 0 today.
    edit(C("case12_x_x.py"), "   else:\n      msg = ''\n", "   else:\n      msg = payload[:0]\n")
    # SHA-1 digests in the failure text: hex as text, not b'...'.
    edit(C("case12_x_x.py"),
         ".format(binascii.hexlify(received_hash), binascii.hexlify(self._expected_hash))",
         ".format(binascii.hexlify(received_hash).decode('ascii'), binascii.hexlify(self._expected_hash).decode('ascii'))")

    # --- 9.9.1: zope.interface class advice ----------------------------------
    # implements() inside a class body is refused on Python 3 ("Class advice
    # impossible"), at import of the case module, so wstest would not start.
    nine = C("case9_9_1.py")
    edit(nine, "from zope.interface import implements\n", "from zope.interface import implementer\n")
    edit(nine, "class FrameProducer:\n\n   implements(interfaces.IPushProducer)\n",
         "@implementer(interfaces.IPushProducer)\nclass FrameProducer:\n")

    # --- fuzzing.py: the protocol and the report writers ---------------------
    fz = P("fuzzing.py")
    edit(fz, "from .caseset import CaseSet\n",
         "from .caseset import CaseSet\n"
         "from .py3port import octets, hexlify, report_text, octet_arguments\n")

    # Wire log helpers: hex and text of octets as str. (Python 3: b2a_hex
    # returns bytes, and bytes + " ..." raises.)
    edit(fz,
         'def binLogData(data, maxlen = 64):\n'
         '   ellipses = " ..."\n'
         '   if len(data) > maxlen - len(ellipses):\n'
         '      dd = binascii.b2a_hex(data[:maxlen]) + ellipses\n'
         '   else:\n'
         '      dd = binascii.b2a_hex(data)\n'
         '   return dd\n',
         'def binLogData(data, maxlen = 64):\n'
         '   ## Python 3 port: hex as str, of octet str or bytes\n'
         '   ellipses = " ..."\n'
         '   if len(data) > maxlen - len(ellipses):\n'
         '      dd = hexlify(data[:maxlen]) + ellipses\n'
         '   else:\n'
         '      dd = hexlify(data)\n'
         '   return dd\n')
    edit(fz,
         'def asciiLogData(data, maxlen = 64, replace = False):\n'
         '   ellipses = " ..."\n'
         '   try:\n',
         'def asciiLogData(data, maxlen = 64, replace = False):\n'
         '   ## Python 3 port: work on bytes (payloads come as bytes from Autobahn\n'
         '   ## and as octet str from the case code), so that the octets decode as\n'
         '   ## UTF-8 exactly as in Python 2\n'
         '   ellipses = b" ..."\n'
         '   data = octets(data)\n'
         '   try:\n')

    # Received frame payloads are a list of bytes chunks.
    edit(fz, "         p = ''.join(payload)\n", "         p = b''.join(payload)\n")
    # Frame masks (bytes) in the wire log: hex as str, for the JSON report.
    edit(fz, "binascii.b2a_hex(frameHeader.mask) if frameHeader.mask else None",
         "hexlify(frameHeader.mask) if frameHeader.mask else None", count=2)
    # ... and the HTML report showed that hex hex-encoded once more (in Python
    # 2 a str again; in Python 3 b2a_hex(str) raises): show it once.
    edit(fz, "                     mmask = binascii.b2a_hex(t[6])\n",
         "                     mmask = t[6] ## Python 3 port: already hex (logRxFrame)\n")

    # Case results: Autobahn hands the HTTP request/response and the close
    # reasons over as bytes on Python 3 (Python 2: str, written as UTF-8
    # text); json.dumps refuses bytes.
    edit(fz,
         "         def cleanBin(e_old):\n",
         "         ## Python 3 port: bytes fields as text for the JSON/HTML reports\n"
         "         for k in ('httpRequest', 'httpResponse', 'localCloseReason', 'remoteCloseReason'):\n"
         "            caseResult[k] = report_text(caseResult[k])\n"
         "\n"
         "         def cleanBin(e_old):\n")

    # The case code passes octet str payloads to the protocol (and getCaseCount
    # a JSON str); Autobahn wants bytes (sendMessage asserts it). Convert at
    # this one boundary, for every send method the cases use.
    edit(fz,
         "class FuzzingFactory:\n",
         "## Python 3 port: case code sends Python 2 octet strings (str); Autobahn\n"
         "## wants bytes. These FuzzingProtocol methods convert, then call Autobahn's.\n"
         "octet_arguments(FuzzingProtocol, 'sendFrame', 'payload', 'mask')\n"
         "octet_arguments(FuzzingProtocol, 'sendMessage', 'payload')\n"
         "octet_arguments(FuzzingProtocol, 'sendMessageFrame', 'payload')\n"
         "octet_arguments(FuzzingProtocol, 'sendMessageFrameData', 'payload')\n"
         "octet_arguments(FuzzingProtocol, 'sendPing', 'payload')\n"
         "octet_arguments(FuzzingProtocol, 'sendPong', 'payload')\n"
         "octet_arguments(FuzzingProtocol, 'sendCloseFrame', 'reasonUtf8')\n"
         "octet_arguments(FuzzingProtocol, 'sendData', 'data')\n"
         "\n"
         "\n"
         "class FuzzingFactory:\n")

    # Report files: text written as UTF-8 whatever the locale (descriptions
    # hold non-ASCII text); the HTML writer encoded two strings to bytes
    # itself, which a text file refuses in Python 3.
    edit(fz, "), 'w')\n", "), 'w', encoding = 'utf-8')\n", count=4)
    edit(fz, "% (c[0], case[c[0]], c[1])).encode(\"utf-8\"))\n", "% (c[0], case[c[0]], c[1])))\n")
    edit(fz, "(2+4+len(prefix))*\" \", ll.encode('utf8')))\n", "(2+4+len(prefix))*\" \", ll))\n")

    # fuzzingserver: listen on loopback unless the spec says otherwise
    # (upstream: all interfaces, which exposes the fuzzer to the network).
    # Spec key "interface": an address, or "" for all.
    edit(fz, "   listenWS(factory, sslContext)\n",
         "   ## Python 3 port (wsx): bind 127.0.0.1 unless spec[\"interface\"] says otherwise\n"
         "   interface = spec.get(\"interface\", \"127.0.0.1\")\n"
         "   listenWS(factory, sslContext, interface = interface)\n")
    edit(fz, "reactor.listenSSL(webport, web, sslContext)\n", "reactor.listenSSL(webport, web, sslContext, interface = interface)\n")
    edit(fz, "reactor.listenTCP(webport, web)\n", "reactor.listenTCP(webport, web, interface = interface)\n")
    # twisted.web resource names are bytes in Python 3.
    edit(fz, "webdir.putChild('cwd', curdir)", "webdir.putChild(b'cwd', curdir)")

    # --- wstest.py ----------------------------------------------------------
    # The WAMP 'serializer' mode imports autobahn's test suite, which needs
    # unittest2 (gone on current Pythons). Only that mode needs it.
    edit(P("wstest.py"), "from . import serializer\n",
         "try:\n"
         "   from . import serializer\n"
         "except ImportError:  ## Python 3 port: WAMP serializer mode only (needs unittest2)\n"
         "   serializer = None\n")

    # --- sanity: no Python 2 octet-string idioms left where they would bite --
    leftovers = []
    for path in case_modules + [fz]:
        for n, line in enumerate(read(path).split("\n"), 1):
            if "binascii.b2a_hex(" in line or "(object, Case" in line:
                leftovers.append("%s:%d: %s" % (path, n, line.strip()))
    if leftovers:
        raise PortError("left unported:\n  " + "\n  ".join(leftovers))


def main(argv):
    if len(argv) != 3 or not all(os.path.isdir(d) for d in argv[1:]):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    if not (3, 9) <= sys.version_info[:2] <= (3, 12):
        print("port.py: needs Python 3.9-3.12 (lib2to3), this is %s" % sys.version.split()[0], file=sys.stderr)
        return 2
    try:
        port_autobahn(argv[1])
        port_testsuite(argv[2])
    except PortError as e:
        print("port.py: FAILED: %s" % e, file=sys.stderr)
        return 1
    print("port.py: ported %s and %s" % (argv[1], argv[2]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
