"""Benchmarks against peers, all measured in one run; prints ratios.

Absolute numbers on a shared machine mean little: compare the ratios.
Server CPU time is read from /proc/<pid>/stat around each measurement.
Usage: bench.py [--seconds S] [suite ...]   (suites: echo, ws)
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, "build")
PY = "/usr/bin/python3"
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


class Server:
    """A server process that prints a line with its port once it listens."""

    def __init__(self, name, argv, env=None):
        self.name = name
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, cwd=ROOT,
                                     env=dict(os.environ, **(env or {})))
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


SUITES = {"echo": echo_suite, "ws": ws_suite}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("suites", nargs="*", default=list(SUITES))
    args = ap.parse_args()
    for name in args.suites:
        SUITES[name](args.seconds)


if __name__ == "__main__":
    sys.exit(main())
