"""Benchmarks against peers, all measured in one run; prints ratios.

Absolute numbers on a shared machine mean little: compare the ratios.
Server CPU time is read from /proc/<pid>/stat around each measurement.
Usage: bench.py [--seconds S] [--rounds N] [suite ...]
  (suites: echo ws http https http-close static static-syscalls idle idle-memory mqtt
   mqtt-broker asgi)
"""
import argparse
import os
import pwd
import re
import resource
import selectors
import shutil
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, "build")
PY = "/usr/bin/python3"
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """CPU time of pid and its live descendants (gunicorn's worker is a child
    of its master process)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:  # gone meanwhile
        return 0.0
    total = (int(fields[11]) + int(fields[12])) / TICK
    for child in children_of(pid):
        total += cpu_seconds(child)
    return total


def children_of(pid):
    kids = []
    try:
        for tid in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/children" % (pid, tid)) as f:
                kids += [int(k) for k in f.read().split()]
    except OSError:
        pass
    return kids


class Server:
    """A server process that prints a line with its port once it listens, or,
    when port is given, one that is ready once that port accepts."""

    def __init__(self, name, argv, env=None, port=None, wrap=()):
        self.name = name
        self.proc = subprocess.Popen(list(wrap) + argv, stdout=subprocess.PIPE, text=True, cwd=ROOT,
                                     env=dict(os.environ, **(env or {})))
        if port is not None:
            self.port = port
            wait_port(port, self)
            return
        line = self.proc.stdout.readline()
        m = re.search(r"(\d+)\s*$", line.strip())
        if not m:
            self.stop()
            raise RuntimeError("%s did not report a port: %r" % (name, line))
        self.port = int(m.group(1))

    def cpu(self):
        return cpu_seconds(self.proc.pid)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, server, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError("%s exited with %s" % (server.name, server.proc.returncode))
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    server.stop()
    raise RuntimeError("%s did not listen on %d" % (server.name, port))


def measure(server, load_argv, parse):
    """Runs the load generator against server; returns (ops/s, server µs CPU per op)."""
    cpu0 = server.cpu()
    out = subprocess.run(load_argv, capture_output=True, text=True, check=True).stdout
    cpu1 = server.cpu()
    ops, secs = parse(out)
    rate = ops / secs if secs else 0.0
    return rate, (cpu1 - cpu0) * 1e6 / ops if ops else float("inf")


def report(title, unit, rows, base):
    """rows: [(name, rate, cpu_us)]; ratios are against the row named base."""
    print("\n== %s" % title)
    print("%-28s %14s %16s %10s %10s" % ("server", unit, "server CPU µs/op", "x rate", "x CPU"))
    ref = {name: (rate, cpu) for name, rate, cpu in rows}.get(base)
    for name, rate, cpu in rows:
        xr = rate / ref[0] if ref and ref[0] else float("nan")
        xc = ref[1] / cpu if ref and cpu else float("nan")
        print("%-28s %14.0f %16.2f %10.2f %10.2f" % (name, rate, cpu, xr, xc))
    print("(x rate: throughput relative to %s; x CPU: how many times less CPU per op)" % base)


def echo_suite(secs):
    load = os.path.join(BUILD, "bench", "echo_load")

    def parse(out):
        m = re.search(r"messages=(\d+) seconds=([\d.]+)", out)
        return int(m.group(1)), float(m.group(2))

    servers = [
        ("asyncio Protocol (peer)", [PY, "bench/echo_asyncio.py", "0"]),
        ("cymongoose Python", [PY, "bench/echo_ours.py", "0"]),
        ("cymongoose C", [os.path.join(BUILD, "examples", "echo_server"), "tcp://127.0.0.1:0"]),
    ]
    rows = []
    for name, argv in servers:
        s = Server(name, argv, env={"PYTHONPATH": os.path.join(ROOT, "python")})
        try:
            rate, cpu = measure(s, [load, str(s.port), "50", "64", str(secs)], parse)
            rows.append((name, rate, cpu))
        finally:
            s.stop()
    report("TCP echo, 64-byte messages, 50 connections (targets: Python >= 2x, C >= 5x asyncio)",
           "messages/s", rows, "asyncio Protocol (peer)")


# ------------------------------------------------------------------ HTTP

HELLO = "Hello, World!"
STATIC_SIZE = 64 * 1024


def wrk(server, scheme, path, secs, extra=()):
    """wrk -t1 -c50 against server; returns (requests/s, server µs CPU per request)."""
    url = "%s://127.0.0.1:%d%s" % (scheme, server.port, path)
    argv = ["wrk", "-t1", "-c50", "-d%gs" % secs] + list(extra) + [url]

    def parse(out):
        m = re.search(r"(\d+) requests in ([\d.]+)(ms|s|m)\b", out)
        if not m:
            raise RuntimeError("unexpected wrk output: %r" % out)
        secs_ = float(m.group(2)) * {"ms": 1e-3, "s": 1.0, "m": 60.0}[m.group(3)]
        for warn in re.findall(r"(Non-2xx.*|Socket errors.*)", out):
            print("  warning: %s: %s" % (server.name, warn.strip()))
        return int(m.group(1)), secs_

    return measure(server, argv, parse)


def check_body(server, scheme, path, want_len):
    """One request with curl so that a server answering wrongly is not timed."""
    url = "%s://127.0.0.1:%d%s" % (scheme, server.port, path)
    out = subprocess.run(["curl", "-sk", "--max-time", "5", url], capture_output=True).stdout
    if len(out) != want_len:
        raise RuntimeError("%s: %s returned %d bytes, expected %d" % (server.name, url, len(out), want_len))


class Nginx(Server):
    """nginx with one worker process (master_process off), everything in a scratch dir."""

    def __init__(self, name, scratch, locations, tls=None, wrap=()):
        port = free_port()
        listen = "127.0.0.1:%d%s" % (port, " ssl" if tls else "")
        ssl = ""
        if tls:
            ssl = ("ssl_certificate %s; ssl_certificate_key %s;\n"
                   "    ssl_protocols TLSv1.2 TLSv1.3;\n" % tls)
        conf = os.path.join(scratch, "nginx-%d.conf" % port)
        with open(conf, "w") as f:
            f.write("""worker_processes 1;
worker_rlimit_nofile 20000;
daemon off;
master_process off;
pid %(d)s/nginx.pid;
error_log %(d)s/error.log error;
events { worker_connections 16384; }
http {
  access_log off;
  client_body_temp_path %(d)s/body;
  proxy_temp_path %(d)s/proxy;
  fastcgi_temp_path %(d)s/fastcgi;
  uwsgi_temp_path %(d)s/uwsgi;
  scgi_temp_path %(d)s/scgi;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  server {
    listen %(listen)s;
    %(ssl)s
    %(locations)s
  }
}
""" % {"d": scratch, "listen": listen, "ssl": ssl, "locations": locations})
        super().__init__(name, ["nginx", "-p", scratch, "-e", os.path.join(scratch, "error.log"),
                                "-c", conf], port=port, wrap=wrap)


def nginx_hello():
    return 'location / { default_type text/plain; return 200 "%s"; }' % HELLO


def ours_c(name, scheme, extra=(), wrap=(), env=None):
    url = "%s://127.0.0.1:0" % scheme
    return Server(name, [os.path.join(BUILD, "bench", "c", "http_bench"), url] + list(extra), env=env,
                  wrap=wrap)


ROUNDS = 3


def run_rows(specs, scheme, path, secs, body_len, extra=()):
    """specs: [(name, start)] or [(name, start, path)], where start() returns a
    Server.  The servers take turns, ROUNDS times; each row keeps its best
    round (highest rate, lowest CPU): other load on the machine only ever
    makes a round worse."""
    best = {}
    for _ in range(ROUNDS):
        for spec in specs:
            name, start, where = spec if len(spec) == 3 else spec + (path,)
            s = start()
            try:
                check_body(s, scheme, where, body_len)
                rate, cpu = wrk(s, scheme, where, secs, extra)
            finally:
                s.stop()
            r0, c0 = best.get(name, (0.0, float("inf")))
            best[name] = (max(r0, rate), min(c0, cpu))
    return [(spec[0],) + best[spec[0]] for spec in specs]


def machine_note():
    print("\nNote: wrk (-t1 -c50) and the server share this machine's %d cores; absolute"
          " numbers\nvary from run to run, the ratios between servers of one run are what"
          " matters.\nEach figure is the best of %d alternating rounds." %
          (os.cpu_count() or 0, ROUNDS))


def http_suite(secs):
    machine_note()
    env = {"PYTHONPATH": os.path.join(ROOT, "python")}
    scratch = tempfile.mkdtemp(prefix="cm-bench-")
    try:
        rows = run_rows([
            ("aiohttp (peer)", lambda: Server("aiohttp", [PY, "bench/http_aiohttp.py", "0"])),
            ("cymongoose Python", lambda: Server("ours-py", [PY, "bench/http_ours.py", "0"], env)),
        ], "http", "/", secs, len(HELLO))
        report("HTTP hello world, keep-alive, Python (targets: >= 5x rate, >= 5x less CPU"
               " than aiohttp)", "requests/s", rows, "aiohttp (peer)")
        rows = run_rows([
            ("nginx 1 worker (peer)", lambda: Nginx("nginx", scratch, nginx_hello())),
            ("cymongoose C", lambda: ours_c("ours-c", "http")),
        ], "http", "/", secs, len(HELLO))
        report("HTTP hello world, keep-alive, C (target: within 10% of nginx on both)",
               "requests/s", rows, "nginx 1 worker (peer)")
        path = os.path.join(scratch, "file.bin")
        with open(path, "wb") as f:
            f.write(os.urandom(STATIC_SIZE))
        loc = "location = /file { default_type application/octet-stream; alias %s; }" % path
        rows = run_rows([
            ("nginx 1 worker (peer)", lambda: Nginx("nginx", scratch, loc)),
            ("cymongoose C serve_file", lambda: ours_c("ours-c", "http", ["--file", path])),
            ("cymongoose C from memory", lambda: ours_c("ours-c", "http", ["--file", path]), "/mem"),
        ], "http", "/file", secs, STATIC_SIZE)
        report("HTTP 64 KiB file, keep-alive (target: within 10% of nginx)",
               "requests/s", rows, "nginx 1 worker (peer)")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


SMALL_SIZE = 1024


def static_tree(scratch):
    """A served directory with a small file (and an index, as sites have);
    returns (root, path of the small file)."""
    root = os.path.join(scratch, "www")
    os.makedirs(os.path.join(root, "css"))
    with open(os.path.join(root, "index.html"), "w") as f:
        f.write("<h1>index</h1>")
    path = os.path.join(root, "css", "small.css")
    with open(path, "wb") as f:
        f.write(b"a{}\n" * (SMALL_SIZE // 4))
    return root, path


def static_specs(scratch, root, path):
    """nginx (root, sendfile), ours serve_file on the file, ours serve_dir on
    the directory: the same bytes, the same headers' worth of work."""
    loc = "location / { root %s; }" % root
    args = ["--file", path, "--dir", root]
    return [
        ("nginx 1 worker (peer)", lambda: Nginx("nginx", scratch, loc), "/css/small.css"),
        # as long a request path as the others: parsing it costs the same
        ("cymongoose C serve_file", lambda: ours_c("ours-c", "http", args), "/file/small.css"),
        ("cymongoose C serve_dir", lambda: ours_c("ours-c", "http", args), "/css/small.css"),
    ]


def static_suite(secs):
    """A small file, keep-alive: serve_dir (a request path resolved below a
    root) against serve_file (a path the application chose) and nginx."""
    machine_note()
    scratch = tempfile.mkdtemp(prefix="cm-bench-")
    try:
        root, path = static_tree(scratch)
        rows = run_rows(static_specs(scratch, root, path), "http", None, secs, SMALL_SIZE)
        report("HTTP 1 KiB file from a directory, keep-alive (target: serve_dir within 5% of "
               "serve_file's CPU per request and at most nginx's)", "requests/s", rows,
               "nginx 1 worker (peer)")
        d = dict((n, c) for n, _, c in rows)
        print("serve_dir CPU per request over serve_file's: %.3f" %
              (d["cymongoose C serve_dir"] / d["cymongoose C serve_file"]))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


STRACE_REQUESTS = (200, 2200)


def keepalive_requests(port, target, n, extra=b""):
    """n requests one after another on one keep-alive connection; checks each
    answer is a 200 and reads its body by Content-Length."""
    req = b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n" + extra + b"\r\n"
    with socket.create_connection(("127.0.0.1", port), 10) as s:
        buf = b""
        for _ in range(n):
            s.sendall(req)
            while b"\r\n\r\n" not in buf:
                chunk = s.recv(65536)
                if not chunk:
                    raise RuntimeError("connection closed")
                buf += chunk
            head, buf = buf.split(b"\r\n\r\n", 1)
            if not head.startswith(b"HTTP/1.1 200"):
                raise RuntimeError("bad answer: %r" % head[:60])
            m = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
            want = int(m.group(1))
            while len(buf) < want:
                chunk = s.recv(65536)
                if not chunk:
                    raise RuntimeError("connection closed")
                buf += chunk
            buf = buf[want:]


def strace_count(start, target, n, extra=b""):
    """Starts a server under strace -f -c, makes n keep-alive requests, stops
    it; returns {syscall: calls}."""
    fd, out = tempfile.mkstemp(prefix="cm-strace-")
    os.close(fd)
    s = start(["strace", "-f", "-c", "-o", out])
    try:
        keepalive_requests(s.port, target, n, extra)
    finally:
        # SIGTERM to the traced server (strace's child): strace writes its
        # summary once its tracee exits.
        kids = children_of(s.proc.pid)
        for k in kids:
            os.kill(k, 15)
        try:
            s.proc.wait(10)
        except subprocess.TimeoutExpired:
            s.stop()
    counts = {}
    with open(out) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 5 and parts[0][0].isdigit() and parts[-1] != "total":
                calls = int(parts[3])
                counts[parts[-1]] = calls
    os.unlink(out)
    return counts


def static_syscalls_suite(secs):
    """System calls per keep-alive request of a small file, counted with
    strace -c: (calls with N2 requests - calls with N1) / (N2 - N1), so
    start-up and shutdown cancel out."""
    del secs
    if shutil.which("strace") is None:
        print("\n== static-syscalls: skipped, strace not installed")
        return
    scratch = tempfile.mkdtemp(prefix="cm-bench-")
    n1, n2 = STRACE_REQUESTS
    try:
        root, path = static_tree(scratch)
        print("\n== System calls per keep-alive request, 1 KiB file (strace -c; %d - %d requests)"
              % (n2, n1))
        for label, extra in (("no Accept-Encoding", b""),
                             ("Accept-Encoding: gzip", b"Accept-Encoding: gzip\r\n")):
            print("-- %s" % label)
            specs = static_specs(scratch, root, path)
            specs.append(("cymongoose C serve_dir walk", None, specs[-1][2]))
            for name, _, target in specs:
                def traced(wrap, name=name):
                    if name.startswith("nginx"):
                        return Nginx("nginx", scratch, "location / { root %s; }" % root, wrap=wrap)
                    # "walk": the resolver used where the kernel has no openat2
                    env = {"CYMONGOOSE_NO_OPENAT2": "1"} if name.endswith("walk") else None
                    return ours_c("ours-c", "http", ["--file", path, "--dir", root], wrap, env)
                a = strace_count(traced, target.encode(), n1, extra)
                b = strace_count(traced, target.encode(), n2, extra)
                per = {k: (b.get(k, 0) - a.get(k, 0)) / (n2 - n1) for k in set(a) | set(b)}
                per = {k: v for k, v in per.items() if v >= 0.05}
                detail = ", ".join("%s %.2f" % (k, v)
                                   for k, v in sorted(per.items(), key=lambda kv: -kv[1]))
                print("%-26s %6.2f  (%s)" % (name, sum(per.values()), detail))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def http_close_suite(secs):
    """Hello world with a new connection per request (Connection: close):
    what accepting, the first read and closing cost."""
    machine_note()
    env = {"PYTHONPATH": os.path.join(ROOT, "python")}
    scratch = tempfile.mkdtemp(prefix="cm-bench-")
    try:
        rows = run_rows([
            ("nginx 1 worker (peer)", lambda: Nginx("nginx", scratch, nginx_hello())),
            ("cymongoose C", lambda: ours_c("ours-c", "http")),
            ("cymongoose Python", lambda: Server("ours-py", [PY, "bench/http_ours.py", "0"], env)),
        ], "http", "/", secs, len(HELLO), ["-H", "Connection: close"])
        report("HTTP hello world, new connection per request (target: CPU per request at most"
               " nginx's, C and Python)", "requests/s", rows, "nginx 1 worker (peer)")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def make_cert(scratch):
    cert, key = os.path.join(scratch, "cert.pem"), os.path.join(scratch, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj",
                    "/CN=127.0.0.1", "-keyout", key, "-out", cert],
                   check=True, capture_output=True)
    return cert, key


def https_suite(secs):
    machine_note()
    scratch = tempfile.mkdtemp(prefix="cm-bench-")
    try:
        cert, key = make_cert(scratch)
        specs = [
            ("nginx 1 worker (peer)", lambda: Nginx("nginx", scratch, nginx_hello(), (cert, key))),
            ("cymongoose C", lambda: ours_c("ours-c", "https", ["--cert", cert, "--key", key])),
        ]
        rows = run_rows(specs, "https", "/", secs, len(HELLO))
        report("HTTPS hello world, keep-alive, ECDSA P-256 (target: within 15% of nginx)",
               "requests/s", rows, "nginx 1 worker (peer)")
        rows = run_rows(specs, "https", "/", secs, len(HELLO), ["-H", "Connection: close"])
        report("HTTPS hello world, new connection per request (target: within 15% of nginx)",
               "requests/s", rows, "nginx 1 worker (peer)")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def ws_suite(secs):
    load = os.path.join(BUILD, "bench", "ws_load")

    def parse(out):
        m = re.search(r"messages=(\d+) seconds=([\d.]+)", out)
        return int(m.group(1)), float(m.group(2))

    servers = [
        ("websockets (peer)", [PY, "bench/ws_echo_websockets.py", "0"]),
        ("cymongoose Python", [PY, "bench/ws_echo_ours.py", "0"]),
        ("cymongoose C", [os.path.join(BUILD, "examples", "ws_echo_server"),
                          "http://127.0.0.1:0"]),
    ]
    for size, label in ((64, "64-byte"), (16384, "16 KiB")):
        rows = []
        for name, argv in servers:
            s = Server(name, argv, env={"PYTHONPATH": os.path.join(ROOT, "python")})
            try:
                rate, cpu = measure(s, [load, str(s.port), "50", str(size), str(secs)], parse)
                rows.append((name, rate, cpu))
            finally:
                s.stop()
        report("WebSocket echo, %s messages, 50 connections (target: Python >= 5x websockets "
               "on 64-byte)" % label, "messages/s", rows, "websockets (peer)")


# ------------------------------------------------- idle connections beside the load

IDLE_CONNS = 8000


def raise_nofile(need):
    """Lets this process and the servers it starts (they inherit it) hold need descriptors."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        want = need if hard == resource.RLIM_INFINITY else min(need, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0] >= need


def open_idle(port, n):
    """Opens n keep-alive connections to port, makes one request on each (so
    each is a used keep-alive connection, as a browser leaves them), reads the
    answers and returns the sockets, open and idle."""
    socks, sel = [], selectors.DefaultSelector()
    req = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    waiting = 0
    for i in range(n):
        s = socket.create_connection(("127.0.0.1", port), 10)
        s.sendall(req)
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
        socks.append(s)
        waiting += 1
        while waiting > 256 or (i == n - 1 and waiting > 0):  # bounded backlog of answers
            events = sel.select(10)
            if not events:
                raise RuntimeError("no answer on an idle connection")
            for key, _ in events:
                data = key.fileobj.recv(4096)
                if not data.startswith(b"HTTP/1.1 200"):
                    raise RuntimeError("bad answer on an idle connection: %r" % data[:40])
                sel.unregister(key.fileobj)
                waiting -= 1
    sel.close()
    return socks


def idle_suite(secs):
    """Hello keep-alive with wrk's 50 busy connections, without and then with
    IDLE_CONNS idle keep-alive connections open beside them, same server
    process, same run.  A server whose turn walks every connection slows
    down with the idle ones; one that only touches ready ones does not."""
    machine_note()
    if not raise_nofile(2 * IDLE_CONNS + 500):
        print("\n== idle: skipped, RLIMIT_NOFILE cannot reach %d" % (2 * IDLE_CONNS + 500))
        return
    env = {"PYTHONPATH": os.path.join(ROOT, "python")}
    scratch = tempfile.mkdtemp(prefix="cm-bench-")
    specs = [
        ("nginx 1 worker (peer)", lambda: Nginx("nginx", scratch, nginx_hello())),
        ("cymongoose C", lambda: ours_c("ours-c", "http")),
        ("cymongoose Python", lambda: Server("ours-py", [PY, "bench/http_ours.py", "0"], env)),
    ]
    best = {}
    try:
        for _ in range(ROUNDS):
            for name, start in specs:
                s = start()
                idle = []
                try:
                    check_body(s, "http", "/", len(HELLO))
                    without, cpu0 = wrk(s, "http", "/", secs)
                    idle = open_idle(s.port, IDLE_CONNS)
                    with_idle, cpu1 = wrk(s, "http", "/", secs)
                    check_body(s, "http", "/", len(HELLO))
                finally:
                    for sock in idle:
                        sock.close()
                    s.stop()
                b = best.get(name, (0.0, 0.0, float("inf"), float("inf")))
                best[name] = (max(b[0], without), max(b[1], with_idle), min(b[2], cpu0),
                              min(b[3], cpu1))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print("\n== HTTP hello keep-alive, 50 busy connections, then with %d idle keep-alive "
          "connections beside them (target: with/without within 10%%, as nginx)" % IDLE_CONNS)
    print("%-24s %13s %13s %9s %12s %12s %9s" % (
        "server", "req/s without", "req/s with", "x rate", "CPU µs/req", "CPU µs/req", "x CPU"))
    print("%-24s %13s %13s %9s %12s %12s %9s" % ("", "", "", "with/w-o", "without", "with",
                                                 "w-o/with"))
    for name, _ in specs:
        w0, w1, c0, c1 = best[name]
        print("%-24s %13.0f %13.0f %9.2f %12.2f %12.2f %9.2f" % (
            name, w0, w1, w1 / w0 if w0 else float("nan"), c0, c1, c0 / c1 if c1 else float("nan")))
    ref = best.get("nginx 1 worker (peer)")
    if ref:
        print("with the idle connections, against nginx: " + ", ".join(
            "%s x%.2f rate" % (name, best[name][1] / ref[1]) for name, _ in specs[1:] if ref[1]))
    print("(x rate: throughput with the idle connections over without, one server process;"
          " x CPU: server CPU per request without over with, 1.00 = idle ones cost nothing;"
          " best of %d rounds)" % ROUNDS)


IDLE_MEMORY_CONNS = 10000


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS for pid %d" % pid)


def idle_memory_suite(secs):
    """What an idle keep-alive connection costs in server memory: RSS of the
    server process before and after IDLE_MEMORY_CONNS connections that each
    made one request and stay open, divided by their number.  Kernel socket
    memory is not in RSS, for any of the servers."""
    del secs
    if not raise_nofile(IDLE_MEMORY_CONNS + 500):  # clients here, server sockets in the server
        print("\n== idle-memory: skipped, RLIMIT_NOFILE cannot reach %d" % (IDLE_MEMORY_CONNS + 500))
        return
    env = {"PYTHONPATH": os.path.join(ROOT, "python")}
    scratch = tempfile.mkdtemp(prefix="cm-bench-")
    specs = [
        ("nginx 1 worker (peer)", lambda: Nginx("nginx", scratch, nginx_hello())),
        ("cymongoose C", lambda: ours_c("ours-c", "http")),
        ("cymongoose Python", lambda: Server("ours-py", [PY, "bench/http_ours.py", "0"], env)),
    ]
    rows = []
    try:
        for name, start in specs:
            s = start()
            idle = []
            try:
                # Warm up: the first connections fill the allocator's caches.
                for sock in open_idle(s.port, 100):
                    sock.close()
                time.sleep(0.2)
                before = rss_kib(s.proc.pid)
                idle = open_idle(s.port, IDLE_MEMORY_CONNS)
                time.sleep(0.2)
                after = rss_kib(s.proc.pid)
                check_body(s, "http", "/", len(HELLO))
            finally:
                for sock in idle:
                    sock.close()
                s.stop()
            rows.append((name, before, after, (after - before) * 1024.0 / IDLE_MEMORY_CONNS))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print("\n== Memory of %d idle keep-alive connections (one request each), server RSS "
          "(targets: C <= 1 KiB, Python <= 1.5 KiB per connection)" % IDLE_MEMORY_CONNS)
    print("%-24s %12s %12s %14s" % ("server", "RSS before", "RSS after", "bytes/conn"))
    for name, before, after, per in rows:
        print("%-24s %9d KiB %9d KiB %14.0f" % (name, before, after, per))


# ------------------------------------------------------------------ MQTT

class Mosquitto(Server):
    """mosquitto on a free port, config in a scratch dir; nodelay turns on
    TCP_NODELAY on its sockets (set_tcp_nodelay, off by default)."""

    def __init__(self, scratch, nodelay):
        port = free_port()
        conf = os.path.join(scratch, "mosquitto-%d.conf" % port)
        with open(conf, "w") as f:
            f.write("user %s\nlistener %d 127.0.0.1\nallow_anonymous true\npersistence false\n"
                    "log_dest none\nset_tcp_nodelay %s\n"
                    % (pwd.getpwuid(os.getuid()).pw_name, port, "true" if nodelay else "false"))
        super().__init__("mosquitto", ["mosquitto", "-c", conf], port=port)


def mqtt_client_run(argv):
    """Runs one MQTT client load; returns (messages/s, client µs CPU per message)."""
    out = subprocess.run(argv, capture_output=True, text=True, check=True, cwd=ROOT,
                         env=dict(os.environ, PYTHONPATH=os.path.join(ROOT, "python"))).stdout
    m = re.search(r"messages=(\d+) seconds=([\d.]+) cpu=([\d.]+)", out)
    if not m:
        raise RuntimeError("unexpected MQTT client output: %r" % out)
    n, secs, cpu = int(m.group(1)), float(m.group(2)), float(m.group(3))
    return n / secs, cpu * 1e6 / n


MQTT_PEER, MQTT_OURS, MQTT_OURS_C, MQTT_CEILING = (
    "paho-mqtt 1.6 (peer)", "cymongoose Python", "cymongoose C", "raw C loop (ceiling)")


def mqtt_suite(secs):
    """Our Python client vs paho-mqtt through the same mosquitto (defaults:
    Nagle on), one connection, 64-byte messages (bench/mqtt_window.py has the
    loops).  First the client's own rate: publishing with no subscriber, so
    mosquitto only reads and drops (QoS 0) or reads and acknowledges (QoS 1)
    each message, the least a broker can do per message; then end to end,
    through a subscription of the same connection, where mosquitto also
    routes and sends every message and its CPU bounds the rate.

    Each shape also runs bench/c/mqtt_client.c (the same loop on our C
    library, without Python) and bench/mqtt_raw.c, the same loop in plain C
    on a raw socket (no library, no allocation, one write per wake-up): the most
    messages per second any client gets through this mosquitto and the least
    CPU any client spends per message (the kernel's share: system calls,
    sleep and wake-up, loopback TCP).  paho's figures over the ceiling's are
    the best "x rate" and "x CPU" any client can show on the shape."""
    machine_note()
    scratch = tempfile.mkdtemp(prefix="cm-bench-")
    raw = os.path.join(BUILD, "bench", "mqtt_raw")
    clients = [(MQTT_PEER, [PY, "bench/mqtt_paho.py"]),
               (MQTT_OURS, [PY, "bench/mqtt_ours.py"]),
               (MQTT_OURS_C, [os.path.join(BUILD, "bench", "c", "mqtt_client")]),
               (MQTT_CEILING, [raw])]
    shapes = [
        ("pub", 0, 1000, "QoS 0 publish, no subscriber, batches of 1000, 2 outstanding (the "
                         "last of each QoS 1: its PUBACK confirms the batch)"),
        ("pub", 1, 1000, "QoS 1 publish, no subscriber, 1000 in flight (both libraries' windows "
                         "raised to 1000)"),
        ("pub", 1, 1, "QoS 1 publish -> PUBACK round trip, one at a time, no subscriber"),
        ("echo", 0, 1000, "QoS 0 end to end via its own subscription, 1000 in flight"),
        ("echo", 1, 1, "QoS 1 end to end round trip via its own subscription, one at a time"),
    ]
    # Extra rows: the round trips again through a mosquitto with Nagle off
    # (set_tcp_nodelay true), to show what its Nagle costs each client.
    nodelay = [(mode, qos, window, what + ", mosquitto with TCP_NODELAY (not its default)")
               for mode, qos, window, what in shapes if window == 1]
    try:
        defaults = [(m, q, w, what + ", mosquitto defaults") for m, q, w, what in shapes]
        for with_nodelay, todo in ((False, defaults), (True, nodelay)):
            broker = Mosquitto(scratch, with_nodelay)
            try:
                for mode, qos, window, what in todo:
                    mqtt_shape(broker, clients, secs, mode, qos, window, what)
            finally:
                broker.stop()
        print("(\"server CPU\" here: the client process, user+system, per message; "
              "\"client CPU-bound rate\": messages per second of client CPU; the raw C loop "
              "is the same load without a library: the best rate through this mosquitto and "
              "the least CPU per message any client can reach; the ceiling is its figure or a "
              "client's when one did better in the run)")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def mqtt_shape(broker, clients, secs, mode, qos, window, what):
    """One shape: every client in turn, ROUNDS times, the best of each kept."""
    best, broker_us = {}, {}
    for _ in range(ROUNDS):
        for name, argv in clients:
            b0 = broker.cpu()
            rate, cpu = mqtt_client_run(argv + [str(broker.port), str(qos), str(window),
                                                str(secs), mode])
            b1 = broker.cpu()
            r0, c0 = best.get(name, (0.0, float("inf")))
            if rate > r0:
                broker_us[name] = (b1 - b0) * 1e6 / (rate * secs)
            best[name] = (max(r0, rate), min(c0, cpu))
    rows = [(name,) + best[name] for name, _ in clients]
    report("MQTT %s, 64-byte messages (target: >= 5x paho's rate, <= 1/5 of its CPU per "
           "message)" % what, "messages/s", rows, MQTT_PEER)
    for name, rate, cpu in rows:
        print("  %-24s %7.1f µs/message wall, mosquitto %5.1f CPU µs/message, "
              "client CPU-bound rate %8.0f/s" % (name, 1e6 / rate, broker_us[name], 1e6 / cpu))
    ceiling_report(rows)


def ceiling_report(rows):
    """Each client as a fraction of the ceiling (rate: share of the best
    rate through this broker; CPU: how close to the least CPU per message),
    and the best ratios to paho any client could show on this shape.  The
    ceiling is the raw C loop's figure, or a client's when one did better in
    this run (all do the same work; the machine's noise moves each row)."""
    by = {name: (rate, cpu) for name, rate, cpu in rows}
    top_rate = max(rate for _, rate, _ in rows)
    top_cpu = min(cpu for _, _, cpu in rows)
    for name in (MQTT_PEER, MQTT_OURS, MQTT_OURS_C):
        rate, cpu = by[name]
        print("  %-24s %5.0f%% of the ceiling's rate, %5.0f%% of its CPU efficiency "
              "(ceiling CPU/message over its own)" % (name, 100 * rate / top_rate,
                                                      100 * top_cpu / cpu))
    peer_rate, peer_cpu = by[MQTT_PEER]
    print("  best any client can show against paho here: %.2fx the rate, %.2fx less CPU "
          "per message (target 5x: %s)"
          % (top_rate / peer_rate, peer_cpu / top_cpu,
             "reachable" if top_rate >= 5 * peer_rate and peer_cpu >= 5 * top_cpu else
             "rate out of reach" if top_rate < 5 * peer_rate and peer_cpu >= 5 * top_cpu else
             "CPU out of reach" if top_rate >= 5 * peer_rate else "out of reach"))


BROKER_IDLE_CLIENTS = 10000


def broker_idle_kib(broker, n, keepalive=0):
    """Resident memory the broker process gains per idle connected client
    (n clients connected by mqtt_load idle with keepalive seconds), in KiB."""
    load = os.path.join(BUILD, "bench", "mqtt_load")
    before = rss_kib(broker.proc.pid)
    p = subprocess.Popen([load, str(broker.port), "idle", str(n), str(keepalive)],
                         stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline()
        if not line.startswith("ready"):
            raise RuntimeError("mqtt_load idle: %r" % line)
        time.sleep(1.0)  # the last CONNECTs are processed
        after = rss_kib(broker.proc.pid)
    finally:
        p.stdin.close()
        p.wait(30)
    return (after - before) / n


def mqtt_broker_suite(secs):
    """MQTT brokers under the same load (bench/mqtt_load.c, MQTT 3.1.1, 64-byte
    payloads): fan-out (1 publisher, 100 subscribers, QoS 0), fan-in (100
    publishers, 1 subscriber, QoS 0), QoS 1 round trips one at a time, and
    resident memory per idle connected client with 10,000 clients.  mosquitto
    and ours alike: anonymous allowed, persistence off, TCP_NODELAY on."""
    machine_note()
    if not raise_nofile(BROKER_IDLE_CLIENTS + 500):  # per process: the load and the broker
        print("\n== mqtt-broker: skipped, RLIMIT_NOFILE cannot reach %d"
              % (BROKER_IDLE_CLIENTS + 500))
        return
    load = os.path.join(BUILD, "bench", "mqtt_load")
    scratch = tempfile.mkdtemp(prefix="cm-bench-")
    env = {"PYTHONPATH": os.path.join(ROOT, "python")}

    def ours_c_broker():
        port = free_port()
        conf = os.path.join(scratch, "ours-%d.conf" % port)
        with open(conf, "w") as f:
            f.write("listener mqtt://127.0.0.1:%d\nallow_anonymous true\nlog_level error\n"
                    % port)
        return Server("cymongoose-broker", [os.path.join(BUILD, "cymongoose-broker"), "--config",
                                            conf], port=port)

    def ours_py_broker():
        port = free_port()
        code = ("import cymongoose as cm\nm = cm.Manager()\n"
                "m.mqtt_broker('mqtt://127.0.0.1:%d', allow_anonymous=True)\nm.run()" % port)
        return Server("Manager.mqtt_broker", [PY, "-c", code], env=env, port=port)

    specs = [("mosquitto (peer)", lambda: Mosquitto(scratch, True)),
             ("cymongoose-broker (C)", ours_c_broker),
             ("cymongoose Python MqttBroker", ours_py_broker)]
    cases = [("fan-out: 1 publisher, 100 subscribers, QoS 0", ["fanout", "100"]),
             # the same work offered to both brokers: 500 and 2,000
             # messages/s (50k and 200k deliveries/s), paced by the ms
             ("fan-out at 50k deliveries/s offered (500 msgs/s to 100 subscribers), QoS 0",
              ["fanrate", "100", "SECS", "64", "500"]),
             ("fan-out at 200k deliveries/s offered (2,000 msgs/s to 100 subscribers), QoS 0",
              ["fanrate", "100", "SECS", "64", "2000"]),
             ("fan-in: 100 publishers, 1 subscriber, QoS 0", ["fanin", "100"]),
             ("QoS 1 round trip, one at a time", ["latency", "1"])]

    def parse(out):
        m = re.search(r"messages=(\d+) seconds=([\d.]+)", out)
        return int(m.group(1)), float(m.group(2))
    best = {}
    idle = {}
    try:
        for _ in range(ROUNDS):
            for name, start in specs:
                b = start()
                try:
                    for title, argv in cases:
                        argv = ([a if a != "SECS" else str(secs) for a in argv]
                                if "SECS" in argv else argv + [str(secs)])
                        rate, cpu = measure(b, [load, str(b.port)] + argv, parse)
                        r0, c0 = best.get((title, name), (0.0, float("inf")))
                        best[(title, name)] = (max(r0, rate), min(c0, cpu))
                finally:
                    b.stop()
                # memory on a fresh broker each time: not on the free lists
                # the other cases left behind
                for ka in (0, 60):
                    b = start()
                    try:
                        kib = broker_idle_kib(b, BROKER_IDLE_CLIENTS, ka)
                        idle[name, ka] = min(idle.get((name, ka), float("inf")), kib)
                    finally:
                        b.stop()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    for title, _ in cases:
        rows = [(name,) + best[(title, name)] for name, _ in specs]
        report("MQTT broker %s, 64-byte payloads (target: ahead of mosquitto in rate and CPU)"
               % title, "messages/s", rows, "mosquitto (peer)")
        if title.startswith("QoS 1"):
            for name, rate, _ in rows:
                print("  %-30s %8.1f µs per round trip" % (name, 1e6 / rate if rate else 0))
    print("\n== MQTT broker memory per idle connected client, %d clients (target: no more "
          "than mosquitto)" % BROKER_IDLE_CLIENTS)
    for name, _ in specs:
        print("%-30s %8.2f KiB per client (RSS), keepalive 0; %8.2f KiB with keepalive 60"
              % (name, idle[name, 0], idle[name, 60]))
    print("(messages/s: deliveries counted by the clients; server CPU: the broker process, "
          "user+system, per delivery; best of %d rounds)" % ROUNDS)



# ------------------------------------------------------------ ASGI / WSGI

def uvicorn(app, ws=None):
    """uvicorn (with httptools and uvloop: make bench installs them, as pip's
    uvicorn[standard] would; h11/asyncio without them)
    serving asgi_apps.APP on a free port, one process, no access log."""
    port = free_port()
    argv = [PY, "-m", "uvicorn", "--app-dir", "bench", "--host", "127.0.0.1", "--port",
            str(port), "--no-access-log", "--log-level", "warning", "--lifespan", "off"]
    if ws:  # its websockets backend logs every abrupt close of the load generator
        argv += ["--ws", ws, "--log-level", "critical"]
    return Server("uvicorn", argv + ["asgi_apps:" + app], port=port)


def gunicorn_sync():
    port = free_port()
    return Server("gunicorn", [PY, "-m", "gunicorn", "--chdir", "bench", "-w", "1", "-k", "sync",
                               "-b", "127.0.0.1:%d" % port, "--log-level", "warning",
                               "asgi_apps:wsgi_hello"], port=port)


def asgi_ours(kind):
    env = {"PYTHONPATH": os.path.join(ROOT, "python")}
    return Server("ours-" + kind, [PY, "bench/asgi_ours.py", kind, "0"], env)


def per_core(rows):
    """Requests per second of server CPU (one core fully busy), from µs/request."""
    for name, _, cpu in rows:
        print("  %-26s %10.0f requests per core-second" % (name, 1e6 / cpu if cpu else 0.0))


def asgi_suite(secs):
    """ASGI and WSGI servers on the same apps (bench/asgi_apps.py): ours
    against uvicorn and gunicorn's sync worker."""
    machine_note()
    rows = run_rows([
        ("uvicorn (peer)", lambda: uvicorn("hello")),
        ("cymongoose ASGIServer", lambda: asgi_ours("hello")),
    ], "http", "/", secs, len(HELLO))
    report("ASGI hello (bare app), keep-alive (target: >= 2x uvicorn's rate per core, <= 1/2"
           " its CPU per request)", "requests/s", rows, "uvicorn (peer)")
    per_core(rows)
    rows = run_rows([
        ("uvicorn (peer)", lambda: uvicorn("starlette")),
        ("cymongoose ASGIServer", lambda: asgi_ours("starlette")),
    ], "http", "/", secs, len(HELLO))
    report("Starlette hello, keep-alive (target: >= 1.2x uvicorn)", "requests/s", rows,
           "uvicorn (peer)")
    per_core(rows)
    rows = run_rows([
        ("gunicorn sync, 1 worker (peer)", gunicorn_sync),
        ("cymongoose WSGIServer", lambda: asgi_ours("wsgi")),
    ], "http", "/", secs, len(HELLO))
    report("WSGI hello (target: >= 5x gunicorn's sync worker per core)", "requests/s", rows,
           "gunicorn sync, 1 worker (peer)")
    per_core(rows)
    load = os.path.join(BUILD, "bench", "ws_load")

    def parse(out):
        m = re.search(r"messages=(\d+) seconds=([\d.]+)", out)
        return int(m.group(1)), float(m.group(2))

    best = {}
    specs = [("uvicorn websockets (peer)", lambda: uvicorn("ws_echo", "websockets")),
             ("cymongoose ASGIServer", lambda: asgi_ours("ws"))]
    for _ in range(ROUNDS):
        for name, start in specs:
            s = start()
            try:
                rate, cpu = measure(s, [load, str(s.port), "50", "64", str(secs)], parse)
            finally:
                s.stop()
            r0, c0 = best.get(name, (0.0, float("inf")))
            best[name] = (max(r0, rate), min(c0, cpu))
    report("ASGI WebSocket echo, 64-byte messages, 50 connections (target: ahead of uvicorn)",
           "messages/s", [(n,) + best[n] for n, _ in specs], "uvicorn websockets (peer)")


SUITES = {"echo": echo_suite, "ws": ws_suite, "http": http_suite, "https": https_suite,
          "http-close": http_close_suite, "static": static_suite,
          "static-syscalls": static_syscalls_suite, "idle": idle_suite,
          "idle-memory": idle_memory_suite,
          "mqtt": mqtt_suite, "mqtt-broker": mqtt_broker_suite, "asgi": asgi_suite}


def main():
    global ROUNDS
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--rounds", type=int, default=ROUNDS,
                    help="alternating rounds per HTTP/HTTPS server (best one kept)")
    ap.add_argument("suites", nargs="*", default=list(SUITES))
    args = ap.parse_args()
    ROUNDS = max(1, args.rounds)
    for name in args.suites:
        SUITES[name](args.seconds)


if __name__ == "__main__":
    sys.exit(main())
