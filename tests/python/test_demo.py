"""The `make run` demo (examples/python/demo_server.py) as a subprocess, every route
exercised with requests and http.client, then SIGTERM and a clean exit."""
import hashlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys

import pytest
import requests

from demo_process import DEMO, ROOT, demo_process


@pytest.fixture(scope="module")
def demo():
    """One demo process shared by the tests that only send requests."""
    with demo_process() as d:
        yield d


@pytest.fixture
def own_demo():
    """A demo process of the test's own, for a test that stops it."""
    with demo_process() as d:
        yield d


def url(demo, path):
    return "http://127.0.0.1:%d%s" % (demo[1], path)


def test_banner_lists_url_and_routes(demo):
    banner = demo[2]
    assert "http://127.0.0.1:%d/" % demo[1] in banner
    for route in ("/ws", "/hello", "/api/echo", "/stream", "/sse", "/static/"):
        assert route in banner


def test_page_and_its_assets(demo):
    r = requests.get(url(demo, "/"), timeout=10)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html")
    for asset in ("/assets/demo.css", "/assets/demo.js", "/assets/mqtt.js"):
        assert asset in r.text
        assert requests.get(url(demo, asset), timeout=10).status_code == 200
    # Only the assets directory of the package is served, nothing beside it.
    assert requests.get(url(demo, "/assets/../__init__.py"), timeout=10).status_code in (403, 404)


def test_busy_port_is_one_clear_line(demo):
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "python"))
    r = subprocess.run([sys.executable, DEMO, "--port", str(demo[1])], env=env,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and str(demo[1]) in lines[0]
    assert "make run PORT=" in lines[0] and "--port" in lines[0]


async def chat_between_two_clients(port):
    import websockets
    uri = "ws://127.0.0.1:%d/ws" % port
    # websockets offers permessage-deflate by default: the demo accepts it.
    async with websockets.connect(uri) as a:
        assert [type(e).__name__ for e in a.extensions] == ["PerMessageDeflate"]
        id_a = json.loads(await a.recv())["id"]
        async with websockets.connect(uri) as b:
            id_b = json.loads(await b.recv())["id"]
            await b.send(json.dumps({"text": "from b " * 100}))
            seen_by_a = [json.loads(await a.recv()) for _ in range(2)]  # b joined, b's message
            assert seen_by_a == [{"type": "join", "id": id_b},
                                 {"type": "msg", "from": id_b, "text": "from b " * 100}]
            assert json.loads(await b.recv())["from"] == id_b  # the sender sees its echo
        assert json.loads(await a.recv()) == {"type": "leave", "id": id_b}
        assert id_a != id_b


def test_websocket_chat_between_two_clients(demo):
    import asyncio
    asyncio.run(asyncio.wait_for(chat_between_two_clients(demo[1]), 20))


def test_hash_and_upload(demo):
    data = os.urandom(300000)
    r = requests.post(url(demo, "/api/upload"), data=data, headers={"X-Filename": "%C3%A9t%C3%A9.bin"},
                      timeout=10)
    assert r.status_code == 200 and r.json()["name"] == "été.bin"
    assert r.json()["bytes"] == len(data) and r.json()["sha256"] == hashlib.sha256(data).hexdigest()
    r = requests.post(url(demo, "/api/hash"), data=b"abc", timeout=10).json()
    assert r["md5"] == hashlib.md5(b"abc").hexdigest() and r["crc32"] == "352441c2"


def test_info_names_the_built_in_broker(demo):
    import cymongoose
    info = requests.get(url(demo, "/api/info"), timeout=10).json()
    assert info["version"] == cymongoose.__version__
    assert info["mqtt_note"] == ""
    scheme, port = info["mqtt_url"].rsplit("/", 1)[0].rsplit(":", 1)
    assert scheme == "ws://127.0.0.1" and int(port) != 0


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
        events = read_sse_events(r, 5)
    assert events[0]["event"] == "hello"
    assert [e["event"] for e in events[1:]] == ["time", "stats", "time", "stats"]
    assert all(len(e["data"]) == 20 and e["data"].endswith("Z") for e in events[1::2])
    stats = json.loads(events[2]["data"])
    assert stats["connections"] >= 1 and stats["requests"] >= 1
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
