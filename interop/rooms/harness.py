"""The processes of the rooms suite: redis-server (alone, or three as a Redis Cluster), nginx and
`wsx serve` nodes on free loopback ports, each started here, stopped by its own process id (never
by name), with its output in a temporary directory that is removed at the end. And the report:
one `ok`/`FAIL` line per check.
"""
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def program(name):
    """`name` from PATH or the sbin directories, or None."""
    dirs = os.environ.get("PATH", "").split(os.pathsep) + ["/usr/sbin", "/usr/local/sbin", "/sbin"]
    for d in dirs:
        p = os.path.join(d, name)
        if os.path.isfile(p) and os.access(p, os.X_OK):
            return p
    return None


class Report:
    def __init__(self):
        self.passed = 0
        self.failed = 0
        self.test = ""

    def check(self, what, cond, detail=""):
        label = f"[{self.test}] {what}" if self.test else what
        if cond:
            self.passed += 1
            print(f"ok    {label}", flush=True)
        else:
            self.failed += 1
            detail = str(detail)
            if len(detail) > 1500:
                detail = detail[:1500] + " ..."
            print(f"FAIL  {label}: {detail}", flush=True)
        return bool(cond)

    def note(self, text):
        print(f"      {text}", flush=True)


class Proc:
    """A child process whose output goes to a log file; stopped by its pid."""

    def __init__(self, env, name, argv):
        self.name = name
        self.log_path = os.path.join(env.dir, f"{name}-{len(env.procs)}.log")
        self._log = open(self.log_path, "ab")
        self.popen = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT
        )
        env.procs.append(self)

    @property
    def pid(self):
        return self.popen.pid

    def alive(self):
        return self.popen.poll() is None

    def send_signal(self, sig):
        if self.alive():
            os.kill(self.popen.pid, sig)

    async def wait(self, timeout):
        """The exit status within `timeout` seconds, or None."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rc = self.popen.poll()
            if rc is not None:
                return rc
            await asyncio.sleep(0.02)
        return self.popen.poll()

    async def stop(self, sig=signal.SIGKILL, timeout=10.0):
        """Sends `sig` (if it still runs), waits for it, SIGKILL if it did not exit in time."""
        self.send_signal(sig)
        rc = await self.wait(timeout)
        if rc is None:
            self.send_signal(signal.SIGKILL)
            rc = await self.wait(10)
        self._log.close()
        return rc

    def stop_now(self, first=signal.SIGKILL):
        """Synchronous last resort (at exit): `first`, then SIGKILL after 5 s."""
        for sig, wait in ((first, 5), (signal.SIGKILL, 10)):
            if not self.alive():
                return
            try:
                os.kill(self.popen.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.popen.wait(wait)
            except subprocess.TimeoutExpired:
                pass

    def tail(self, n=15):
        try:
            with open(self.log_path, "rb") as f:
                lines = f.read().decode(errors="replace").splitlines()
        except OSError:
            return []
        return lines[-n:]


async def wait_port(port, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            _, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 1)
            w.close()
            return True
        except (OSError, asyncio.TimeoutError):
            await asyncio.sleep(0.02)
    return False


async def http_get(port, path, timeout=3.0):
    """(status, headers dict lower-cased, body) of GET `path`, or None when it fails."""

    async def go():
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode())
        await w.drain()
        data = await r.read()
        w.close()
        return data

    try:
        data = await asyncio.wait_for(go(), timeout)
    except (OSError, asyncio.TimeoutError):
        return None
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode(errors="replace").split("\r\n")
    try:
        status = int(lines[0].split()[1])
    except (IndexError, ValueError):
        return None
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return status, headers, body


async def redis_ping(port):
    """Whether a Redis server answers PING on `port` (within about 2 s)."""
    try:
        r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 1)
        w.write(b"PING\r\n")
        reply = await asyncio.wait_for(r.readexactly(7), 1)
        w.close()
        return reply == b"+PONG\r\n"
    except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError):
        return False


async def run(argv, timeout=15.0):
    """(exit status, stdout, stderr) of a short command, killed by its pid after `timeout` s
    (status None then)."""
    p = await asyncio.create_subprocess_exec(*argv, stdin=subprocess.DEVNULL,
                                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(p.communicate(), timeout)
    except asyncio.TimeoutError:
        try:
            p.kill()
        except ProcessLookupError:
            pass
        await p.wait()
        return None, "", f"timed out after {timeout} s"
    return p.returncode, out.decode(errors="replace"), err.decode(errors="replace")


class Redis:
    """redis-server without persistence on a fixed free port (restartable on the same port)."""

    def __init__(self, env):
        self.env = env
        self.port = free_port()
        self.proc = None
        self.url = f"redis://127.0.0.1:{self.port}"

    async def start(self):
        argv = [program("redis-server"), "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--dir", self.env.dir]
        self.proc = Proc(self.env, "redis", argv)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if not self.proc.alive():
                break
            if await self.ping():
                return self
            await asyncio.sleep(0.05)
        raise RuntimeError(f"redis-server does not answer PING on {self.port}: {self.proc.tail()}")

    async def ping(self):
        return await redis_ping(self.port)

    async def kill(self):
        """SIGKILL: the data is gone (no persistence)."""
        await self.proc.stop(signal.SIGKILL)


class RedisCluster:
    """A Redis Cluster of `masters` masters (no replicas, no persistence) on free loopback ports,
    each redis-server with its own cluster bus port (a second free port: the default, port +
    10000, does not exist above 55535) and its own directory (nodes.conf); created with
    `redis-cli --cluster create`. `url` is the seed list for `wsx serve --redis`. Its processes
    are stopped by their pids with the Env's others."""

    def __init__(self, env, masters=3):
        self.env = env
        used = set()

        def port():
            while True:
                p = free_port()
                if p not in used:
                    used.add(p)
                    return p

        self.ports = [port() for _ in range(masters)]
        self.buses = [port() for _ in range(masters)]
        self.procs = []
        self.argvs = []
        self.url = ",".join(f"redis://127.0.0.1:{p}" for p in self.ports)

    async def start(self):
        for port, bus in zip(self.ports, self.buses):
            d = os.path.join(self.env.dir, f"cluster-{port}")
            os.makedirs(d)
            argv = [program("redis-server"), "--port", str(port), "--bind", "127.0.0.1",
                    "--cluster-enabled", "yes", "--cluster-port", str(bus),
                    "--cluster-config-file", "nodes.conf", "--save", "", "--appendonly", "no",
                    "--dir", d]
            self.argvs.append(argv)
            self.procs.append(Proc(self.env, f"redis-cluster-{port}", argv))
        deadline = time.monotonic() + 10
        for port, proc in zip(self.ports, self.procs):
            while not await redis_ping(port):
                if not proc.alive() or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server (cluster) does not answer PING on {port}: "
                                       f"{proc.tail()}")
                await asyncio.sleep(0.05)
        rc, out, err = await run([self.cli_path(), "--cluster", "create",
                                  *[f"127.0.0.1:{p}" for p in self.ports],
                                  "--cluster-replicas", "0", "--cluster-yes"], timeout=30)
        if rc != 0:
            raise RuntimeError(f"redis-cli --cluster create failed ({rc}): {out[-800:]} {err[-400:]}")
        # Every master must say ok and agree on who owns all 16384 slots.
        deadline = time.monotonic() + 20
        while True:
            states = [await self.cli(p, "cluster", "info") for p in self.ports]
            ok = all("cluster_state:ok" in out for _, out, _ in states)
            if ok:
                maps = [await self.slot_map(p) for p in self.ports]
                covered = sum(hi - lo + 1 for lo, hi, _ in maps[0]) if maps[0] else 0
                if covered == 16384 and all(m == maps[0] for m in maps):
                    self.ranges = maps[0]
                    return self
            if time.monotonic() > deadline:
                raise RuntimeError(f"the Redis Cluster is not ok within 20 s: {states}")
            await asyncio.sleep(0.1)

    async def kill(self, port):
        """SIGKILL to the master on `port`: its data is gone (no persistence)."""
        await self.procs[self.ports.index(port)].stop(signal.SIGKILL)

    async def restart(self, port, timeout=30.0):
        """The master on `port` again, empty, with its nodes.conf (so the same node id and
        slots); waits (bounded) until every master says cluster_state:ok. Whether it did."""
        i = self.ports.index(port)
        self.procs[i] = Proc(self.env, f"redis-cluster-{port}", self.argvs[i])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            states = [await self.cli(p, "cluster", "info", timeout=2) for p in self.ports]
            if all("cluster_state:ok" in out for _, out, _ in states):
                return True
            await asyncio.sleep(0.1)
        return False

    @staticmethod
    def cli_path():
        return program("redis-cli")

    async def cli(self, port, *args, json_out=False, timeout=10.0):
        """(status, stdout, stderr) of `redis-cli -p PORT ARGS` (no -c: MOVED is shown, not
        followed)."""
        argv = [self.cli_path(), "-h", "127.0.0.1", "-p", str(port)]
        if json_out:
            argv.append("--json")
        return await run(argv + [str(a) for a in args], timeout)

    async def slot_map(self, port):
        """[(first slot, last slot, master port)] sorted, from `CLUSTER SHARDS` as `port` sees
        it; [] when it cannot be read."""
        rc, out, _ = await self.cli(port, "cluster", "shards", json_out=True)
        try:
            shards = json.loads(out)
        except ValueError:
            return []
        ranges = []
        for shard in shards:
            masters = [n for n in shard.get("nodes", []) if n.get("role") == "master"]
            slots = shard.get("slots", [])
            if len(masters) != 1:
                continue
            for i in range(0, len(slots) - 1, 2):
                ranges.append((int(slots[i]), int(slots[i + 1]), int(masters[0].get("port"))))
        return sorted(ranges)

    async def keyslot(self, key):
        rc, out, err = await self.cli(self.ports[0], "cluster", "keyslot", key)
        if rc != 0:
            raise RuntimeError(f"cluster keyslot {key}: {out} {err}")
        return int(out.strip())

    def owner(self, slot):
        """The port of the master that owns `slot`."""
        for lo, hi, port in self.ranges:
            if lo <= slot <= hi:
                return port
        return None


class Node:
    """A `wsx serve` node on a free port."""

    def __init__(self, env, name, redis=None, extra=(), log="error"):
        self.env = env
        self.name = name
        self.port = free_port()
        self.addr = f"127.0.0.1:{self.port}"
        argv = [env.wsx, "serve", "--listen", self.addr, "--node", name, "--log", log]
        if redis is not None:
            argv += ["--redis", redis.url]
        argv += list(extra)
        self.argv = argv
        self.proc = None

    async def start(self):
        self.proc = Proc(self.env, f"node-{self.name}", self.argv)
        # The banner's first line: "wsx serve: listening on http://127.0.0.1:PORT/ ..."
        want = f"listening on http://{self.addr}/"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if any(want in line for line in self.proc.tail(50)):
                break
            if not self.proc.alive():
                raise RuntimeError(f"wsx serve {self.name} exited: {self.proc.tail()}")
            await asyncio.sleep(0.05)
        else:
            raise RuntimeError(f"wsx serve {self.name}: no banner in 20 s: {self.proc.tail()}")
        # With Redis: wait until it reports the broker up.
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            h = await self.health()
            if h and h.get("status") == "ok":
                return self
            await asyncio.sleep(0.1)
        raise RuntimeError(f"wsx serve {self.name}: /healthz not ok in 20 s: {await self.health()}")

    async def restart(self):
        """SIGKILL, then the same command again (same port)."""
        await self.proc.stop(signal.SIGKILL)
        return await self.start()

    def url(self, path):
        return f"ws://{self.addr}{path}"

    async def health(self):
        got = await http_get(self.port, "/healthz")
        if not got or got[0] not in (200, 503):
            return None
        try:
            return json.loads(got[2])
        except ValueError:
            return None


class Nginx:
    """nginx running deploy/nginx.conf (ports, timeouts, temp paths changed) before `nodes`."""

    def __init__(self, env, nodes, read_timeout="60s"):
        self.env = env
        self.port = free_port()
        self.dir = os.path.join(env.dir, f"nginx-{self.port}")
        os.makedirs(os.path.join(self.dir, "logs"))
        os.chmod(env.dir, 0o755)
        with open(os.path.join(ROOT, "deploy", "nginx.conf")) as f:
            conf = f.read()

        def change(old, new):
            if old not in conf:
                raise RuntimeError(f"deploy/nginx.conf no longer contains {old!r}")
            return conf.replace(old, new, 1)

        servers = "".join(f"server {n.addr} max_fails=1 fail_timeout=10s;\n        " for n in nodes)
        conf = change("server 127.0.0.1:8081 max_fails=1 fail_timeout=10s;\n        ", servers)
        conf = change("server 127.0.0.1:8082 max_fails=1 fail_timeout=10s;\n", "\n")
        conf = change("listen 8080;", f"listen 127.0.0.1:{self.port};")
        conf = change("proxy_read_timeout 60s;", f"proxy_read_timeout {read_timeout};")
        conf = change("worker_processes auto;", "worker_processes 1;")
        d = self.dir
        conf = change("http {\n", f"http {{\n    access_log off;\n    client_body_temp_path {d}/body;\n"
                      f"    proxy_temp_path {d}/proxy;\n    fastcgi_temp_path {d}/fastcgi;\n"
                      f"    uwsgi_temp_path {d}/uwsgi;\n    scgi_temp_path {d}/scgi;\n")
        self.conf_path = os.path.join(d, "nginx.conf")
        with open(self.conf_path, "w") as f:
            f.write(conf)
        self.proc = None

    async def start(self):
        d = self.dir
        globals_ = f"daemon off; pid {d}/nginx.pid; error_log {d}/logs/error.log warn;"
        self.proc = Proc(self.env, "nginx", [program("nginx"), "-p", d, "-c", self.conf_path,
                                             "-g", globals_])
        if not await wait_port(self.port, 10):
            raise RuntimeError(f"nginx is not listening on {self.port}: {self.proc.tail()}")
        return self

    def url(self, path):
        return f"ws://127.0.0.1:{self.port}{path}"


class Env:
    """One test's processes and temporary directory; everything is stopped and removed on exit."""

    live = []  # every Env not yet closed (for the exit handler)

    def __init__(self, wsx, keep=False):
        self.wsx = wsx
        self.keep = keep
        self.dir = tempfile.mkdtemp(prefix="wsx-rooms-")
        self.procs = []
        self.nodes = []
        Env.live.append(self)

    async def redis(self):
        return await Redis(self).start()

    async def redis_cluster(self, masters=3):
        return await RedisCluster(self, masters).start()

    async def node(self, name, redis=None, extra=(), log="error"):
        n = Node(self, name, redis, extra, log)
        await n.start()
        self.nodes.append(n)
        return n

    async def nginx(self, nodes, read_timeout="60s"):
        return await Nginx(self, nodes, read_timeout).start()

    def logs(self, n=12):
        out = []
        for p in self.procs:
            lines = p.tail(n)
            if lines:
                out.append(f"--- {p.name} (pid {p.pid}) {p.log_path}")
                out += ["    " + l for l in lines]
        return out

    async def close(self, show_logs=False):
        if show_logs:
            for line in self.logs():
                print("      " + line, flush=True)
        # nginx gets SIGTERM (its master stops its workers); the others SIGKILL.
        for p in reversed(self.procs):
            if p.alive():
                await p.stop(signal.SIGTERM if p.name == "nginx" else signal.SIGKILL)
        if not self.keep:
            shutil.rmtree(self.dir, ignore_errors=True)
        if self in Env.live:
            Env.live.remove(self)

    @classmethod
    def close_all_now(cls):
        for env in list(cls.live):
            for p in reversed(env.procs):
                # nginx's master stops its workers on SIGTERM (SIGKILL would orphan them).
                p.stop_now(signal.SIGTERM if p.name == "nginx" else signal.SIGKILL)
            if not env.keep:
                shutil.rmtree(env.dir, ignore_errors=True)
        cls.live.clear()


def install_exit_handlers():
    import atexit

    atexit.register(Env.close_all_now)

    def on_signal(sig, _frame):
        Env.close_all_now()
        sys.exit(128 + sig)

    for s in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, on_signal)
