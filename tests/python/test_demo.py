"""The `make run` demo (examples/python/demo_server.py) as a subprocess, every route
exercised with requests and http.client, then SIGTERM and a clean exit."""
import http.client
import json
import os
import signal
import socket
import subprocess
import sys

import pytest
import requests

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DEMO = os.path.join(ROOT, "examples", "python", "demo_server.py")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_demo():
    port = free_port()
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "python"))
    proc = subprocess.Popen([sys.executable, DEMO, str(port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    banner = []
    for line in proc.stdout:  # the banner ends with the Ctrl+C hint
        banner.append(line)
        if line.startswith("Ctrl+C"):
            break
    else:
        proc.wait(10)
        pytest.fail("demo did not start: %s" % proc.stderr.read())
    return proc, port, "".join(banner)


def stop_demo(proc):
    if proc.poll() is None:
        proc.kill()
        proc.wait(10)


@pytest.fixture(scope="module")
def demo():
    """One demo process shared by the tests that only send requests."""
    d = start_demo()
    yield d
    stop_demo(d[0])


@pytest.fixture
def own_demo():
    """A demo process of the test's own, for a test that stops it."""
    d = start_demo()
    yield d
    stop_demo(d[0])


def url(demo, path):
    return "http://127.0.0.1:%d%s" % (demo[1], path)


def test_banner_lists_url_and_routes(demo):
    banner = demo[2]
    assert "http://127.0.0.1:%d/" % demo[1] in banner
    for route in ("/hello", "/api/echo", "/stream", "/sse", "/static/"):
        assert route in banner


def test_index_links_every_route(demo):
    r = requests.get(url(demo, "/"), timeout=10)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html")
    for route in ("/hello", "/api/echo", "/stream", "/sse", "/static/"):
        assert 'href="%s"' % route in r.text


def test_hello(demo):
    assert requests.get(url(demo, "/hello"), timeout=10).text == "Hello, world!\n"
    assert requests.get(url(demo, "/hello?name=J%C3%B6rg"), timeout=10).content == "Hello, Jörg!\n".encode()


def test_echo_json(demo):
    doc = {"a": [1, 2, {"b": None}], "s": "ünï"}
    r = requests.post(url(demo, "/api/echo"), json=doc, timeout=10)
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/json"
    assert r.json() == doc
    r = requests.post(url(demo, "/api/echo"), data=b"[1, 2.5, null, true]", timeout=10)
    assert r.status_code == 200 and r.json() == [1, 2.5, None, True]
    r = requests.post(url(demo, "/api/echo"), data=b"{not json", timeout=10)
    assert r.status_code == 400 and "invalid JSON" in r.json()["error"]
    r = requests.post(url(demo, "/api/echo"), data=b"\xff\xfe", timeout=10)
    assert r.status_code == 400
    assert requests.get(url(demo, "/api/echo"), timeout=10).status_code == 405


def test_stream_is_chunked(demo):
    conn = http.client.HTTPConnection("127.0.0.1", demo[1], timeout=10)
    conn.request("GET", "/stream")
    r = conn.getresponse()
    assert r.status == 200 and r.getheader("Transfer-Encoding") == "chunked"
    assert r.read().decode() == "".join("line %d of 5\n" % i for i in range(1, 6))
    conn.request("GET", "/hello")  # the connection is still usable
    assert conn.getresponse().read() == b"Hello, world!\n"
    conn.close()


def read_sse_events(resp, count):
    events, current = [], {}
    for raw in resp.iter_lines(decode_unicode=True):
        if raw == "":
            events.append(current)
            current = {}
            if len(events) == count:
                return events
        else:
            key, _, value = raw.partition(": ")
            current[key] = value
    return events


def test_sse_clock(demo):
    with requests.get(url(demo, "/sse"), stream=True, timeout=10) as r:
        assert r.headers["Content-Type"] == "text/event-stream"
        events = read_sse_events(r, 3)
    assert events[0]["event"] == "hello"
    assert [e["event"] for e in events[1:]] == ["time", "time"]
    assert all(len(e["data"]) == 20 and e["data"].endswith("Z") for e in events[1:])
    # The subscriber is gone after its close: the server keeps serving others.
    assert requests.get(url(demo, "/hello"), timeout=10).status_code == 200


def test_static_files(demo):
    r = requests.get(url(demo, "/static/"), timeout=10)
    assert r.status_code == 200 and "<h1>Static files</h1>" in r.text  # 501 is a regression
    css = requests.get(url(demo, "/static/style.css"), timeout=10)
    assert css.status_code == 200 and css.headers["Content-Type"].startswith("text/css")
    assert requests.get(url(demo, "/static/../demo_server.py"), timeout=10).status_code in (403, 404)
    assert requests.get(url(demo, "/static/%2e%2e/%2e%2e/demo_server.py"), timeout=10).status_code in (400, 403, 404)


def test_not_found(demo):
    assert requests.get(url(demo, "/nope"), timeout=10).status_code == 404


def test_sigterm_stops_cleanly(own_demo):
    # Its own process: stopping the shared one would depend on running last.
    proc = own_demo[0]
    # An open SSE subscriber must not keep it from stopping.
    s = socket.create_connection(("127.0.0.1", own_demo[1]))
    s.sendall(b"GET /sse HTTP/1.1\r\nHost: x\r\n\r\n")
    assert s.recv(100).startswith(b"HTTP/1.1 200")
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=20)
    s.close()
    assert proc.returncode == 0, err
    assert "stopped" in out
    assert "Traceback" not in err
